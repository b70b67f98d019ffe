"""MAFDensity: exact log-Jacobians, normalization, invertibility, estimator API."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate

from skmade import MAFDensity


def _banana(n, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n)
    return np.column_stack([x, 0.5 * x**2 + 0.2 * rng.randn(n)])


def _fast(**params):
    defaults = dict(
        n_flows=3, hidden_layer_sizes=(16,), max_iter=30, random_state=0, device="cpu"
    )
    return MAFDensity(**{**defaults, **params})


@pytest.mark.parametrize(
    "params",
    [dict(), dict(batch_norm=False), dict(n_components=3), dict(ordering="random")],
    ids=["batch-norm", "plain", "mog-base", "random-orders"],
)
def test_log_det_matches_autograd_jacobian(params):
    rng = np.random.RandomState(0)
    X = rng.randn(300, 4) @ rng.randn(4, 4)
    est = _fast(**params).fit(X)
    module = est.module_.double()
    x = torch.randn(6, 4, dtype=torch.float64)
    _, log_det = module.transform(x)
    for i in range(6):
        jacobian = torch.autograd.functional.jacobian(
            lambda row: module.transform(row[None])[0][0], x[i]
        )
        sign, expected = torch.linalg.slogdet(jacobian)
        assert sign > 0
        assert_allclose(log_det[i].sum().item(), expected.item(), rtol=1e-9, atol=1e-9)
        # Autoregressive: the Jacobian of each MADE is triangular in its ordering,
        # and the whole map is invertible (non-zero determinant).
    assert est.orderings_.shape == (3, 4)


@pytest.mark.parametrize("params", [dict(), dict(n_components=2)])
def test_density_integrates_to_one_in_1d(params):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(300) - 2, 0.5 * rng.randn(300) + 2])[:, None]
    est = _fast(**params).fit(X)
    grid = np.linspace(-40, 40, 160_001)
    total = integrate.trapezoid(np.exp(est.score_samples(grid[:, None])), grid)
    assert abs(total - 1) < 1e-3


def test_density_integrates_to_one_in_2d():
    est = _fast(n_components=2).fit(_banana(500))
    grid_x = np.linspace(-7, 7, 351)
    grid_y = np.linspace(-6, 14, 501)
    xx, yy = np.meshgrid(grid_x, grid_y)
    points = np.column_stack([xx.ravel(), yy.ravel()])
    cell = (grid_x[1] - grid_x[0]) * (grid_y[1] - grid_y[0])
    total = np.exp(est.score_samples(points)).sum() * cell
    assert abs(total - 1) < 1e-2


@pytest.mark.parametrize("params", [dict(), dict(n_components=3, ordering="random")])
def test_sampling_inverts_the_flow(params):
    est = _fast(**params).fit(_banana(400))
    module = est.module_.double().requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    if module.base is None:
        noise = torch.randn(500, 2, generator=generator, dtype=torch.float64)
        x = module.sample(noise)
        u, _ = module.transform(x)
        assert_allclose(u.numpy(), noise.numpy(), atol=1e-8)
    else:  # the base is a MADE: its noise is uniform, check the flow part
        u = torch.randn(500, 2, generator=generator, dtype=torch.float64)
        flows_only = type(module)(list(module.flows), False)
        flows_only.norms = module.norms
        x = flows_only.sample(u)
        assert_allclose(flows_only.transform(x)[0].numpy(), u.numpy(), atol=1e-8)


def test_samples_follow_the_density():
    est = _fast(max_iter=60).fit(_banana(1000))
    samples = est.sample(20000, random_state=0)
    # Marginal CDFs of the samples against the normalized density on a grid.
    grid_x = np.linspace(-6, 6, 241)
    grid_y = np.linspace(-5, 12, 341)
    xx, yy = np.meshgrid(grid_x, grid_y)
    points = np.column_stack([xx.ravel(), yy.ravel()])
    log_p = est.score_samples(points)
    p = np.exp(log_p)
    p /= p.sum()
    for marginal, grid in [(0, grid_x), (1, grid_y)]:
        # Each grid point stands for the cell around it: cut between points.
        cuts = grid[20:-20:20] + (grid[1] - grid[0]) / 2
        cdf_model = np.array([p[points[:, marginal] < c].sum() for c in cuts])
        cdf_samples = np.array([(samples[:, marginal] < c).mean() for c in cuts])
        assert_allclose(cdf_samples, cdf_model, atol=0.02)


def test_flow_beats_a_gaussian_on_a_banana():
    from sklearn.mixture import GaussianMixture

    X, X_test = _banana(1500), _banana(1500, seed=1)
    est = _fast(max_iter=80).fit(X)
    gaussian = GaussianMixture(1).fit(X)
    assert est.score(X_test) > gaussian.score(X_test) + 0.3


def test_reproducible_pickle_and_units():
    X = _banana(300)
    a = _fast().fit(X)
    b = _fast().fit(X)
    assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert_array_equal(a.sample(5, random_state=1), b.sample(5, random_state=1))
    loaded = pickle.loads(pickle.dumps(a))
    assert_array_equal(loaded.score_samples(X), a.score_samples(X))
    # Densities are in the units of X.
    scaled = _fast().fit(X * 100)
    assert_allclose(
        scaled.score_samples(X * 100), a.score_samples(X) - 2 * np.log(100), atol=1e-4
    )


def test_warm_start_continues_and_checks_structure():
    X = _banana(300)
    est = _fast(max_iter=5, warm_start=True).fit(X)
    first = est.n_iter_
    est.fit(X)
    assert est.n_iter_ == 2 * first
    est.set_params(n_flows=4)
    with pytest.raises(ValueError, match="n_flows changed"):
        est.fit(X)
    assert est.n_iter_ == 2 * first  # left as it was


def test_early_stopping_restores_best_validation_weights():
    est = _fast(early_stopping=True, max_iter=300, n_iter_no_change=5).fit(_banana(400))
    assert len(est.validation_scores_) == est.n_iter_ < 300
    assert est.best_validation_score_ == max(est.validation_scores_)


def test_structural_parameters_changed_after_fit_do_not_change_the_model():
    X = np.random.RandomState(0).standard_normal((200, 3))
    est = MAFDensity(
        hidden_layer_sizes=(8,), n_flows=2, max_iter=3, random_state=0
    ).fit(X)
    before, draws = est.score_samples(X), est.sample(3, random_state=0)
    est.set_params(n_components=3, n_flows=5, ordering="reverse")
    assert_array_equal(est.score_samples(X), before)
    assert_array_equal(est.sample(3, random_state=0), draws)


def test_values_too_extreme_for_the_network_score_minus_inf_not_nan():
    X = np.random.RandomState(0).standard_normal((200, 3))
    est = MAFDensity(
        hidden_layer_sizes=(8,), n_flows=2, max_iter=3, random_state=0
    ).fit(X)
    odd = X[:4].copy()
    odd[0, 0], odd[1, 1], odd[2, 2] = 1e39, -1e300, 1e20
    with np.errstate(all="raise"):
        scores = est.score_samples(odd)
    assert_array_equal(scores[:3], -np.inf)
    assert scores[3] == est.score_samples(X[3:4])[0]
