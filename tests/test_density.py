import pickle
import re

import joblib
import numpy as np
import pytest
import torch
from conftest import (
    all_binary_vectors,
    allowed,
    correlated_binary,
    dependence,
    fast_made,
)
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate, stats
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmade import MADEDensity, MADEOutlierDetector, _training
from skmade import _base as base
from skmade._nn import zero_vanishing

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# ---------------------------------------------------------------- exact densities


@pytest.mark.parametrize(
    "params",
    [
        dict(n_masks=1),
        dict(n_masks=8, order_agnostic=True, hidden_layer_sizes=(24, 24)),
        dict(n_masks=4, hidden_layer_sizes=(3,), ordering="random"),
        dict(hidden_layer_sizes=()),
        dict(direct_connections=True, n_masks=3, order_agnostic=True),
    ],
    ids=["one-mask", "8-order-agnostic", "narrow-layer", "no-hidden", "direct"],
)
def test_binary_density_sums_to_one(params):
    X = correlated_binary(400, 8)
    est = fast_made(**params).fit(X)
    total = np.exp(est.score_samples(all_binary_vectors(8))).sum()
    assert abs(total - 1) < 1e-4


@pytest.mark.parametrize("n_eval_masks", [1, 3, 8])
def test_subset_of_eval_masks_is_normalized_too(n_eval_masks):
    est = fast_made(n_masks=8, order_agnostic=True, n_eval_masks=n_eval_masks)
    est.fit(correlated_binary(300, 6))
    total = np.exp(est.score_samples(all_binary_vectors(6))).sum()
    assert abs(total - 1) < 1e-4


def test_ensemble_is_log_mean_exp_of_the_masks():
    X = correlated_binary(300, 6)
    est = fast_made(n_masks=4, order_agnostic=True).fit(X)
    per_mask = []
    for k in range(4):
        est.set_params(n_eval_masks=k + 1)
        per_mask.append(est.score_samples(X[:20]))
    # Mask k alone, recovered from the running means of the first k+1 masks.
    running = np.exp(np.array(per_mask)) * np.arange(1, 5)[:, None]
    single = np.diff(np.vstack([np.zeros(20), running]), axis=0)
    est.set_params(n_eval_masks=None)
    assert_allclose(est.score_samples(X[:20]), np.log(single.mean(axis=0)), rtol=1e-6)


def _two_moons_2d(n_samples, seed=0):
    rng = np.random.RandomState(seed)
    x1 = rng.randn(n_samples) * 1.5
    x2 = 0.5 * x1**2 + 0.7 * rng.randn(n_samples) - 1.0
    return np.column_stack([x1, x2]) * [2.0, 0.5] + [5.0, -3.0]


def test_gaussian_density_integrates_to_one_in_1d():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(200, 1) * 0.5 - 2, rng.randn(300, 1) + 3]) * 10
    est = fast_made(max_iter=50).fit(X)
    assert est.distribution_ == "gaussian"
    grid = np.linspace(X.min() - 60, X.max() + 60, 20001)
    density = np.exp(est.score_samples(grid[:, None]))
    assert abs(integrate.trapezoid(density, grid) - 1) < 1e-2


@pytest.mark.parametrize("n_masks", [1, 4])
def test_gaussian_density_integrates_to_one_in_2d(n_masks):
    X = _two_moons_2d(500)
    est = fast_made(n_masks=n_masks, order_agnostic=True, max_iter=60).fit(X)
    lo, hi = X.min(axis=0), X.max(axis=0)
    width = hi - lo
    g1 = np.linspace(lo[0] - width[0], hi[0] + width[0], 601)
    g2 = np.linspace(lo[1] - width[1], hi[1] + width[1], 601)
    grid = np.stack(np.meshgrid(g1, g2, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(est.score_samples(grid)).reshape(601, 601)
    integral = integrate.trapezoid(integrate.trapezoid(density, g2, axis=1), g1)
    assert abs(integral - 1) < 1e-2


def test_density_is_in_the_units_of_x():
    # Rescaling the data by c must shift log-densities by -D log c (the Jacobian).
    X = _two_moons_2d(300)
    a = fast_made().fit(X)
    b = fast_made().fit(X * 1000.0)
    assert_allclose(b.score_samples(X * 1000.0), a.score_samples(X) - 2 * np.log(1000))


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "params", [dict(n_masks=1), dict(n_masks=5, order_agnostic=True)]
)
def test_binary_samples_follow_the_model(params):
    X = correlated_binary(500, 4)
    est = fast_made(**params).fit(X)
    samples = est.sample(20000, random_state=0)
    assert samples.shape == (20000, 4)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    codes = samples @ (2 ** np.arange(3, -1, -1))
    observed = np.bincount(codes.astype(int), minlength=16)
    expected = np.exp(est.score_samples(all_binary_vectors(4))) * 20000
    assert_allclose(expected.sum(), 20000, rtol=1e-5)
    _, p_value = stats.chisquare(observed, expected * observed.sum() / expected.sum())
    assert p_value > 1e-3


def test_binary_sample_test_detects_a_wrong_sampler():
    # The chi-square test above has power: samples from a model of the same
    # marginals without the dependencies fail it.
    X = correlated_binary(500, 4)
    est = fast_made().fit(X)
    rng = np.random.RandomState(0)
    independent = np.column_stack([rng.permutation(column) for column in X.T])
    other = fast_made().fit(independent)
    samples = other.sample(20000, random_state=0)
    codes = samples @ (2 ** np.arange(3, -1, -1))
    observed = np.bincount(codes.astype(int), minlength=16)
    expected = np.exp(est.score_samples(all_binary_vectors(4))) * 20000
    _, p_value = stats.chisquare(observed, expected * observed.sum() / expected.sum())
    assert p_value < 1e-3


def test_gaussian_samples_match_the_data():
    X = _two_moons_2d(2000)
    est = fast_made(max_iter=80, hidden_layer_sizes=(32,)).fit(X)
    samples = est.sample(4000, random_state=0)
    standardized = (samples - X.mean(axis=0)) / X.std(axis=0)
    assert_allclose(standardized.mean(axis=0), 0, atol=0.15)
    assert_allclose(standardized.std(axis=0), 1, atol=0.15)
    # The dependence of x2 on x1 (x2 grows with x1**2) is reproduced.
    corr = np.corrcoef(samples[:, 0] ** 2, samples[:, 1])[0, 1]
    assert abs(corr - np.corrcoef(X[:, 0] ** 2, X[:, 1])[0, 1]) < 0.15


def test_sample_is_reproducible_and_validates_n_samples():
    est = fast_made().fit(correlated_binary(100, 5))
    assert_array_equal(est.sample(7, random_state=3), est.sample(7, random_state=3))
    assert not np.array_equal(
        est.sample(50, random_state=3), est.sample(50, random_state=4)
    )
    for bad in [0, -2, 1.5, True]:
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            est.sample(bad)


# ---------------------------------------------------------------- learning


def _binarized_digits():
    X = (load_digits().data >= 8).astype(float)
    return train_test_split(X, test_size=0.3, random_state=0)


def test_learns_binarized_digits_better_than_independent_bernoulli():
    X_train, X_test = _binarized_digits()
    est = MADEDensity(
        hidden_layer_sizes=(256,),
        n_masks=4,
        order_agnostic=True,
        early_stopping=True,
        max_iter=150,
        learning_rate_init=3e-3,
        random_state=0,
        device="cpu",
    ).fit(X_train)
    p = np.clip(X_train.mean(axis=0), 1e-3, 1 - 1e-3)
    baseline = np.mean(X_test @ np.log(p) + (1 - X_test) @ np.log(1 - p))
    made = est.score(X_test)
    # Independent Bernoulli scores about -25 nats here, MADE about -18.
    assert made > baseline + 5, (made, baseline)


def test_early_stopping_restores_the_best_weights():
    X_train, _ = _binarized_digits()
    est = MADEDensity(
        hidden_layer_sizes=(64,),
        early_stopping=True,
        n_iter_no_change=3,
        max_iter=200,
        learning_rate_init=1e-2,
        random_state=0,
        device="cpu",
    ).fit(X_train)
    assert len(est.validation_scores_) == est.n_iter_ < 200
    assert est.best_validation_score_ == max(est.validation_scores_)
    # Recompute the validation split the way fit does and score it with the
    # restored weights.
    rng = np.random.RandomState(0)
    validation = rng.permutation(len(X_train))[: int(0.1 * len(X_train))]
    assert_allclose(est.score(X_train[validation]), est.best_validation_score_)
    assert est.validation_scores_[-1] < est.best_validation_score_


def test_training_loss_decreases_and_converges():
    X = correlated_binary(300, 6)
    est = fast_made(max_iter=500, tol=1e-3, n_iter_no_change=5, learning_rate_init=1e-2)
    est.fit(X)
    assert est.n_iter_ < 500
    assert est.loss_curve_[-1] < est.loss_curve_[0] - 0.5
    assert est.best_loss_ == min(est.loss_curve_)


def test_stopping_at_max_iter_warns_at_the_users_line():
    X = correlated_binary(50, 4)
    with pytest.warns(ConvergenceWarning, match="max_iter=2") as record:
        fast_made(max_iter=2).fit(X)
    assert record[0].filename == __file__
    with pytest.warns(ConvergenceWarning) as record:  # through a meta-estimator
        MADEOutlierDetector(density=fast_made(max_iter=2)).fit(X)
    assert record[0].filename == __file__


def test_warm_start_continues_training():
    X = correlated_binary(200, 5)
    est = fast_made(max_iter=5, warm_start=True).fit(X)
    orderings, first_curve = est.orderings_.copy(), list(est.loss_curve_)
    est.fit(X)
    assert est.n_iter_ == 10
    assert est.loss_curve_[:5] == first_curve
    assert_array_equal(est.orderings_, orderings)
    est.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_layer_sizes changed"):
        est.fit(X)


def test_sample_weight_matches_duplicated_rows_in_expectation():
    # Integer weights and duplicated rows give the same objective; a model fitted
    # both ways lands at nearly the same density.
    X = correlated_binary(200, 4)
    weights = np.random.RandomState(0).randint(1, 4, size=200)
    # No early stopping: the two fits would hold out different rows.
    params = dict(
        max_iter=300, learning_rate_init=1e-2, batch_size=10000, early_stopping=False
    )
    weighted = fast_made(**params).fit(X, sample_weight=weights)
    duplicated = fast_made(**params).fit(np.repeat(X, weights, axis=0))
    grid = all_binary_vectors(4)
    assert_allclose(
        np.exp(weighted.score_samples(grid)),
        np.exp(duplicated.score_samples(grid)),
        atol=0.01,
    )
    zero = fast_made(**params).fit(X, sample_weight=np.r_[np.zeros(100), np.ones(100)])
    assert zero.score(X[100:]) > zero.score(X[:100]) - 5  # sanity: it trained
    with pytest.raises(ValueError, match="at least one non-zero"):
        fast_made().fit(X, sample_weight=np.zeros(200))


# ---------------------------------------------------------------- scikit-learn API


def test_pipeline_grid_search_and_clone():
    X = _two_moons_2d(300)
    pipe = make_pipeline(StandardScaler(), fast_made(max_iter=20))
    search = GridSearchCV(
        pipe, {"madedensity__hidden_layer_sizes": [(4,), (32,)]}, cv=3
    )
    search.fit(X)
    assert search.best_params_["madedensity__hidden_layer_sizes"] in [(4,), (32,)]
    assert np.isfinite(search.best_score_)
    assert np.isfinite(search.score(X))
    cloned = clone(search.best_estimator_)
    assert not hasattr(cloned[-1], "module_")


def test_grid_search_over_hidden_layer_sizes_in_parallel():
    X = correlated_binary(300, 6)
    search = GridSearchCV(
        fast_made(max_iter=10), {"hidden_layer_sizes": [(8,), (16, 16)]}, cv=2, n_jobs=2
    ).fit(X)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_persistence_gives_identical_scores(how, tmp_path):
    X = _two_moons_2d(200)
    est = fast_made(n_masks=3, order_agnostic=True).fit(X)
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
    assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    assert_array_equal(loaded.sample(5, random_state=0), est.sample(5, random_state=0))


def test_same_seed_same_model_other_seed_other_masks():
    X = correlated_binary(200, 8)
    a = fast_made(n_masks=3, ordering="random", order_agnostic=True).fit(X)
    b = fast_made(n_masks=3, ordering="random", order_agnostic=True).fit(X)
    c = fast_made(
        n_masks=3, ordering="random", order_agnostic=True, random_state=1
    ).fit(X)
    assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert_array_equal(a.orderings_, b.orderings_)
    assert not np.array_equal(a.orderings_, c.orderings_)
    assert not torch.equal(a.module_.degrees_1, c.module_.degrees_1)
    assert not np.array_equal(a.score_samples(X), c.score_samples(X))


def test_fit_does_not_touch_global_random_state():
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002
    fast_made(max_iter=3).fit(correlated_binary(50, 4)).sample(3, random_state=0)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


def test_hidden_layer_sizes_accepts_an_int_like_mlp():
    est = fast_made(hidden_layer_sizes=12).fit(correlated_binary(50, 4))
    assert est.module_.layers[0].out_features == 12


def test_early_stopping_with_zero_weight_validation_rows():
    X = correlated_binary(40, 4)
    weights = np.r_[np.ones(20), np.zeros(20)]
    est = fast_made(early_stopping=True, validation_fraction=0.25, max_iter=5)
    est.fit(X, sample_weight=weights)
    assert np.all(np.isfinite(est.validation_scores_))


def test_user_ordering_is_used():
    est = fast_made(ordering=[3, 1, 0, 2]).fit(correlated_binary(100, 4))
    assert_array_equal(est.orderings_, [[3, 1, 0, 2]])


def test_pandas_and_float32_input():
    pd = pytest.importorskip("pandas")
    X = _two_moons_2d(200)
    frame = pd.DataFrame(X, columns=["a", "b"])
    est = fast_made().fit(X)
    from_frame = fast_made().fit(frame)
    assert_array_equal(from_frame.feature_names_in_, ["a", "b"])
    assert_array_equal(from_frame.score_samples(frame), est.score_samples(X))
    est32 = fast_made().fit(X.astype(np.float32))
    scores = est32.score_samples(X.astype(np.float32))
    assert scores.dtype == np.float64
    assert_allclose(scores, est.score_samples(X), rtol=1e-4)


def test_explicit_distributions():
    X = correlated_binary(100, 4)
    assert fast_made().fit(X).distribution_ == "bernoulli"
    gaussian = fast_made(distribution="gaussian").fit(
        X + 0.01 * np.random.RandomState(0).randn(100, 4)
    )
    assert gaussian.distribution_ == "gaussian"
    assert gaussian.mean_.shape == gaussian.scale_.shape == (4,)


def test_degenerate_columns_give_finite_scores():
    rng = np.random.RandomState(0)
    X = np.column_stack(
        [
            rng.randn(300) * 1e4,
            np.full(300, 7.0),
            rng.randint(0, 3, 300),
            rng.randn(300) * 1e-4,
        ]
    )
    est = fast_made(max_iter=60).fit(X)
    assert np.all(np.isfinite(est.loss_curve_))
    assert np.all(np.isfinite(est.score_samples(X)))
    assert est.scale_[1] == 1.0


def test_one_feature():
    X = np.random.RandomState(0).randn(300, 1) * 2 + 1
    est = fast_made(max_iter=200, learning_rate_init=1e-2, n_components=1).fit(X)
    # One variable: the model is a single Gaussian, close to the sample's.
    expected = stats.norm(X.mean(), X.std()).logpdf(X[:, 0]).mean()
    assert abs(est.score(X) - expected) < 0.05


# ---------------------------------------------------------------- bad input


def _fitted():
    return fast_made(max_iter=3).fit(correlated_binary(60, 4))


def _state(est):
    return (
        est.n_features_in_,
        est.n_iter_,
        list(est.loss_curve_),
        est.orderings_.copy(),
        {k: v.clone() for k, v in est.module_.state_dict().items()},
        getattr(est, "feature_names_in_", None),
    )


def _assert_same_state(a, b):
    assert a[:3] == b[:3]
    assert_array_equal(a[3], b[3])
    for key in a[4]:
        assert torch.equal(a[4][key], b[4][key])
    assert (a[5] is None) == (b[5] is None)


BAD_FIT_INPUT = [
    (np.array([[0.0, 1.0, np.nan, 0.0]] * 5), {}, "NaN"),
    (np.array([[0.0, 1.0, np.inf, 0.0]] * 5), {}, "infinity"),
    (np.array([0.0, 1.0, 1.0]), {}, "Expected 2D array, got 1D array"),
    (np.empty((0, 4)), {}, "0 sample"),
    (np.ones((1, 4)), {}, "1 sample"),
    (
        np.array([[0, 2, 1, 0.5]] * 4),
        {"distribution": "bernoulli"},
        "columns \\[1, 3\\]",
    ),
    (np.array([["a", "b", "c", "d"]] * 4), {}, "could not convert"),
    (correlated_binary(2, 4), {"early_stopping": True}, "for validation"),
    (correlated_binary(10, 4), {"ordering": [0, 1, 2]}, "length 4"),
    (correlated_binary(10, 4), {"n_masks": 2, "n_eval_masks": 3}, "n_eval_masks=3"),
]


@pytest.mark.parametrize("X, params, match", BAD_FIT_INPUT)
def test_bad_fit_input_raises_and_leaves_the_fitted_model_unchanged(X, params, match):
    est = _fitted()
    before = _state(est)
    est.set_params(**params)
    with pytest.raises(ValueError, match=match):
        est.fit(X)
    _assert_same_state(_state(est), before)


def test_bad_fit_input_with_feature_names_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    est = fast_made(max_iter=3).fit(
        pd.DataFrame(correlated_binary(60, 2), columns=["a", "b"])
    )
    with pytest.raises(ValueError, match="NaN"):
        est.fit(pd.DataFrame([[0, np.nan], [1, 0]], columns=["x", "y"]))
    assert_array_equal(est.feature_names_in_, ["a", "b"])


@pytest.mark.parametrize(
    "X, match",
    [
        (np.ones((3, 5)), "has 5 features"),
        (np.array([[0, 1, 0.5, 0]]), "values other than 0 and 1 in columns \\[2\\]"),
        (np.array([[0, 1, np.nan, 0]]), "NaN"),
        (np.empty((0, 4)), "0 sample"),
    ],
)
def test_bad_score_input_raises(X, match):
    with pytest.raises(ValueError, match=match):
        _fitted().score_samples(X)


def test_cuda_unavailable_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
        fast_made(device="cuda").fit(correlated_binary(20, 3))


# ---------------------------------------------------------------- GPU


@cuda
def test_cuda_fit_matches_cpu_density_and_loads_on_cpu(tmp_path):
    X = _two_moons_2d(300)
    est = fast_made(device="cuda", n_masks=2).fit(X)
    assert next(est.module_.parameters()).device.type == "cuda"
    joblib.dump(est, tmp_path / "gpu.joblib")
    loaded = joblib.load(tmp_path / "gpu.joblib")
    assert all(t.device.type == "cpu" for t in loaded.module_.state_dict().values())
    assert_allclose(loaded.score_samples(X), est.score_samples(X), rtol=1e-5, atol=1e-5)
    grid = np.stack(np.meshgrid(*[np.linspace(-40, 40, 401)] * 2), -1).reshape(-1, 2)
    assert np.isfinite(est.score_samples(grid)).all()
    assert est.sample(10, random_state=0).shape == (10, 2)


@pytest.mark.parametrize("n_masks", [1, 3])
def test_training_keeps_unused_weights_zero_and_the_model_autoregressive(n_masks):
    # With one mask the network skips the mask product and relies on weights
    # outside the mask staying exactly zero through Adam and the L2 term.
    X = correlated_binary(300, 6)
    est = fast_made(n_masks=n_masks, order_agnostic=True, alpha=1.0, max_iter=20).fit(X)
    module = est.module_
    for i, layer in enumerate(module.layers):
        used = torch.zeros_like(layer.weight, dtype=torch.bool)
        for k in range(n_masks):
            used |= module.masks(k)[i].bool()
        assert torch.all(layer.weight[~used] == 0)
    x = torch.rand(2, 6)
    for k in range(n_masks):
        forbidden = ~allowed(est.orderings_[k])
        assert torch.all(dependence(module, k, x)[0][forbidden] == 0)


def test_warm_start_then_sample_uses_the_new_weights():
    X = correlated_binary(300, 6)
    est = fast_made(max_iter=2, warm_start=True).fit(X)
    first = est.sample(2000, random_state=0)
    est.set_params(max_iter=150, learning_rate_init=1e-2).fit(X)
    second = est.sample(2000, random_state=0)
    assert not np.array_equal(first, second)
    # The samples now follow the retrained model: chi-square against its density.
    codes = second @ (2 ** np.arange(5, -1, -1))
    observed = np.bincount(codes.astype(int), minlength=64)
    expected = np.exp(est.score_samples(all_binary_vectors(6)))
    _, p_value = stats.chisquare(observed, expected * observed.sum() / expected.sum())
    assert p_value > 1e-3


# ---------------------------------------------------------------- explanations


@pytest.mark.parametrize(
    "params", [dict(n_masks=1), dict(n_masks=6, order_agnostic=True)], ids=["1", "6"]
)
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_score_features_sum_to_score_samples(params, kind):
    X = correlated_binary(300, 6) if kind == "binary" else _two_moons_2d(300) * 3
    est = fast_made(**params).fit(X)
    contributions = est.score_features(X[:50])
    assert contributions.shape == (50, X.shape[1])
    assert_allclose(contributions.sum(axis=1), est.score_samples(X[:50]), atol=1e-6)


def test_score_features_of_one_mask_are_the_conditionals():
    # Natural ordering, binary: feature 0's contribution is log p(x_0), a marginal
    # that no other feature changes; feature d's depends only on features <= d.
    X = correlated_binary(400, 5)
    est = fast_made(max_iter=100, ordering="natural").fit(X)
    rows = all_binary_vectors(5)
    contributions = est.score_features(rows)
    first = contributions[:, 0]
    assert_allclose(first[rows[:, 0] == 0], first[rows[:, 0] == 0][0])
    assert_allclose(first[rows[:, 0] == 1], first[rows[:, 0] == 1][0])
    assert_allclose(
        np.exp(first[rows[:, 0] == 0][0]) + np.exp(first[rows[:, 0] == 1][0]), 1
    )
    flipped_last = rows.copy()
    flipped_last[:, 4] = 1 - flipped_last[:, 4]
    assert_allclose(est.score_features(flipped_last)[:, :4], contributions[:, :4])


def test_score_features_point_at_the_corrupted_feature():
    X = correlated_binary(1000, 8)
    est = fast_made(max_iter=100, hidden_layer_sizes=(32,)).fit(X)
    normal = np.zeros((1, 8))  # an all-zero chain is likely
    corrupted = normal.copy()
    corrupted[0, 4] = 1  # breaks the chain at feature 4
    delta = est.score_features(corrupted)[0] - est.score_features(normal)[0]
    # The break shows at feature 4 (or at 5, which is predicted from 4).
    assert np.argmin(delta) in (4, 5)
    assert delta.min() < -1


# ---------------------------------------------------------------- partial_fit


def test_partial_fit_trains_one_epoch_per_call_and_keeps_the_optimizer():
    X = correlated_binary(400, 6)
    est = fast_made(learning_rate_init=1e-2)
    for _ in range(30):
        est.partial_fit(X)
    assert est.n_iter_ == 30 and len(est.loss_curve_) == 30
    assert est.loss_curve_[-1] < est.loss_curve_[0] - 0.5
    # Thirty partial_fit epochs land where a 30-epoch fit does (same objective and
    # optimizer; the shuffles differ), far from where 30 fresh-optimizer restarts do.
    full = fast_made(learning_rate_init=1e-2, max_iter=30, early_stopping=False).fit(X)
    assert abs(est.score(X) - full.score(X)) < 0.05
    assert est._optimizer is not None


def test_partial_fit_picks_up_a_new_learning_rate_and_survives_pickling():
    X = correlated_binary(200, 5)
    est = fast_made().partial_fit(X)
    est.set_params(learning_rate_init=0.123).partial_fit(X)
    assert est._optimizer.param_groups[0]["lr"] == 0.123
    loaded = pickle.loads(pickle.dumps(est))
    assert "_optimizer" not in loaded.__dict__ and "_optimizer" in est.__dict__
    loaded.partial_fit(X)
    assert loaded.n_iter_ == 3


def test_partial_fit_ignores_early_stopping_and_checks_features():
    X = correlated_binary(50, 5)
    est = fast_made(early_stopping=True).partial_fit(X)
    assert est.validation_scores_ is None
    with pytest.raises(ValueError, match="has 4 features"):
        est.partial_fit(X[:, :4])
    assert est.n_iter_ == 1


def _fit_and_count_threads(X):
    est = fast_made(max_iter=2).fit(X)
    return torch.get_num_threads(), est.n_iter_


def test_parallel_fits_do_not_oversubscribe_cores():
    # joblib's default (loky) workers limit torch's threads so that n_jobs fits
    # share the cores instead of each using all of them.
    X = correlated_binary(50, 4)
    results = joblib.Parallel(n_jobs=2)(
        joblib.delayed(_fit_and_count_threads)(X) for _ in range(2)
    )
    cores = joblib.cpu_count()
    assert all(threads * 2 <= max(cores, 2) for threads, _ in results)
    assert all(n_iter == 2 for _, n_iter in results)


def test_structural_parameters_changed_after_fit_do_not_change_the_model():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, 3))
    est = MADEDensity(
        hidden_layer_sizes=(16,), n_components=2, max_iter=5, random_state=0
    ).fit(X)
    before = est.score_samples(X)
    draws = est.sample(5, random_state=1)
    est.set_params(n_components=3, hidden_layer_sizes=(8,), n_masks=4)
    assert_array_equal(est.score_samples(X), before)
    assert_allclose(est.score_features(X).sum(axis=1), before, rtol=1e-6, atol=1e-6)
    assert_array_equal(est.sample(5, random_state=1), draws)
    # A refit uses the new values.
    est.fit(X)
    assert est.module_.n_masks == 4


@pytest.mark.parametrize("n_masks", [1, 2])
def test_n_eval_masks_beyond_the_trained_masks_is_a_clear_error(n_masks):
    X = np.random.RandomState(0).standard_normal((100, 3))
    est = MADEDensity(
        hidden_layer_sizes=(8,), n_masks=n_masks, max_iter=2, random_state=0
    ).fit(X)
    est.set_params(n_eval_masks=n_masks)  # within the trained masks: fine
    assert np.all(np.isfinite(est.score_samples(X)))
    est.set_params(n_eval_masks=5)
    for method in (est.score_samples, est.score_features):
        with pytest.raises(ValueError, match=f"n_eval_masks=5.*trained with {n_masks}"):
            method(X)
    with pytest.raises(ValueError, match="n_eval_masks=5"):
        est.sample(3)


@pytest.mark.parametrize(
    "params",
    [
        dict(n_masks=True),
        dict(max_iter=np.True_),
        dict(n_components=False),
        dict(batch_size=True),
        dict(n_eval_masks=True),
    ],
)
def test_booleans_are_not_counts(params):
    from sklearn.utils._param_validation import InvalidParameterError

    X = np.random.RandomState(0).standard_normal((50, 2))
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter.*an int"):
        MADEDensity(**params).fit(X)


def test_dataframe_column_errors_name_the_problem():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {"a": rng.rand(60), "b": pd.Categorical(rng.choice(["x", "y"], 60))}
    )
    est = fast_made(max_iter=2).fit(frame)
    for method in (est.score_samples, est.score_features, est.partial_fit):
        with pytest.raises(ValueError, match=r"another order.*feature_names_in_"):
            method(frame[["b", "a"]])
        with pytest.raises(ValueError, match=r"unseen \['c'\], missing \['a'\]"):
            method(frame.rename(columns={"a": "c"}))
    dated = frame.assign(t=pd.date_range("2020-01-01", periods=60))
    with pytest.raises(ValueError, match="Column 't' has dtype datetime64"):
        fast_made(max_iter=2).fit(dated)


def test_standardization_holds_for_any_finite_magnitude():
    rng = np.random.RandomState(0)
    X = np.c_[
        rng.standard_normal(120) * 1e200,  # squares would overflow
        rng.standard_normal(120) * 1e-300,  # a real spread, not a constant
        np.full(120, 1e54),  # a constant whose rounding errors are 1e38
        rng.standard_normal(120),
    ]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        est = fast_made(max_iter=3, early_stopping=False, distribution="gaussian").fit(
            X
        )
        scores = est.score_samples(X)
        # 'auto' makes the constant 1e54 column categorical (one category).
        auto_scores = fast_made(max_iter=3).fit(X).score_samples(X)
    assert np.all(np.isfinite(scores)) and np.all(np.isfinite(auto_scores))
    units = np.array([1e200, 1e-300])
    assert_allclose(est.scale_[:2], (X[:, :2] / units).std(axis=0) * units, rtol=1e-6)
    assert est.mean_[2] == 1e54
    Z = (X - est.mean_) / est.scale_
    assert np.all(Z[:, 2] == 0)
    assert np.all(np.abs(Z) < 10)


@pytest.mark.parametrize("weight", [1e308, 1e-320])
@pytest.mark.parametrize("name", ["MADEDensity", "MAFDensity"])
def test_uniform_weights_near_the_float64_limits_fit_without_overflow(weight, name):
    import skmade

    X = np.random.RandomState(0).standard_normal((200, 3))
    make = getattr(skmade, name)
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    params["early_stopping"] = False  # compare trained networks, not the start
    if name == "MADEDensity":  # the Gaussian start shrinks less with more rows
        params["direct_connections"] = False
    # Without a penalty the weights' common factor is irrelevant.
    unweighted = make(**params, alpha=0).fit(X).score_samples(X)
    weighted = make(**params, alpha=0).fit(X, sample_weight=np.full(200, weight))
    assert_allclose(weighted.score_samples(X), unweighted, atol=1e-4)
    # Weights count as rows: 200 rows of weight 1e308 make the L2 penalty vanish;
    # weight 1e-320 would make it swamp the data, which is an error naming the cause.
    if weight > 1:
        huge = make(**params).fit(X, sample_weight=np.full(200, weight))
        assert_allclose(huge.score_samples(X), unweighted, atol=1e-4)
    else:
        est = make(**params)
        with pytest.raises(ValueError, match=r"sample_weight sums to 2\*\*-10"):
            est.fit(X, sample_weight=np.full(200, weight))
        assert not hasattr(est, "module_")


@pytest.mark.parametrize("name", ["MADEDensity", "MAFDensity"])
def test_scaling_every_weight_acts_as_dividing_alpha(name):
    import skmade

    X = np.random.RandomState(0).standard_normal((100, 3))
    make = getattr(skmade, name)
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    params["early_stopping"] = False  # compare trained networks, not the start
    ones = make(**params, alpha=1.0).fit(X).score_samples(X)
    threes = make(**params, alpha=3.0).fit(X, sample_weight=np.full(100, 3.0))
    assert_allclose(threes.score_samples(X), ones, rtol=1e-12)
    fours = make(**params, alpha=1.0).fit(X, sample_weight=np.full(100, 4.0))
    assert np.abs(fours.score_samples(X) - ones).max() > 1e-6


@pytest.mark.parametrize("name", ["MADEDensity", "MAFDensity"])
def test_a_fit_that_diverges_or_is_interrupted_changes_nothing(name, monkeypatch):
    from sklearn.exceptions import NotFittedError

    import skmade

    X = np.random.RandomState(0).standard_normal((300, 3))
    make = getattr(skmade, name)
    params = dict(hidden_layer_sizes=(8,), max_iter=4, early_stopping=False)
    est = make(**params, random_state=0).fit(X)
    scores, curve = est.score_samples(X), list(est.loss_curve_)
    # A finite but diverging loss (or NaN) is an error, and the old model stays.
    with pytest.raises(FloatingPointError, match=r"diverged|became nan"):
        est.set_params(learning_rate_init=1e3).fit(X)
    assert_array_equal(est.score_samples(X), scores)
    fresh = make(**params, learning_rate_init=1e3, random_state=0)
    with pytest.raises(FloatingPointError):
        fresh.fit(X)
    with pytest.raises(NotFittedError):
        fresh.score_samples(X)
    # An interrupt inside partial_fit (trained in place) restores network,
    # optimizer, curves and random streams: the next call is as if it never ran.
    est.set_params(learning_rate_init=1e-3)
    twin = make(**params, random_state=0).fit(X)  # est as it was, optimizer too
    original_step = torch.optim.Adam.step
    calls = []

    def interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X)
    monkeypatch.setattr(torch.optim.Adam, "step", original_step)
    assert_array_equal(est.score_samples(X), scores)
    assert est.loss_curve_ == curve
    est.partial_fit(X)
    twin.partial_fit(X)
    assert_array_equal(est.score_samples(X), twin.score_samples(X))


def test_fitted_attributes_before_fit_name_themselves():
    est = fast_made()
    for name in ("mean_", "scale_", "categories_", "distribution_"):
        assert not hasattr(est, name)
        with pytest.raises(AttributeError, match=f"no attribute '{name}' before fit"):
            getattr(est, name)
    est.fit(np.random.RandomState(0).randn(20, 2))
    assert est.mean_.shape == est.scale_.shape == (2,)
    assert est.categories_ == [None, None] and est.distribution_ == "gaussian"


# ---------------------------------------------------------------- progress


def test_verbose_prints_one_line_per_epoch_without_tqdm(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: no tqdm
    X = correlated_binary(200, 5)
    est = fast_made(max_iter=4, verbose=1, early_stopping=True, n_iter_no_change=50)
    est.fit(X)
    lines = [line for line in capsys.readouterr().out.splitlines() if "Epoch" in line]
    assert len(lines) == est.n_iter_ == 4
    pattern = (
        r"Epoch (\d+): loss -?\d+\.\d{6}, validation log-likelihood -?\d+\.\d{6}, "
        r"learning rate [\d.e-]+, \d+\.\d s"
    )
    for n, line in enumerate(lines, 1):
        match = re.fullmatch(pattern, line)
        assert match and int(match.group(1)) == n
    assert f"{est.loss_curve_[-1]:.6f}" in lines[-1]
    assert f"{est.validation_scores_[-1]:.6f}" in lines[-1]
    fast_made(max_iter=2).fit(X)
    assert capsys.readouterr().out == ""  # silent by default


def test_verbose_drives_a_tqdm_bar_when_tqdm_is_installed(capsys, monkeypatch):
    import sys
    import types

    bars = []

    class FakeBar:
        def __init__(self, total, desc, unit):
            self.total, self.desc, self.updates, self.closed = total, desc, 0, False
            self.lines, self.postfix = [], None
            bars.append(self)

        def update(self, n):
            self.updates += n

        def set_postfix(self, postfix, refresh=True):
            self.postfix = postfix

        def write(self, line):
            self.lines.append(line)

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeBar))
    est = fast_made(max_iter=3, verbose=1, early_stopping=False)
    est.fit(correlated_binary(200, 5))
    (bar,) = bars
    assert bar.total == 3 and bar.desc == "MADEDensity" and bar.closed
    assert bar.updates == len(bar.lines) == 3
    assert set(bar.postfix) == {"loss", "lr"}
    assert capsys.readouterr().out == ""  # the lines go through the bar


@pytest.mark.parametrize("device", ["cpu", "cpu:0", torch.device("cpu")])
def test_any_cpu_device_spelling_fits_the_same_model(device):
    X = correlated_binary(200, 4)
    reference = fast_made(device="cpu").fit(X).score_samples(X)
    est = fast_made(device=device).fit(X)
    assert next(est.module_.parameters()).device.type == "cpu"
    assert_array_equal(est.score_samples(X), reference)
    assert_array_equal(
        clone(est).set_params(device=device).fit(X).score_samples(X), reference
    )


@pytest.mark.parametrize(
    "device, message",
    [
        ("tpu-like", "is not a torch device"),
        pytest.param(
            "cuda:7",
            "CUDA device|torch.cuda.is_available",
            marks=pytest.mark.skipif(
                torch.cuda.device_count() > 7, reason="a machine with 8 GPUs"
            ),
        ),
        pytest.param(
            "mps",
            "mps",
            marks=pytest.mark.skipif(
                getattr(torch.backends, "mps", None) is not None
                and torch.backends.mps.is_available(),
                reason="MPS is available here",
            ),
        ),
    ],
)
def test_unusable_devices_raise_before_any_work(device, message):
    X = correlated_binary(50, 3)
    est = fast_made(device="cpu").fit(X)
    before = est.score_samples(X)
    with pytest.raises(ValueError, match=message):
        est.set_params(device=device).fit(X)
    assert_array_equal(est.score_samples(X), before)  # the fitted model is kept


def test_scoring_in_slices_changes_no_score(monkeypatch):
    """Large inputs are checked and scored in slices of whole score blocks: the
    same values as one pass, impossible rows in any slice at -inf."""

    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(700, 2), rng.randint(0, 3, 700)].astype(float)
    est = MADEDensity(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X)
    est.set_params(handle_unknown="ignore")
    X_new = X.copy()
    X_new[[5, 650], 2] = 7  # unknown categories in the first and the third slice
    whole = est.score_samples(X_new)
    monkeypatch.setattr(base, "SCORE_SLICE", base.SCORE_BLOCK)
    sliced = est.score_samples(X_new)
    assert_array_equal(sliced, whole)
    assert np.isneginf(sliced[[5, 650]]).all()
    assert np.isfinite(np.delete(sliced, [5, 650])).all()


# ---------------------------------------------------------------- dropout


def test_dropout_model_is_normalized_and_deterministic_at_inference():
    X = correlated_binary(400, 8)
    est = fast_made(dropout=0.3, hidden_layer_sizes=(32,), max_iter=20).fit(X)
    scores = est.score_samples(all_binary_vectors(8))
    assert abs(np.exp(scores).sum() - 1) < 1e-4
    assert_array_equal(est.score_samples(all_binary_vectors(8)), scores)


def test_dropout_is_reproducible_and_changes_training():
    X = correlated_binary(300, 6)
    params = dict(hidden_layer_sizes=(32,), max_iter=10, direct_connections=True)
    first = fast_made(dropout=0.3, **params).fit(X)
    again = fast_made(dropout=0.3, **params).fit(X)
    plain = fast_made(**params).fit(X)
    assert_array_equal(first.loss_curve_, again.loss_curve_)
    assert_array_equal(first.score_samples(X), again.score_samples(X))
    assert not np.allclose(first.loss_curve_, plain.loss_curve_)


def test_dropout_zeroes_hidden_units_in_training_mode_only():
    est = fast_made(dropout=0.5, hidden_layer_sizes=(64,), max_iter=2)
    est.fit(correlated_binary(200, 6))
    module = est.module_
    module.set_dropout(0.5, torch.Generator().manual_seed(0))
    x = torch.as_tensor(correlated_binary(50, 6), dtype=torch.float32)
    with torch.no_grad():
        module.train()
        out = [module(x) for _ in range(2)]
        module.eval()
        quiet = [module(x) for _ in range(2)]
    assert not torch.equal(out[0], out[1])
    assert torch.equal(quiet[0], quiet[1])
    # The autoregressive property holds under every dropout draw: an output never
    # moves with a later variable.
    module.train()
    x.requires_grad_(True)
    logits = module(x)[:, 0]
    order = est.orderings_[0]
    for position, variable in enumerate(order):
        (grad,) = torch.autograd.grad(logits[:, variable].sum(), x, retain_graph=True)
        assert torch.all(grad[:, order[position:]] == 0)
        assert position == 0 or grad[:, order[:position]].abs().sum() > 0


def test_dropout_model_pickles_and_warm_starts():
    X = correlated_binary(200, 5)
    est = fast_made(dropout=0.2, max_iter=3, warm_start=True).fit(X)
    copy = pickle.loads(pickle.dumps(est))
    assert_array_equal(copy.score_samples(X), est.score_samples(X))
    copy.set_params(dropout=0.0).fit(X)  # continues, without dropout
    assert copy.n_iter_ > est.n_iter_


def test_dropout_of_one_is_rejected_before_any_work():
    with pytest.raises(ValueError, match="dropout"):
        fast_made(dropout=1.0).fit(correlated_binary(20, 3))


# ---------------------------------------------------------------- mixed precision


def test_mixed_precision_trains_in_bfloat16_and_scores_in_float32():
    X = correlated_binary(400, 8)
    # No dropout: the training-mode passes below compare the precisions alone.
    params = dict(
        hidden_layer_sizes=(32,), max_iter=20, direct_connections=True, dropout=0.0
    )
    est = fast_made(mixed_precision=True, **params).fit(X)
    module = est.module_
    assert module.training_dtype is torch.bfloat16
    assert all(p.dtype == torch.float32 for p in module.parameters())
    scores = est.score_samples(all_binary_vectors(8))
    assert abs(np.exp(scores).sum() - 1) < 1e-4
    # Scoring ignores the setting: the same weights score the same without it.
    module.set_precision(None)
    assert_array_equal(est.score_samples(all_binary_vectors(8)), scores)
    # A training-mode pass rounds its products to bfloat16: close, not equal.
    x = torch.as_tensor(X[:50], dtype=torch.float32)
    with torch.no_grad():
        module.train()
        full = module(x)
        module.set_precision(torch.bfloat16)
        mixed = module(x)
        module.eval()
    assert mixed.dtype == torch.float32
    assert not torch.equal(mixed, full)
    torch.testing.assert_close(mixed, full, rtol=0.05, atol=0.05)
    # It learns about as well as full precision.
    plain = fast_made(**params).fit(X)
    assert abs(est.score(X) - plain.score(X)) < 0.05


def test_mixed_precision_is_reproducible_and_autoregressive():
    X = correlated_binary(300, 6)
    params = dict(hidden_layer_sizes=(32,), max_iter=10, mixed_precision=True)
    first = fast_made(**params).fit(X)
    again = fast_made(**params).fit(X)
    assert_array_equal(first.loss_curve_, again.loss_curve_)
    assert_array_equal(first.score_samples(X), again.score_samples(X))
    # In training mode (bfloat16 products) an output never moves with a later
    # variable.
    module = first.module_
    module.train()
    x = torch.as_tensor(X[:40], dtype=torch.float32).requires_grad_(True)
    logits = module(x)[:, 0]
    module.eval()
    order = first.orderings_[0]
    for position, variable in enumerate(order):
        (grad,) = torch.autograd.grad(logits[:, variable].sum(), x, retain_graph=True)
        assert torch.all(grad[:, order[position:]] == 0)
        assert position == 0 or grad[:, order[:position]].abs().sum() > 0


@pytest.mark.parametrize(
    "params",
    [
        dict(allow_missing=True),  # an ordering per row (forward_rows)
        dict(n_masks=3, order_agnostic=True, hidden_layer_sizes=(24, 24)),
    ],
)
def test_mixed_precision_with_row_orderings_and_mask_ensembles(params):
    X = correlated_binary(300, 6)
    est = fast_made(mixed_precision=True, max_iter=5, **params).fit(X)
    scores = est.score_samples(all_binary_vectors(6))
    assert abs(np.exp(scores).sum() - 1) < 1e-4
    assert np.isfinite(est.loss_curve_).all()


def test_mixed_precision_model_pickles_and_warm_starts():
    X = correlated_binary(200, 5)
    est = fast_made(mixed_precision=True, max_iter=3, warm_start=True).fit(X)
    copy = pickle.loads(pickle.dumps(est))
    assert_array_equal(copy.score_samples(X), est.score_samples(X))
    # Each fit sets the precision from the parameter.
    copy.fit(X)
    assert copy.module_.training_dtype is torch.bfloat16
    copy.set_params(mixed_precision=False).fit(X)  # continues in float32
    assert copy.module_.training_dtype is None
    assert copy.n_iter_ == est.n_iter_ + 6


# ------------------------------------------------------- vanishing weights


def test_weights_decaying_to_zero_never_become_subnormal(monkeypatch):
    # A column that is always zero gives its weights no gradient from the data:
    # the L2 penalty decays them geometrically, into float32's subnormal range
    # (slow on CPUs) unless the periodic sweep sets them to zero first.
    X = correlated_binary(300, 6)
    X[:, 2] = 0
    params = dict(
        alpha=50.0,
        batch_size=10,
        max_iter=150,
        early_stopping=False,
        learning_rate="constant",
        direct_connections=True,
    )
    tiny = torch.finfo(torch.float32).tiny

    def subnormal(est):
        return sum(
            int(((p != 0) & (p.abs() < tiny)).sum()) for p in est.module_.parameters()
        )

    swept = fast_made(**params).fit(X)
    assert subnormal(swept) == 0
    monkeypatch.setattr(_training, "_SWEEP_STEPS", 10**9)
    assert subnormal(fast_made(**params).fit(X)) > 0


def test_zero_vanishing_zeroes_tiny_weights_with_their_optimizer_state():
    weight = torch.nn.Parameter(torch.tensor([1e-30, -1e-26, 1e-20, 0.5, 0.0]))
    optimizer = torch.optim.Adam([weight])
    weight.grad = torch.ones(5)
    optimizer.step()
    with torch.no_grad():
        weight.copy_(torch.tensor([1e-30, -1e-26, 1e-20, 0.5, 0.0]))
    state = optimizer.state[weight]
    zero_vanishing(optimizer)
    assert weight.tolist()[:2] == [0.0, 0.0]
    assert weight[2].item() == pytest.approx(1e-20) and weight[3].item() == 0.5
    for name in ("exp_avg", "exp_avg_sq"):
        assert (state[name][:2] == 0).all() and (state[name][2:4] != 0).all()


def test_context_outside_the_training_range_is_clipped_to_it():
    # An outlier in the first column must not throw the later conditionals off:
    # they see the first column at the edge of the (widened) training range, while the
    # outlier's own column is scored at its value (and stays normalized, see the
    # integration tests above, whose grids reach far beyond the data).
    X = _two_moons_2d(300)
    est = fast_made(ordering=[0, 1]).fit(X)
    edge, far = X.copy()[:5], X.copy()[:5]
    top, width = X[:, 0].max(), np.ptp(X[:, 0])
    edge[:, 0], far[:, 0] = top + 0.5 * width, top + 100.0
    at_edge, beyond = est.score_features(edge), est.score_features(far)
    assert_allclose(beyond[:, 1], at_edge[:, 1])
    assert np.all(beyond[:, 0] < at_edge[:, 0] - 100)
    Z = est._columns_.scoring_values(X, "error")[0]  # the model's values of X
    bounds = est.module_.input_bounds()
    margin = 0.5 * np.ptp(Z, axis=0)  # half the range beyond each end
    expected = (Z.min(0) - margin, Z.max(0) + margin)
    for bound, edge in zip(bounds, expected, strict=True):
        assert_allclose(bound.numpy(), edge, rtol=1e-6)
    # Categorical inputs (one-hot) and binary tables are not bounded.
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": X[:, 0], "c": pd.Categorical(X[:, 1] > -3)})
    low, high = fast_made().fit(frame).module_.input_bounds()
    assert np.isfinite(low.numpy()).tolist() == [True, False, False]
    assert np.isfinite(high.numpy()).tolist() == [True, False, False]
    assert fast_made().fit(X > 5).module_.input_bounds() is None
