"""MADERegressor: the conditional density p(y | x) and its regression answers."""

import itertools
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import ndtri
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmade import MADERegressor

_FAST = dict(hidden_layer_sizes=(16,), max_iter=30, random_state=0, device="cpu")


def _heteroscedastic(n, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    scale = 0.1 + 0.3 * np.abs(X[:, 0])
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + scale * rng.standard_normal(n)
    return X, y


def _two_targets(n, seed=0):
    """Two coupled targets: y2 depends on the sign of y1, which is bimodal given x."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 2))
    sign = np.where(rng.rand(n) < 0.5, -1.0, 1.0)
    y1 = sign * (1 + 0.3 * X[:, 0]) + 0.2 * rng.standard_normal(n)
    y2 = sign * X[:, 1] + 0.2 * rng.standard_normal(n)
    return X, np.column_stack([y1, y2])


@pytest.fixture(scope="module")
def one_target():
    X, y = _heteroscedastic(600)
    return MADERegressor(**_FAST, n_components=3).fit(X, y), X, y


def test_conditional_density_integrates_to_one_for_every_x(one_target):
    model, X, _ = one_target
    grid = np.linspace(-12, 12, 6001)
    for x in X[:4]:
        log_density = model.score_samples(np.tile(x, (grid.size, 1)), grid)
        assert np.trapezoid(np.exp(log_density), grid) == pytest.approx(1, abs=1e-4)


def test_two_target_density_integrates_to_one_on_a_grid():
    X, Y = _two_targets(400)
    model = MADERegressor(**_FAST, n_components=2).fit(X, Y)
    grid = np.linspace(-6, 6, 241)
    g1, g2 = np.meshgrid(grid, grid, indexing="ij")
    pairs = np.column_stack([g1.ravel(), g2.ravel()])
    for x in X[:2]:
        density = np.exp(model.score_samples(np.tile(x, (len(pairs), 1)), pairs))
        mass = np.trapezoid(np.trapezoid(density.reshape(g1.shape), grid), grid)
        assert mass == pytest.approx(1, abs=2e-3)


def test_discrete_targets_sum_to_one_over_every_value():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 2))
    y1 = (X[:, 0] > 0).astype(int) + (rng.rand(300) < 0.3)  # 0, 1, 2
    y2 = ((y1 == 1) ^ (rng.rand(300) < 0.2)).astype(int)
    Y = np.column_stack([y1, y2])
    model = MADERegressor(**_FAST, distribution=["categorical", "bernoulli"])
    model.fit(X, Y)
    values = np.array(list(itertools.product([0, 1, 2], [0, 1])), dtype=float)
    for x in X[:3]:
        log_p = model.score_samples(np.tile(x, (len(values), 1)), values)
        assert np.exp(log_p).sum() == pytest.approx(1, abs=1e-6)


def test_outputs_are_autoregressive_over_targets_and_see_every_feature():
    X, Y = _two_targets(200)
    model = MADERegressor(**_FAST, n_components=2).fit(X, Y)
    module, family = model.model_.module_, model.model_._family()
    x = torch.randn(5, 4, requires_grad=True)
    out = module(family.encode(x), 0)  # (n, n_params, D): columns x1, x2, y1, y2
    for d, sees in [(2, [0, 1]), (3, [0, 1, 2])]:
        (grad,) = torch.autograd.grad(out[:, :, d].sum(), x, retain_graph=True)
        seen = np.flatnonzero(grad.abs().sum(dim=0).numpy() > 0)
        assert_array_equal(seen, sees)


def test_predict_is_the_conditional_mean_and_quantiles_invert_the_cdf(one_target):
    model, X, _ = one_target
    grid = np.linspace(-12, 12, 24001)
    levels = [0.05, 0.5, 0.9]
    quantiles = model.predict_quantiles(X[:3], levels)
    assert quantiles.shape == (3, 3)
    for x, mean, row in zip(X[:3], model.predict(X[:3]), quantiles, strict=True):
        density = np.exp(model.score_samples(np.tile(x, (grid.size, 1)), grid))
        assert np.trapezoid(grid * density, grid) == pytest.approx(mean, abs=1e-3)
        cdf = np.cumsum(density) * (grid[1] - grid[0])
        assert_allclose(np.interp(row, grid, cdf), levels, atol=2e-3)
    interval = model.predict_interval(X[:3], coverage=0.9)
    assert_allclose(interval, model.predict_quantiles(X[:3], [0.05, 0.95]))


def test_one_gaussian_component_gives_normal_quantiles():
    X, y = _heteroscedastic(300)
    model = MADERegressor(**_FAST, n_components=1).fit(X, y)
    median, upper = model.predict_quantiles(X[:5], [0.5, 0.8]).T
    assert_allclose(median, model.predict(X[:5]), rtol=1e-9)
    # The normal's quantile: the density at the median gives the scale.
    scale = np.exp(-model.score_samples(X[:5], median)) / np.sqrt(2 * np.pi)
    assert_allclose(upper, median + scale * ndtri(0.8), rtol=1e-6)


def test_intervals_cover_their_probability_on_fresh_rows():
    X, y = _heteroscedastic(3000)
    model = MADERegressor(hidden_layer_sizes=(32,), random_state=0, device="cpu")
    model.fit(X[:2000], y[:2000])
    low, high = model.predict_interval(X[2000:], coverage=0.9).T
    covered = np.mean((y[2000:] >= low) & (y[2000:] <= high))
    assert 0.86 <= covered <= 0.94
    # Heteroscedastic: intervals widen with |x_0| as the noise does.
    width = high - low
    assert np.corrcoef(np.abs(X[2000:, 0]), width)[0, 1] > 0.8


def test_draws_follow_the_conditional(one_target):
    model, X, _ = one_target
    draws = model.sample(X[:2], n_draws=4000, random_state=0)
    assert draws.shape == (2, 4000)
    assert_allclose(draws.mean(axis=1), model.predict(X[:2]), atol=0.03)
    q = model.predict_quantiles(X[:2], [0.25, 0.75])
    assert_allclose(np.quantile(draws, [0.25, 0.75], axis=1).T, q, atol=0.04)
    assert_array_equal(
        model.sample(X[:2], 3, random_state=1), model.sample(X[:2], 3, random_state=1)
    )


def test_joint_draws_keep_the_coupling_of_two_targets():
    X, Y = _two_targets(2000)
    model = MADERegressor(hidden_layer_sizes=(32,), random_state=0, device="cpu")
    model.fit(X, Y)
    x = np.array([[0.0, 1.5]])
    draws = model.sample(x, n_draws=2000, random_state=0)[0]
    assert draws.shape == (2000, 2)
    # y2 has the sign of y1 times x2 = 1.5: the product is positive in most draws.
    assert np.mean(draws[:, 0] * draws[:, 1] > 0) > 0.9
    assert model.predict(x).shape == (1, 2)
    assert model.predict_interval(x).shape == (1, 2, 2)


def test_predict_proba_matches_the_likelihood_of_each_class():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 2))
    labels = np.where(X[:, 0] + 0.3 * rng.standard_normal(300) > 0, "high", "low")
    y = pd.Series(pd.Categorical(labels))
    model = MADERegressor(**_FAST).fit(X, y)
    assert list(model.classes_) == ["high", "low"]
    proba = model.predict_proba(X[:5])
    assert_allclose(proba.sum(axis=1), 1)
    for j, label in enumerate(model.classes_):
        column = pd.Series(pd.Categorical([label] * 5, categories=["high", "low"]))
        assert_allclose(np.exp(model.score_samples(X[:5], column)), proba[:, j])
    assert set(model.predict(X[:5])) <= {"high", "low"}
    with pytest.raises(ValueError, match="continuous targets"):
        model.predict_quantiles(X[:5])


def test_frames_with_categorical_features_in_a_pipeline():
    pd = pytest.importorskip("pandas")
    X, y = _heteroscedastic(300)
    frame = pd.DataFrame(
        {"a": X[:, 0], "b": X[:, 1], "c": pd.Categorical(np.where(y > 0, "u", "v"))}
    )
    model = MADERegressor(**_FAST).fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert model.model_.column_distributions_[2] == "categorical"
    assert np.isfinite(model.score(frame, y))
    unseen = frame.assign(c=pd.Categorical(["w"] * len(frame)))
    with pytest.raises(ValueError, match="not seen during fit"):
        model.score_samples(unseen, y)
    ignore = MADERegressor(**_FAST, handle_unknown="ignore").fit(frame, y)
    assert np.all(ignore.score_samples(unseen, y) == -np.inf)


def test_grid_search_selects_by_conditional_likelihood_or_r2():
    X, y = _heteroscedastic(300)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), MADERegressor(**_FAST)),
        {"maderegressor__n_components": [1, 3]},
        cv=2,
    ).fit(X, y)
    assert np.isfinite(search.best_score_)
    r2 = GridSearchCV(
        MADERegressor(**_FAST), {"n_components": [1, 2]}, cv=2, scoring="r2"
    ).fit(X, y)
    assert 0 < r2.best_score_ <= 1


def test_same_seed_same_model_and_pickle_round_trip():
    X, y = _heteroscedastic(200)
    a = MADERegressor(**_FAST).fit(X, y)
    b = MADERegressor(**_FAST).fit(X, y)
    assert_array_equal(a.score_samples(X, y), b.score_samples(X, y))
    loaded = pickle.loads(pickle.dumps(a))
    assert_array_equal(loaded.score_samples(X, y), a.score_samples(X, y))
    assert_array_equal(loaded.predict_quantiles(X), a.predict_quantiles(X))


def test_skops_round_trip_gives_identical_scores():
    sio = pytest.importorskip("skops.io")
    X, y = _heteroscedastic(200)
    model = MADERegressor(**_FAST).fit(X, y)
    saved = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=saved)
    assert all(name.startswith("skmade.") for name in untrusted)
    loaded = sio.loads(saved, trusted=untrusted)
    assert_array_equal(loaded.score_samples(X, y), model.score_samples(X, y))


def test_a_failed_fit_leaves_the_model_as_it_was(one_target):
    model, X, y = one_target
    before = model.score_samples(X, y)
    state = dict(model.__dict__)
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X, bad)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match="requires y"):
        model.fit(X, None)
    assert model.__dict__.keys() == state.keys()
    assert all(model.__dict__[k] is v for k, v in state.items())
    assert_array_equal(model.score_samples(X, y), before)


def test_wrong_shapes_get_clear_errors(one_target):
    model, X, y = one_target
    with pytest.raises(ValueError, match="2 features"):
        model.predict(X[:, :1])
    with pytest.raises(ValueError, match="target columns"):
        model.score_samples(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.predict_quantiles(X, [0.5, 1.0])
    with pytest.raises(ValueError, match="coverage"):
        model.predict_interval(X, coverage=1.5)
    with pytest.raises(ValueError, match="n_draws"):
        model.sample(X, n_draws=0)


def test_scores_and_predictions_do_not_depend_on_the_other_rows(one_target):
    model, X, y = one_target
    order = np.random.RandomState(0).permutation(len(y))
    scores, predictions = model.score_samples(X, y), model.predict(X)
    assert_allclose(model.score_samples(X[order], y[order]), scores[order], rtol=1e-6)
    assert_allclose(model.predict(X[order]), predictions[order], rtol=1e-6)
    assert_allclose(model.score_samples(X[:7], y[:7]), scores[:7], rtol=1e-6)
    assert_allclose(model.predict_quantiles(X[:7]), model.predict_quantiles(X)[:7])


def test_messages_name_the_regressor():
    X, y = _heteroscedastic(100)
    with pytest.warns(UserWarning, match="MADERegressor stopped at max_iter"):
        MADERegressor(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X, y)


def test_integer_weights_act_as_repeated_rows():
    X, y = _heteroscedastic(60)
    weights = np.random.RandomState(1).randint(0, 4, size=60)
    # Dropout draws differ between weighted and repeated rows: off here.
    params = dict(_FAST, early_stopping=False, batch_size=1000, dropout=0.0)
    repeated = MADERegressor(**params).fit(
        np.repeat(X, weights, axis=0), np.repeat(y, weights)
    )
    weighted = MADERegressor(**params).fit(X, y, sample_weight=weights)
    assert_allclose(
        weighted.score_samples(X, y), repeated.score_samples(X, y), atol=1e-3
    )
    assert_allclose(weighted.predict(X), repeated.predict(X), atol=1e-3)


def test_small_tables_train_for_enough_steps():
    # 300 rows are 9 batches of 32 an epoch: early stopping waits 3,000 Adam steps
    # (not just n_iter_no_change=30 epochs, 270 steps) before giving up.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = rng.normal(size=300)
    est = MADERegressor(hidden_layer_sizes=(8,), random_state=0, device="cpu")
    est.fit(X, y)
    steps_per_epoch = est.model_.n_steps_ // est.n_iter_
    assert steps_per_epoch == int(np.ceil(270 / 32))
    assert est.n_iter_ < est.max_iter
    assert est.model_.n_steps_ >= 3000
    # An explicit batch_size and the density's recipe are unaffected.
    est = MADERegressor(hidden_layer_sizes=(8,), batch_size=100, random_state=0)
    est.set_params(device="cpu").fit(X, y)
    assert est.model_.n_steps_ // est.n_iter_ == 3


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = _heteroscedastic(60)
    params = dict(_FAST, max_iter=3, early_stopping=False)
    with pytest.warns(ConvergenceWarning):
        MADERegressor(**params, verbose=1).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert [line.split(":")[0] for line in lines] == ["Epoch 1", "Epoch 2", "Epoch 3"]
    with pytest.warns(ConvergenceWarning):
        MADERegressor(**params).fit(X, y)
    assert capsys.readouterr().out == ""
