"""Kernel Null Foley-Sammon Transform, NFST (Zhang, Xiang, Gong, CVPR 2016).

Finds the directions in kernel feature space with zero within-class scatter and non-zero
total scatter: the null space of S_w inside the span of the centred training data. There
every training sample of a class projects onto one point; re-id distance is Euclidean there.
In exact arithmetic the null space has dimension rank(S_t) - rank(S_w), which is C - 1 for
a strictly positive-definite kernel (RBF) on distinct samples.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from sing_lit.baselines.xqda import single_threaded
from sing_lit.runtime.errors import ConfigError


def _as_f64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0.0)


class NFST:
    """Kernel NFST.

    Args:
        kernel: ``"rbf"``, exp(-||x - y||^2 / (2 sigma^2)) with sigma the mean pairwise training
            distance as in the authors' code, or ``"linear"``, x^T y.
        tol: relative threshold (to the largest value) below which an eigenvalue of the centred
            kernel matrix or of the within-class scatter counts as zero.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(12, 30)), np.repeat(np.arange(4), 3)
        >>> NFST().fit(x, y).transform(x).shape
        (12, 3)
    """

    def __init__(self, kernel: Literal["rbf", "linear"] = "rbf", tol: float = 1e-9):
        if kernel not in ("rbf", "linear"):
            raise ConfigError(f"NFST kernel must be 'rbf' or 'linear'; got {kernel!r}")
        self.kernel = kernel
        self.tol = tol

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.kernel == "linear":
            return a @ b.T
        return torch.exp(-_squared_distances(a, b) / (2 * self.sigma_**2))

    def fit(self, x: np.ndarray, y: np.ndarray) -> NFST:
        """Learn coefficients ``coef_`` (n, m) so that a sample's null-space coordinates are
        coef_^T (k(x) - mean training kernel column); ``null_dim_`` = m."""
        with single_threaded():
            return self._fit(_as_f64(x), np.asarray(y))

    def _fit(self, xt: torch.Tensor, y: np.ndarray) -> NFST:
        n = len(xt)
        _, inverse = np.unique(y, return_inverse=True)
        onehot = torch.nn.functional.one_hot(torch.as_tensor(inverse)).double()
        if onehot.shape[1] < 2:
            raise ValueError(f"NFST needs at least 2 classes; got {onehot.shape[1]}")
        self._train = xt
        if self.kernel == "rbf":
            off_diagonal = ~torch.eye(n, dtype=torch.bool)
            self.sigma_ = float(_squared_distances(xt, xt)[off_diagonal].sqrt().mean())
        k = self._kernel(xt, xt)
        eye = torch.eye(n, dtype=torch.float64)
        centring = eye - 1.0 / n
        # orthonormal basis of the centred training span: Phi A with A = (I - 1/n) U diag(e^-1/2)
        e, u = torch.linalg.eigh(centring @ k @ centring)
        keep = e > self.tol * e.max()
        basis = centring @ u[:, keep] / e[keep].sqrt()
        # within-class scatter in that basis is H^T H, H = (I - L) K A, L = class-mean operator
        class_mean = onehot @ (onehot / onehot.sum(0)).T
        h = (eye - class_mean) @ k @ basis
        s, v = torch.linalg.eigh(h.T @ h)
        null = v[:, s <= self.tol * s.max()]
        if null.shape[1] == 0:
            raise ValueError(
                f"NFST found no null space: within-class scatter is full rank on the {basis.shape[1]}-dim "
                f"training span (n={n}, C={onehot.shape[1]}); use the RBF kernel or fewer feature dims"
            )
        coef = basis @ null
        self.coef_ = coef.numpy()
        self.null_dim_ = null.shape[1]
        self._offset = coef.T @ k.mean(1)
        return self

    def _transform(self, x: np.ndarray) -> torch.Tensor:
        return self._kernel(_as_f64(x), self._train) @ torch.from_numpy(self.coef_) - self._offset

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(N, null_dim_) null-space coordinates."""
        return self._transform(x).numpy()

    def distance(self, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """(Nq, Ng) Euclidean distances in the null space."""
        return _squared_distances(self._transform(queries), self._transform(gallery)).sqrt().numpy()
