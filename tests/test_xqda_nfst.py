"""XQDA (Liao et al., 2015) and kernel NFST (Zhang et al., 2016) on small worked cases."""

import numpy as np
import pytest

from sing_lit.baselines import NFST, XQDA, xqda_covariances


def brute_force_covariances(xp, yp, xg, yg):
    intra, extra = [], []
    for xi, yi in zip(xg, yg):
        for zj, yj in zip(xp, yp):
            (intra if yi == yj else extra).append(np.outer(xi - zj, xi - zj))
    return np.mean(intra, 0), np.mean(extra, 0)


def test_class_sum_covariances_match_all_pairs():
    rng = np.random.default_rng(0)
    yg, yp = np.array([0, 0, 1, 2, 2, 2, 5]), np.array([0, 1, 1, 2, 3, 4])  # uneven counts, unshared ids
    xg, xp = rng.normal(size=(len(yg), 4)), rng.normal(size=(len(yp), 4))
    for got, want in zip(xqda_covariances(xp, yp, xg, yg), brute_force_covariances(xp, yp, xg, yg)):
        np.testing.assert_allclose(got, want, atol=1e-12)


def discriminant_axis_data(rng, per_view=3, n_classes=20, d=10):
    """Identities differ only along axis 0 (spacing 1, noise 0.05); unit noise elsewhere."""
    centres = np.zeros((n_classes, d))
    centres[:, 0] = rng.permutation(n_classes)
    labels = np.repeat(np.arange(n_classes), per_view)

    def view():
        noise = rng.normal(size=(len(labels), d))
        noise[:, 0] *= 0.05
        return centres[labels] + noise

    return view(), view(), labels


def test_xqda_finds_the_discriminant_axis_and_ranks_held_out_samples():
    rng = np.random.default_rng(1)
    xp, xg, y = discriminant_axis_data(rng)
    model = XQDA().fit(xp, y, xg, y)
    top = model.projection_[:, 0]
    assert abs(top[0]) / np.linalg.norm(top) > 0.95
    assert model.eigenvalues_[0] > 10 * model.eigenvalues_[1]

    qp, qg, qy = discriminant_axis_data(np.random.default_rng(2))  # fresh noise, same identities
    qp, qg = qp[::3], qg[::3]
    dist = model.distance(qp, qg)
    same = qy[::3, None] == qy[None, ::3]
    assert dist[same].max() < dist[~same].min()


def test_max_dims_caps_the_subspace():
    xp, xg, y = discriminant_axis_data(np.random.default_rng(3))
    assert XQDA(max_dims=1).fit(xp, y, xg, y).projection_.shape == (10, 1)


def test_qr_path_gives_the_direct_distances():
    rng = np.random.default_rng(4)
    y = np.arange(15)
    xp, xg = rng.normal(size=(15, 40)), rng.normal(size=(15, 40))  # 30 samples < 40 dims
    queries, gallery = rng.normal(size=(6, 40)), rng.normal(size=(7, 40))
    via_qr = XQDA().fit(xp, y, xg, y)
    direct = XQDA(reduce_by_qr=False).fit(xp, y, xg, y)
    assert via_qr.projection_.shape[1] == direct.projection_.shape[1]
    np.testing.assert_allclose(via_qr.distance(queries, gallery), direct.distance(queries, gallery), rtol=1e-7)


def test_xqda_rejects_disjoint_identities():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="intra"):
        XQDA().fit(rng.normal(size=(4, 3)), np.arange(4), rng.normal(size=(4, 3)), np.arange(4, 8))


def class_points(model, x, y):
    z = model.transform(x)
    centres = np.stack([z[y == c].mean(0) for c in np.unique(y)])
    spread = max(np.linalg.norm(z[y == c] - centres[i], axis=1).max() for i, c in enumerate(np.unique(y)))
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[~np.eye(len(centres), dtype=bool)]
    return spread, gaps


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_nfst_collapses_each_class_to_a_distinct_point(kernel):
    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(6), 5)
    x = rng.normal(size=(30, 50))
    spread, gaps = class_points(NFST(kernel).fit(x, y), x, y)
    assert spread < 1e-8 * gaps.max()
    assert gaps.min() > 1e-3 * gaps.max()


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (50, 5),  # d >= N - 1: rank S_t = N - 1 = 29, rank S_w = N - C = 24 -> C - 1 = 5
        (26, 2),  # N - C < d < N - 1: rank S_t = 26, rank S_w = 24 -> 2
    ],
)
def test_nfst_linear_null_space_dimension(d, expected):
    # null space dim = rank(S_t) - rank(S_w) = min(d, N - 1) - min(d, N - C) for points in general position
    rng = np.random.default_rng(7)
    y = np.repeat(np.arange(6), 5)  # N = 30, C = 6
    assert NFST("linear").fit(rng.normal(size=(30, d)), y).null_dim_ == expected


def test_nfst_linear_without_null_space_raises():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="no null space"):
        NFST("linear").fit(rng.normal(size=(30, 20)), np.repeat(np.arange(6), 5))  # d <= N - C


def test_nfst_rbf_null_space_is_c_minus_1_and_width_is_mean_distance():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(30, 20)), np.repeat(np.arange(6), 5)  # linear would have none here
    model = NFST("rbf").fit(x, y)
    assert model.null_dim_ == 5
    pairs = [np.linalg.norm(x[i] - x[j]) for i in range(30) for j in range(30) if i != j]
    assert model.sigma_ == pytest.approx(np.mean(pairs), rel=1e-10)


def test_nfst_distance_is_euclidean_in_null_space():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(24, 40)), np.repeat(np.arange(8), 3)
    model = NFST().fit(x, y)
    q, g = rng.normal(size=(3, 40)), rng.normal(size=(5, 40))
    zq, zg = model.transform(q), model.transform(g)
    want = np.linalg.norm(zq[:, None] - zg[None], axis=-1)
    np.testing.assert_allclose(model.distance(q, g), want, atol=1e-9)


def reference_xqda(xp, yp, xg, yg, subspace, lambda_=0.001):
    """Brute-force covariances, then NumPy's SVD / eigen-decomposition of S_I^{-1} S_E (XQDA.m's recipe)."""
    intra, extra = brute_force_covariances(xp, yp, xg, yg)
    intra = intra + lambda_ * np.eye(len(intra))
    a = np.linalg.solve(intra, extra)
    if subspace == "svd":
        u, values, _ = np.linalg.svd(a)
    else:
        values, u = np.linalg.eig(a)
        order = np.argsort(-values.real)
        values, u = values.real[order], u.real[:, order]
    w = u[:, : max(1, int((values > 1).sum()))]
    metric = np.linalg.inv(w.T @ intra @ w) - np.linalg.inv(w.T @ extra @ w)
    return values, w, metric


@pytest.mark.parametrize("subspace", ["svd", "eig"])
def test_xqda_matches_the_reference_recipe(subspace):
    rng = np.random.default_rng(3)
    d, n_ids = 6, 30
    # anisotropic, correlated views so that S_I^{-1} S_E is far from symmetric
    mix = rng.normal(size=(d, d))
    ids = rng.normal(size=(n_ids, d)) @ mix
    xg = ids + 0.3 * rng.normal(size=(n_ids, d)) @ mix.T
    xp = ids + 0.3 * rng.normal(size=(n_ids, d))
    y = np.arange(n_ids)
    model = XQDA(subspace=subspace).fit(xp, y, xg, y)
    values, w, metric = reference_xqda(xp, y, xg, y, subspace)
    np.testing.assert_allclose(model.eigenvalues_, values, rtol=1e-8)
    assert model.projection_.shape[1] == w.shape[1]
    q, g = rng.normal(size=(4, d)), rng.normal(size=(5, d))
    expected = np.array([[(qi - gj) @ w @ metric @ w.T @ (qi - gj) for gj in g] for qi in q])
    np.testing.assert_allclose(model.distance(q, g), expected, rtol=1e-7, atol=1e-9)


def test_xqda_svd_and_eig_subspaces_differ_when_s_i_is_not_isotropic():
    rng = np.random.default_rng(3)
    d, n_ids = 6, 30
    mix = rng.normal(size=(d, d))
    ids = rng.normal(size=(n_ids, d)) @ mix
    xg, xp = ids + 0.3 * rng.normal(size=(n_ids, d)) @ mix.T, ids + 0.3 * rng.normal(size=(n_ids, d))
    y = np.arange(n_ids)
    svd, eig = XQDA(subspace="svd").fit(xp, y, xg, y), XQDA(subspace="eig").fit(xp, y, xg, y)
    assert not np.allclose(svd.eigenvalues_, eig.eigenvalues_)


def test_xqda_rejects_an_unknown_subspace_rule():
    with pytest.raises(ValueError, match=r"xqda\.subspace='pca'.*svd, eig"):
        XQDA(subspace="pca")
