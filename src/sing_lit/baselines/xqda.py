"""Cross-view Quadratic Discriminant Analysis, XQDA (Liao et al., CVPR 2015, Sec. 4).

Learns a subspace W and a metric M = (W^T S_I W)^{-1} - (W^T S_E W)^{-1} (Eq. 13) from the
intra-personal (S_I) and extra-personal (S_E) covariances of cross-view differences (Eq. 11-12);
distance d(x, z) = (x - z)^T W M W^T (x - z) (Eq. 14).

The paper picks W as the leading generalised eigenvectors of S_E w = mu S_I w (Eq. 10, 16);
the authors' ``XQDA.m``, which produced the published numbers, instead takes the leading *left
singular vectors* of S_I^{-1} S_E (``svd(inCov \\ exCov)``) and keeps those whose singular value
exceeds 1. S_I^{-1} S_E is not symmetric, so the two subspaces (and their sizes r) differ.
``subspace="svd"`` (the default) follows the code, ``"eig"`` the paper's equations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from sing_lit.runtime.errors import ConfigError


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch CPU ops on one thread, restoring the previous count afterwards.

    The n x n LAPACK calls of XQDA and NFST (n ~ 632) are barrier-bound: on a 2-core machine
    where another process held one core, a 632 x 632 eigh took 2-8 s with 2 threads and
    0.13 s with 1; Householder QR of 26,960 x 632 took 4-11 s vs 4 s.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _as_f64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def xqda_covariances(
    x_probe: np.ndarray, y_probe: np.ndarray, x_gallery: np.ndarray, y_gallery: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean outer products of intra- and extra-personal cross-view differences x_i - z_j.

    Uses the class-sum trick of the authors' ``XQDA.m`` (cost O(n d^2), no pair enumeration):
    sum over same-identity pairs = sum_i m_{y_i} x_i x_i^T + sum_j n_{y_j} z_j z_j^T
    - sum_k (X_k Z_k^T + Z_k X_k^T), with class sums X_k, Z_k and class counts n_k, m_k;
    the extra-personal sum is all pairs minus that.
    """
    intra, extra = _covariances(_as_f64(x_probe), np.asarray(y_probe), _as_f64(x_gallery), np.asarray(y_gallery))
    return intra.numpy(), extra.numpy()


def _svd_directions(cov_intra: torch.Tensor, cov_extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values (descending) and left singular vectors of S_I^{-1} S_E, as ``XQDA.m``."""
    u, s, _ = torch.linalg.svd(torch.linalg.solve(cov_intra, cov_extra))
    return s, u


def _eig_directions(cov_intra: torch.Tensor, cov_extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors of S_E w = mu S_I w (Eq. 16), via Cholesky whitening:
    the symmetric-definite form of eig(S_I^{-1} S_E)."""
    chol_inv = torch.linalg.inv(torch.linalg.cholesky(cov_intra))
    mu, u = torch.linalg.eigh(chol_inv @ cov_extra @ chol_inv.T)
    return mu.flip(0), chol_inv.T @ u.flip(1)


def _covariances(
    xp: torch.Tensor, yp: np.ndarray, xg: torch.Tensor, yg: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    _, inverse = np.unique(np.concatenate([yg, yp]), return_inverse=True)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(inverse)).double()
    onehot_g, onehot_p = onehot[: len(yg)], onehot[len(yg) :]
    n_k, m_k = onehot_g.sum(0), onehot_p.sum(0)
    n_intra = float(n_k @ m_k)
    n_extra = len(yg) * len(yp) - n_intra
    if n_intra == 0 or n_extra == 0:
        raise ValueError(
            f"XQDA needs same- and different-identity cross-view pairs; got {n_intra:.0f} intra "
            f"and {n_extra:.0f} extra pairs (do the probe and gallery labels overlap?)"
        )
    sum_g, sum_p = onehot_g.T @ xg, onehot_p.T @ xp  # (c, d) class sums
    weighted_g = xg * (onehot_g @ m_k).sqrt()[:, None]
    weighted_p = xp * (onehot_p @ n_k).sqrt()[:, None]
    cross = sum_g.T @ sum_p
    intra = weighted_g.T @ weighted_g + weighted_p.T @ weighted_p - cross - cross.T
    total_g, total_p = sum_g.sum(0), sum_p.sum(0)
    extra = (
        len(yp) * xg.T @ xg
        + len(yg) * xp.T @ xp
        - torch.outer(total_g, total_p)
        - torch.outer(total_p, total_g)
        - intra
    )
    return intra / n_intra, extra / n_extra


SUBSPACES = ("svd", "eig")


class XQDA:
    """XQDA metric learning.

    Args:
        lambda_: ridge added to the diagonal of S_I (the original's 0.001).
        max_dims: cap on the subspace dimension r; r = #{singular values (or eigenvalues) > 1} otherwise (at least 1).
        reduce_by_qr: first express the data in the orthonormal basis of its span (QR of the
            training matrix) as ``XQDA.m`` does; ``None`` does it when d > n. Distances are the
            same either way, since S_I, S_E act only on that span plus lambda elsewhere.
        subspace: ``"svd"``, the left singular vectors of S_I^{-1} S_E with singular value > 1
            (``XQDA.m``), or ``"eig"``, the generalised eigenvectors of (S_E, S_I) with
            eigenvalue > 1 (the paper's Eq. 16). ``eigenvalues_`` holds the singular values or
            eigenvalues, descending.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(40, 8)), np.repeat(np.arange(20), 2)
        >>> model = XQDA().fit(x[0::2], y[0::2], x[1::2], y[1::2])
        >>> model.distance(x[:3], x[3:5]).shape
        (3, 2)
    """

    def __init__(self, lambda_: float = 0.001, max_dims: int | None = None, reduce_by_qr: bool | None = None,
                 subspace: str = "svd"):
        if subspace not in SUBSPACES:
            raise ConfigError(f"xqda.subspace={subspace!r} is not a subspace rule; allowed: {', '.join(SUBSPACES)}")
        self.lambda_ = lambda_
        self.max_dims = max_dims
        self.reduce_by_qr = reduce_by_qr
        self.subspace = subspace

    def fit(self, x_probe: np.ndarray, y_probe: np.ndarray, x_gallery: np.ndarray, y_gallery: np.ndarray) -> XQDA:
        """Learn ``projection_`` (d, r) and ``metric_`` (r, r) from two labelled views."""
        with single_threaded():
            return self._fit(_as_f64(x_probe), np.asarray(y_probe), _as_f64(x_gallery), np.asarray(y_gallery))

    def _fit(self, xp: torch.Tensor, yp: np.ndarray, xg: torch.Tensor, yg: np.ndarray) -> XQDA:
        if xp.shape[1] != xg.shape[1]:
            raise ValueError(f"probe and gallery dims differ: {xp.shape[1]} vs {xg.shape[1]}")
        n_gallery, d = xg.shape
        use_qr = d > n_gallery + len(xp) if self.reduce_by_qr is None else self.reduce_by_qr
        basis = None
        if use_qr:
            basis, coords = torch.linalg.qr(torch.cat([xg, xp]).T)  # (d, n), (n, n)
            xg, xp = coords[:, :n_gallery].T, coords[:, n_gallery:].T
        cov_intra, cov_extra = _covariances(xp, yp, xg, yg)
        cov_intra = cov_intra + self.lambda_ * torch.eye(len(cov_intra), dtype=torch.float64)
        mu, vecs = (_svd_directions if self.subspace == "svd" else _eig_directions)(cov_intra, cov_extra)
        r = int((mu > 1).sum())
        if self.max_dims is not None:
            r = min(r, self.max_dims)
        r = max(r, 1)
        vecs = vecs[:, :r]
        metric = torch.linalg.inv(vecs.T @ cov_intra @ vecs) - torch.linalg.inv(vecs.T @ cov_extra @ vecs)
        self.eigenvalues_ = mu.numpy()
        self.metric_ = metric.numpy()
        self.projection_ = (vecs if basis is None else basis @ vecs).numpy()
        return self

    def distance(self, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """(Nq, Ng) XQDA distances d(q, g) = (q - g)^T W M W^T (q - g)."""
        projection, metric = torch.from_numpy(self.projection_), torch.from_numpy(self.metric_)
        q, g = _as_f64(queries) @ projection, _as_f64(gallery) @ projection
        qm, gm = q @ metric, g @ metric
        return ((qm * q).sum(1)[:, None] + (gm * g).sum(1)[None, :] - 2 * qm @ g.T).numpy()
