"""Missing values: marginal likelihoods, training on incomplete rows, conditional
sampling (MADEDensity(allow_missing=True)) and MADEImputer."""

import itertools

import numpy as np
import pytest
import torch
from conftest import correlated_binary, fast_made
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate, stats

from skmade import MADEDensity, MADEImputer


def _with_missing(X, fraction, seed=0):
    rng = np.random.RandomState(seed)
    X = X.astype(float).copy()
    X[rng.rand(*X.shape) < fraction] = np.nan
    return X


def _any_order(**params):
    return fast_made(allow_missing=True, **params)


def _completions(pattern, levels):
    """Every row that fills ``pattern``'s observed columns with values of levels."""
    observed = np.flatnonzero(~np.isnan(pattern))
    rows = []
    for values in itertools.product(*[levels[j] for j in observed]):
        row = pattern.copy()
        row[observed] = values
        rows.append(row)
    return np.array(rows)


def _joint_under(est, X, pattern, k):
    """log p_k(x) of complete rows under mask k, rearranged with the pattern's
    observed columns first: the joint whose marginal a NaN row is scored by."""
    module, family = est.module_, est._family()
    Z = est._columns_.to_internal(X)
    x = torch.as_tensor(Z, dtype=torch.float32)
    missing = torch.as_tensor(np.isnan(pattern)).repeat(len(X), 1)
    with torch.no_grad():
        positions = est._observed_first(module, k, missing)
        params = module.forward_rows(family.encode(x), k, positions)
        log_prob = family.log_prob(params, x, dtype=torch.float64).sum(dim=1)
    return log_prob.numpy() + est._columns_.log_jacobian()


# ---------------------------------------------------------------- exact marginals


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(hidden_layer_sizes=()),
        dict(hidden_layer_sizes=(12, 12), direct_connections=False),
        dict(n_masks=3, order_agnostic=True),
    ],
    ids=["one-layer", "no-hidden", "two-layers", "three-masks"],
)
def test_binary_marginals_sum_to_one_for_every_subset(params):
    X = _with_missing(correlated_binary(400, 4), 0.3)
    est = _any_order(max_iter=15, **params).fit(X)
    levels = [[0.0, 1.0]] * 4
    for size in (1, 2, 3):
        for observed in itertools.combinations(range(4), size):
            pattern = np.full(4, np.nan)
            pattern[list(observed)] = 0.0
            total = np.exp(est.score_samples(_completions(pattern, levels))).sum()
            assert abs(total - 1) < 1e-5, (observed, total)


def test_marginal_is_the_same_masks_joint_summed_over_the_missing_entries():
    X = _with_missing(correlated_binary(400, 5), 0.3)
    est = _any_order(max_iter=15, n_masks=2, order_agnostic=True).fit(X)
    pattern = np.array([1.0, np.nan, 0.0, np.nan, 1.0])
    filled = _completions(
        np.where(np.isnan(pattern), 0.0, np.nan), [[0.0, 1.0]] * 5
    )  # every value of the missing columns
    filled[:, ~np.isnan(pattern)] = pattern[~np.isnan(pattern)]
    joints = np.array([_joint_under(est, filled, pattern, k) for k in range(2)])
    brute = np.log(np.exp(joints).sum(axis=1))  # per mask, summed over x_M
    mixture = np.log(np.mean(np.exp(brute)))
    assert_allclose(est.score_samples(pattern[None])[0], mixture, rtol=1e-6)
    est.set_params(n_eval_masks=1)
    assert_allclose(est.score_samples(pattern[None])[0], brute[0], rtol=1e-6)


def test_mixed_discrete_marginals_sum_to_one():
    rng = np.random.RandomState(0)
    a = rng.randint(0, 3, 500)
    b = (a + (rng.rand(500) < 0.2)) % 2
    c = (a + rng.randint(0, 2, 500)) % 4
    X = _with_missing(np.column_stack([a, b, c]), 0.25)
    est = _any_order(max_iter=15, distribution=["categorical", "bernoulli", "auto"])
    est.fit(X)
    assert list(est.column_distributions_) == [
        "categorical",
        "bernoulli",
        "categorical",
    ]
    levels = [[0.0, 1.0, 2.0], [0.0, 1.0], [0.0, 1.0, 2.0, 3.0]]
    for observed in ([0], [1], [2], [0, 2], [1, 2]):
        pattern = np.full(3, np.nan)
        pattern[observed] = 0.0
        total = np.exp(est.score_samples(_completions(pattern, levels))).sum()
        assert abs(total - 1) < 1e-5, observed


@pytest.mark.parametrize("n_components", [1, 3])
def test_continuous_marginals_integrate_to_one(n_components):
    rng = np.random.RandomState(0)
    z = rng.randn(600, 3) @ np.array([[1.0, 0.6, 0.2], [0, 0.8, 0.5], [0, 0, 0.6]])
    X = _with_missing(z * [2.0, 1.0, 0.5] + [1, 0, -1], 0.3)
    est = _any_order(max_iter=20, n_components=n_components, n_masks=2)
    est.set_params(order_agnostic=True).fit(X)
    # 1-D: column 1 alone.
    grid = np.linspace(-8, 8, 4001)
    rows = np.full((grid.size, 3), np.nan)
    rows[:, 1] = grid
    mass = integrate.trapezoid(np.exp(est.score_samples(rows)), grid)
    assert abs(mass - 1) < 2e-3
    # 2-D: columns 0 and 2.
    g0, g2 = np.linspace(-12, 14, 301), np.linspace(-5, 3, 301)
    xx, yy = np.meshgrid(g0, g2, indexing="ij")
    rows = np.full((xx.size, 3), np.nan)
    rows[:, 0], rows[:, 2] = xx.ravel(), yy.ravel()
    density = np.exp(est.score_samples(rows)).reshape(xx.shape)
    mass = integrate.trapezoid(integrate.trapezoid(density, g2, axis=1), g0)
    assert abs(mass - 1) < 5e-3


# ---------------------------------------------------------------- conditional draws


def test_conditional_binary_draws_follow_the_brute_force_conditional():
    X = _with_missing(correlated_binary(600, 4), 0.3)
    est = _any_order(max_iter=30, n_masks=2, order_agnostic=True).fit(X)
    pattern = np.array([1.0, np.nan, 0.0, np.nan])
    draws = est.sample(4000, random_state=0, given=pattern[None])
    assert_array_equal(draws[:, [0, 2]], np.tile([1.0, 0.0], (4000, 1)))
    cells = list(itertools.product([0.0, 1.0], repeat=2))
    filled = np.tile(pattern, (4, 1))
    filled[:, [1, 3]] = cells
    joints = np.array([_joint_under(est, filled, pattern, k) for k in range(2)])
    marginals = np.log(np.exp(joints).sum(axis=1))
    weights = np.exp(marginals - np.logaddexp.reduce(marginals))
    expected = (weights[:, None] * np.exp(joints - marginals[:, None])).sum(axis=0)
    observed = [np.sum((draws[:, 1] == a) & (draws[:, 3] == b)) for a, b in cells]
    assert stats.chisquare(observed, expected * 4000).pvalue > 1e-3


def test_conditional_gaussian_draws_follow_the_model_conditional():
    rng = np.random.RandomState(1)
    x = rng.randn(800)
    X = _with_missing(np.column_stack([x, x + 0.5 * rng.randn(800)]), 0.2)
    est = _any_order(max_iter=30, n_components=2).fit(X)
    given = np.array([[1.5, np.nan]])
    draws = est.sample(3000, random_state=0, given=given)[:, 1]
    grid = np.linspace(-6, 8, 8001)
    rows = np.column_stack([np.full(grid.size, 1.5), grid])
    # The conditional of the model that answers the query (one mask, its ordering
    # with x0 first), not of score_samples' joint (the mask's own ordering).
    joint = _joint_under(est, rows, given[0], 0)
    density = np.exp(joint - est.score_samples(given)[0])
    cdf = integrate.cumulative_trapezoid(density, grid, initial=0)
    assert abs(cdf[-1] - 1) < 1e-3
    assert stats.kstest(draws, lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3


def test_given_rows_keep_their_values_and_frames_come_back():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "colour": pd.Categorical(rng.choice(["red", "blue", "green"], 300)),
            "size": rng.randn(300) * 3 + 10,
            "flag": rng.randint(0, 2, 300).astype(float),
        }
    )
    frame.loc[rng.rand(300) < 0.2, "size"] = np.nan
    frame.loc[rng.rand(300) < 0.2, "colour"] = np.nan
    est = _any_order(max_iter=10).fit(frame)
    given = frame.iloc[:6]
    out = est.sample(3, random_state=0, given=given)
    assert isinstance(out, pd.DataFrame) and out.shape == (18, 3)
    assert isinstance(out["colour"].dtype, pd.CategoricalDtype)
    assert not out.isna().any().any()
    repeated = given.loc[given.index.repeat(3)].reset_index(drop=True)
    kept = repeated.notna()
    assert (out["size"][kept["size"]] == repeated["size"][kept["size"]]).all()
    assert (out["colour"][kept["colour"]] == repeated["colour"][kept["colour"]]).all()
    again = est.sample(3, random_state=0, given=given)
    pd.testing.assert_frame_equal(out, again)


# ---------------------------------------------------------------- training and API


def test_training_on_incomplete_rows_learns_the_dependencies():
    X_full = correlated_binary(2000, 8, seed=1)
    X = _with_missing(X_full, 0.4)
    est = MADEDensity(hidden_layer_sizes=(32,), allow_missing=True, random_state=0)
    est.fit(X)
    test = correlated_binary(1000, 8, seed=2)
    p = np.clip(np.nanmean(X, axis=0), 1e-3, 1 - 1e-3)
    independent = np.mean(test @ np.log(p) + (1 - test) @ np.log(1 - p))
    assert est.score(test) > independent + 1.0  # the chain is worth 1.9 nats
    # A marginal of complete test rows is their likelihood with the rest missing.
    partial = _with_missing(test, 0.5, seed=3)
    assert np.isfinite(est.score_samples(partial)).all()


def test_complete_rows_score_as_without_missing_entries():
    X = _with_missing(correlated_binary(300, 5), 0.2)
    est = _any_order(max_iter=5, n_masks=2).fit(X)
    complete = correlated_binary(50, 5, seed=4)
    mixed = np.vstack([complete, X[:20]])
    assert_array_equal(est.score_samples(mixed)[:50], est.score_samples(complete))


def test_score_features_of_incomplete_rows_sum_to_the_marginal():
    X = _with_missing(correlated_binary(300, 5), 0.3)
    est = _any_order(max_iter=5, n_masks=3, order_agnostic=True).fit(X)
    contributions = est.score_features(X[:40])
    assert_array_equal(contributions[np.isnan(X[:40])], 0.0)
    assert_allclose(contributions.sum(axis=1), est.score_samples(X[:40]), rtol=1e-9)


def test_allow_missing_is_reproducible_and_tagged():
    X = _with_missing(correlated_binary(200, 4), 0.3)
    a = _any_order(max_iter=5).fit(X).score_samples(X)
    b = _any_order(max_iter=5).fit(X).score_samples(X)
    assert_array_equal(a, b)
    assert MADEDensity(allow_missing=True).__sklearn_tags__().input_tags.allow_nan
    assert not MADEDensity().__sklearn_tags__().input_tags.allow_nan


def test_missing_values_without_allow_missing_get_a_clear_error():
    X = correlated_binary(100, 4)
    holes = _with_missing(X, 0.2)
    with pytest.raises(ValueError, match="allow_missing=True"):
        fast_made(max_iter=2).fit(holes)
    est = fast_made(max_iter=2).fit(X)
    with pytest.raises(ValueError, match="allow_missing=True"):
        est.score_samples(holes)
    with pytest.raises(ValueError, match="allow_missing=True"):
        est.sample(2, given=holes[:2])
    with pytest.raises(ValueError, match="Impute or drop"):
        from skmade import MAFDensity

        MAFDensity(max_iter=1).fit(holes)


# ---------------------------------------------------------------- MADEImputer


def _correlated_gaussian(n, seed=0):
    rng = np.random.RandomState(seed)
    z = rng.randn(n, 4) @ np.array(
        [[1.0, 0.8, 0.6, 0.4], [0, 0.6, 0.5, 0.3], [0, 0, 0.6, 0.4], [0, 0, 0, 0.7]]
    )
    return z


def test_imputer_fills_only_the_missing_entries_and_beats_column_means():
    from sklearn.impute import SimpleImputer

    from skmade import MADEImputer

    X = _correlated_gaussian(600)
    holes = _with_missing(X, 0.3, seed=1)
    imputer = MADEImputer(MADEDensity(hidden_layer_sizes=(32,)), random_state=0)
    filled = imputer.fit_transform(holes)
    observed = ~np.isnan(holes)
    assert not np.isnan(filled).any()
    assert_array_equal(filled[observed], holes[observed])
    assert_array_equal(imputer.transform(holes), filled)  # deterministic
    assert imputer.density_.allow_missing

    def error(F):
        return np.sqrt(np.mean((F[~observed] - X[~observed]) ** 2))

    means = SimpleImputer().fit_transform(holes)
    assert error(filled) < 0.8 * error(means)


def test_imputer_is_near_the_true_conditional_mean_on_gaussian_data():
    # Near-copies of a column: the best prediction of one depends on which of the
    # others a row has (they share the weight when both are seen). The Gaussian
    # base gives the model that for every subset; without it a network trained on
    # 600 rows missed it by far.
    from skmade import MADEImputer

    rng = np.random.RandomState(0)
    z = rng.randn(600, 3)
    X = np.column_stack(
        [z[:, 0], z[:, 0] + 0.1 * z[:, 1], z[:, 0] - 0.1 * z[:, 2], z[:, 1] + z[:, 2]]
    )
    A = np.array([[1, 0, 0], [1, 0.1, 0], [1, 0, -0.1], [0, 1, 1]])
    cov = A @ A.T  # the truth
    holes = _with_missing(X, 0.3, seed=1)
    filled = MADEImputer(fast_made(), random_state=0).fit_transform(holes)
    oracle = holes.copy()
    for row in oracle:
        m, o = np.isnan(row), ~np.isnan(row)
        if m.any() and o.any():
            row[m] = cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], row[o])
        row[m & ~o.any()] = 0.0
    missing = np.isnan(holes)

    def error(F):
        return np.sqrt(np.mean((F[missing] - X[missing]) ** 2))

    assert error(filled) < 1.1 * error(oracle)


def test_imputer_draws_with_sample_posterior_and_handles_discrete_columns():
    from skmade import MADEImputer

    X = np.column_stack([correlated_binary(500, 3), _correlated_gaussian(500)[:, :2]])
    holes = _with_missing(X, 0.25, seed=2)
    made = MADEDensity(hidden_layer_sizes=(16,), max_iter=20)
    a = MADEImputer(made, sample_posterior=True, random_state=0).fit(holes)
    first, second = a.transform(holes), a.transform(holes)
    assert_array_equal(first, second)
    other = a.set_params(random_state=1).transform(holes)
    assert not np.array_equal(first, other)
    point = MADEImputer(made, random_state=0).fit_transform(holes)
    for F in (first, point):
        assert set(np.unique(F[:, :3])) <= {0.0, 1.0}  # binary columns stay binary


def test_imputer_in_a_pipeline_before_a_classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    from skmade import MADEImputer

    X = _correlated_gaussian(400, seed=3)
    y = (X[:, 0] + X[:, 3] > 0).astype(int)
    holes = _with_missing(X, 0.2, seed=4)
    pipe = make_pipeline(
        MADEImputer(MADEDensity(hidden_layer_sizes=(16,), max_iter=30), random_state=0),
        LogisticRegression(),
    )
    assert cross_val_score(pipe, holes, y, cv=3).mean() > 0.75


def test_imputer_refuses_a_density_that_cannot_train_on_missing_entries():
    from skmade import MADEImputer, MAFDensity

    with pytest.raises(ValueError, match="MADEDensity"):
        MADEImputer(MAFDensity()).fit(_with_missing(_correlated_gaussian(50), 0.2))


def test_conditional_log_likelihood_sums_to_one_over_the_missing_entries():
    # Binary columns: p(x_M | x_O) over every completion of a row's holes sums to 1,
    # and equals the ratio of the brute-force joint to its marginal.
    X = _with_missing(correlated_binary(400, 5), 0.3)
    est = _any_order(n_masks=2, order_agnostic=True).fit(X)
    row = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    missing = np.array([False, True, False, True, True])
    completions = _completions(np.where(missing, row, np.nan), [[0, 1]] * 5)
    completions = np.where(missing, completions, row)
    holes = np.repeat(missing[None], len(completions), axis=0)
    conditional = est._conditional_log_likelihood(completions, holes)
    assert_allclose(np.exp(conditional).sum(), 1.0, rtol=1e-6)
    none = est._conditional_log_likelihood(row[None], np.zeros((1, 5), bool))
    assert_array_equal(none, [0.0])


def test_continuous_conditional_log_likelihood_integrates_to_one():
    X = _correlated_gaussian(500)[:, :3] * 3.0 + 1.0  # not standardized
    est = _any_order(n_components=2).fit(_with_missing(X, 0.2))
    row = X[0].copy()
    missing = np.array([[False, True, False]])

    def density(value):
        row[1] = value
        return np.exp(est._conditional_log_likelihood(row[None], missing)[0])

    total, _ = integrate.quad(density, -40, 40, limit=200)
    assert_allclose(total, 1.0, rtol=1e-4)


def test_a_failed_fit_of_an_any_order_model_changes_nothing(monkeypatch):
    # The Gaussian base (its buffers and the trained binary slopes) is part of the
    # model: a fit that fails in the EM fit, in training, or by an interrupt of
    # partial_fit leaves the fitted model exactly as it was.
    import skmade._start as start_module

    rng = np.random.RandomState(0)
    X = np.column_stack([_correlated_gaussian(300)[:, :2], rng.rand(300) < 0.4])
    X = _with_missing(X, 0.2)
    est = _any_order(max_iter=5).fit(X)
    assert est.module_.gaussian is not None
    scores = est.score_samples(X)
    assert np.isfinite(scores).all()
    slope = est.module_.gaussian.slope.detach().clone()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(start_module, "gaussian_em", broken)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[::-1])
    monkeypatch.undo()
    assert_array_equal(est.score_samples(X), scores)

    original_step = torch.optim.Adam.step
    calls = []

    def interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X)
    monkeypatch.undo()
    assert_array_equal(est.score_samples(X), scores)
    torch.testing.assert_close(est.module_.gaussian.slope.detach(), slope)
    with pytest.raises(FloatingPointError):
        est.set_params(learning_rate_init=1e4, early_stopping=False).fit(X)
    assert_array_equal(est.score_samples(X), scores)


def test_completion_of_a_row_does_not_depend_on_the_rows_beside_it():
    rng = np.random.RandomState(7)
    X = rng.randn(120, 5) @ rng.randn(5, 5)
    X[rng.rand(*X.shape) < 0.25] = np.nan
    imputer = MADEImputer(
        density=MADEDensity(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    ).fit(X)
    whole = imputer.transform(X)
    # Equal up to float32 rounding in products of another batch shape.
    np.testing.assert_allclose(
        imputer.transform(X[7:19]), whole[7:19], rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        imputer.transform(X[::-1]), whole[::-1], rtol=1e-6, atol=1e-9
    )
