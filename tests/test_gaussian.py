"""The Gaussian base of any-order models: its EM fit, its exact conditionals for any
ordering (ties included), and the MADE around it staying autoregressive."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skmade._families import Gaussian
from skmade._gaussian import (
    GaussianBase,
    gaussian_em,
    indicator_gain,
    marginal_log_likelihood,
)
from skmade._masks import make_degrees, make_orderings
from skmade._nn import MADE
from skmade._sampling import sample_incremental, sample_naive


def _random_gaussian(D, seed=0):
    rng = np.random.RandomState(seed)
    A = rng.randn(D, D)
    return rng.randn(D), A @ A.T + 0.5 * np.eye(D)


def _base(mean, cov, n_features, columns=None):
    """A base over ``columns`` of a parameter-major Gaussian layout (n_params 2)."""
    columns = np.arange(n_features) if columns is None else np.asarray(columns)
    return GaussianBase(
        torch.from_numpy(mean),
        torch.from_numpy(cov),
        torch.from_numpy(columns),
        torch.from_numpy(columns),
        torch.from_numpy(columns[:, None]),
        torch.from_numpy(n_features + columns[:, None]),
        n_outputs=2 * n_features,
    )


def _conditional(mean, cov, x, given, d):
    """Mean and log-scale of x_d given x_given, by the textbook formulas."""
    if len(given) == 0:
        return mean[d], 0.5 * np.log(cov[d, d])
    S = list(given)
    K = np.linalg.solve(cov[np.ix_(S, S)], cov[S, d])
    m = mean[d] + K @ (x[S] - mean[S])
    v = cov[d, d] - cov[d, S] @ K
    return m, 0.5 * np.log(v)


def test_row_offsets_are_the_gaussians_conditionals_ties_included():
    D = 6
    mean, cov = _random_gaussian(D)
    base = _base(mean, cov, D)
    rng = np.random.RandomState(1)
    x = rng.randn(5, D)
    positions = np.array(
        [
            rng.permutation(D) + 1,  # a plain ordering
            [1, 2, 3, 4, 4, 4],  # the last three tie: each given the first three
            [2, 1, 3, 3, 1, 3],  # ties anywhere
            [1, 1, 1, 1, 1, 1],  # nothing before anything: the marginals
            [6, 5, 4, 3, 2, 1],
        ]
    )
    out = base.rows(torch.from_numpy(x), torch.from_numpy(positions)).numpy()
    for n in range(len(x)):
        for d in range(D):
            given = np.flatnonzero(positions[n] < positions[n, d])
            m, log_scale = _conditional(mean, cov, x[n], given, d)
            assert_allclose(out[n, d], m, atol=1e-10)
            assert_allclose(out[n, D + d], log_scale, atol=1e-10)


def test_fixed_offsets_are_the_row_offsets_of_that_ordering():
    D = 5
    mean, cov = _random_gaussian(D, seed=2)
    columns = np.array([0, 2, 3, 4])  # column 1 is not continuous: no offset
    base = _base(mean[columns], cov[np.ix_(columns, columns)], D, columns)
    degrees = torch.tensor([3, 1, 5, 2, 4])
    x = torch.from_numpy(np.random.RandomState(3).randn(7, D))
    weight, bias = base.fixed(degrees, D, torch.float64)
    rows = base.rows(x, degrees.repeat(7, 1))
    torch.testing.assert_close(x @ weight.T + bias, rows)
    assert torch.all(weight[:, 1] == 0) and torch.all(rows[:, [1, D + 1]] == 0)


def test_binary_offsets_are_a_slope_times_the_conditional_means_departure():
    D = 5
    mean, cov = _random_gaussian(D, seed=4)
    mean[3:] = [0.2, 0.7]  # binary columns' means
    variables = torch.tensor([0, 1, 2, 3, 4])
    base = GaussianBase(
        torch.from_numpy(mean),
        torch.from_numpy(cov),
        variables,
        variables,
        torch.tensor([[0], [1], [2]]),
        torch.tensor([[D], [D + 1], [D + 2]]),
        n_outputs=2 * D,
        logit_units=torch.tensor([3, 4]),
    )
    assert_allclose(base.slope.detach(), [1 / 0.16, 1 / 0.21], rtol=1e-6)
    x = torch.from_numpy(np.random.RandomState(5).rand(6, D).round())
    positions = torch.tensor([[3, 1, 5, 2, 4]]).repeat(6, 1)
    rows = base.rows(x, positions).detach().numpy()
    for n in range(6):
        for d in (3, 4):
            given = np.flatnonzero(positions[n].numpy() < positions[n, d].item())
            m, _ = _conditional(mean, cov, x[n].numpy(), given, d)
            slope = base.slope[d - 3].item()
            assert_allclose(rows[n, d], slope * (m - mean[d]), rtol=1e-5, atol=1e-6)
    weight, bias = base.fixed(positions[0], D, torch.float64)
    torch.testing.assert_close(
        x @ weight.T.detach() + bias.detach(), torch.from_numpy(rows)
    )
    # The slope is trained: gradients reach it through both paths.
    (
        base.rows(x, positions).sum()
        + base.fixed(positions[0], D, torch.float64)[1].sum()
    ).backward()
    assert base.slope.grad is not None and torch.all(base.slope.grad != 0)


def _any_order_made(D=6, hidden=(16, 9), n_masks=2, seed=0, with_base=True):
    rng = np.random.RandomState(seed)
    orderings = make_orderings("random", D, n_masks, True, rng)
    degrees = make_degrees(orderings, hidden, rng)
    made = MADE([torch.from_numpy(d) for d in degrees], 2, direct=True, any_order=True)
    made.reset_parameters(torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if made.visibility is not None:
            made.visibility.normal_(0, 1, generator=generator)
        for layer in made.masked_layers:
            layer.weight.mul_(0.5)
    if with_base:
        made.set_gaussian(_base(*_random_gaussian(D, seed), D))
    return made.double()


@pytest.mark.parametrize("hidden", [(), (16,), (16, 9)])
def test_made_with_a_base_stays_autoregressive_in_every_rows_ordering(hidden):
    made = _any_order_made(hidden=hidden)
    generator = torch.Generator().manual_seed(0)
    n = 4
    positions = torch.stack(
        [torch.randperm(6, generator=generator) + 1 for _ in "1234"]
    )
    x = torch.randn(n, 6, generator=generator, dtype=torch.float64)
    for k in range(made.n_masks):
        jacobian = torch.autograd.functional.jacobian(
            lambda x, k=k: made.forward_rows(x, k, positions), x
        )  # (n, P, D, n, D)
        for row in range(n):
            depends = jacobian[row, :, :, row, :].abs()
            before = positions[row][None, :] < positions[row][:, None]
            assert torch.all(depends[:, ~before] == 0)
            assert depends[:, before].sum() > 0
        own = (made.variable_degrees[k]).repeat(n, 1)
        torch.testing.assert_close(made.forward_rows(x, k, own), made(x, k))


def test_visibility_changes_the_outputs_but_not_their_dependencies():
    # The visibility terms depend on the ordering only: with them zeroed the
    # outputs change, and in the mask's own ordering forward and forward_rows agree.
    made = _any_order_made(with_base=False)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(1)).double()
    before = made(x, 0)
    with torch.no_grad():
        made.visibility.zero_()
    assert not torch.allclose(before, made(x, 0))


def test_incremental_sampling_with_a_base_equals_naive_sampling():
    made = _any_order_made()
    noise = Gaussian.noise((200, 6), torch.Generator().manual_seed(4)).double()
    for k in range(made.n_masks):
        naive = sample_naive(made, Gaussian, k, noise)
        fast = sample_incremental(made, Gaussian, k, noise)
        assert torch.isfinite(naive).all()
        torch.testing.assert_close(fast, naive, rtol=1e-9, atol=1e-9)


def test_base_survives_to_arrays_and_pickle():
    import pickle

    made = _any_order_made()
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(5)).double()
    made.float()
    x = x.float()
    for copy in (MADE.from_arrays(made.to_arrays()), pickle.loads(pickle.dumps(made))):
        assert copy.gaussian is not None
        torch.testing.assert_close(copy(x, 1), made(x, 1))


# ---------------------------------------------------------------- the EM fit


def test_em_on_complete_rows_gives_the_weighted_mean_and_the_oas_covariance():
    from sklearn.covariance import OAS

    rng = np.random.RandomState(0)
    Z = rng.randn(300, 3) @ np.array([[1.0, 0.8, 0.0], [0, 0.6, 0.3], [0, 0, 1]])
    mean, cov = gaussian_em(Z, np.ones(300), 0.0, rng)
    assert_allclose(mean, Z.mean(axis=0))
    assert_allclose(cov, OAS().fit(Z).covariance_, rtol=1e-10)
    weights = rng.rand(300)
    mean, _ = gaussian_em(Z, weights, 0.0, rng)
    assert_allclose(mean, np.average(Z, axis=0, weights=weights))


def test_em_recovers_the_covariance_from_rows_with_holes():
    rng = np.random.RandomState(1)
    true_mean, true_cov = _random_gaussian(4, seed=1)
    Z = rng.multivariate_normal(true_mean, true_cov, size=4000)
    holes = Z.copy()
    holes[rng.rand(*Z.shape) < 0.4] = np.nan
    mean, cov = gaussian_em(holes, np.ones(len(Z)), 0.0, rng)
    assert_allclose(mean, Z.mean(axis=0), atol=0.1)
    assert_allclose(cov, np.cov(Z.T), atol=0.15 * np.abs(true_cov).max())
    # Filling the holes with column means and taking moments shrinks the covariances.
    filled = np.where(np.isnan(holes), np.nanmean(holes, axis=0), holes)
    naive_error = np.abs(np.cov(filled.T) - true_cov).max()
    assert np.abs(cov - true_cov).max() < naive_error / 2


def test_em_gives_up_on_a_column_never_observed():
    Z = np.random.RandomState(0).randn(50, 3)
    Z[:, 1] = np.nan
    assert gaussian_em(Z, np.ones(50), 1e-3, np.random.RandomState(0)) is None


def test_marginal_log_likelihood_of_the_observed_entries():
    from scipy import stats

    mean, cov = _random_gaussian(4, seed=3)
    rng = np.random.RandomState(3)
    Z = rng.multivariate_normal(mean, cov, size=6)
    Z[0, 1] = Z[1, [0, 3]] = Z[2, :] = np.nan
    out = marginal_log_likelihood(mean, cov, Z)
    for row, value in zip(Z, out, strict=True):
        o = ~np.isnan(row)
        expected = (
            stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(row[o])
            if o.any()
            else 0.0
        )
        assert_allclose(value, expected)


def test_indicator_gain_is_positive_for_a_predictable_category_only():
    rng = np.random.RandomState(0)
    z = rng.randn(600)
    predictable = np.digitize(z, [-0.5, 0.5])  # three categories read off z
    unrelated = rng.randint(0, 3, 600)
    E = np.column_stack([z, np.eye(3)[predictable], np.eye(3)[unrelated]]).astype(float)
    E[rng.rand(600) < 0.2, 0] = np.nan
    mean, cov = gaussian_em(E[:500], np.ones(500), 1e-3, rng)
    p = np.clip(mean, 0.01, 0.99)
    slope = 1 / (p * (1 - p))
    gain = indicator_gain(mean, cov, E[500:], np.arange(1, 4), slope[1:4])
    assert gain.shape == (100,) and gain.mean() > 0.1
    assert indicator_gain(mean, cov, E[500:], np.arange(4, 7), slope[4:7]).mean() < 0.05
    # Rows where the column is missing are not counted.
    E[500:550, 1:4] = np.nan
    assert indicator_gain(mean, cov, E[500:], np.arange(1, 4), slope[1:4]).shape == (
        50,
    )


def test_categorical_columns_join_the_base_when_validation_says_they_gain():
    from conftest import fast_made

    rng = np.random.RandomState(1)
    z = rng.randn(800)
    X = np.column_stack(
        [
            z,
            z + 0.3 * rng.randn(800),
            np.digitize(z, [-0.5, 0.5]),
            rng.randint(0, 3, 800),
        ]
    ).astype(float)
    X[rng.rand(*X.shape) < 0.2] = np.nan
    est = fast_made(allow_missing=True).fit(X)
    assert (
        list(est.column_distributions_)
        == ["gaussian", "gaussian"] + ["categorical"] * 2
    )
    based = set(est.module_.gaussian.variables.tolist())
    assert {0, 1, 2} <= based and 3 not in based
    assert np.isfinite(est.score_samples(X)).all()
