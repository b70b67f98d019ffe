"""The default training recipe: early stopping, the learning-rate schedule, defaults."""

import itertools
import math

import numpy as np
import pytest
from conftest import correlated_binary as _chain
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import multivariate_normal
from sklearn.covariance import oas
from sklearn.mixture import GaussianMixture

import skmade._start
from skmade import MADEDensity
from skmade._families import linear_gaussian


def _validation_rows(n_samples, random_state=0, fraction=0.1):
    """The rows that fit holds out: the first of its generator's permutation."""
    permutation = np.random.RandomState(random_state).permutation(n_samples)
    return permutation[: math.floor(fraction * n_samples)]


def test_adaptive_rate_drops_only_after_a_plateau():
    X = _chain(400, 8)
    est = MADEDensity(
        hidden_layer_sizes=(64,),
        learning_rate_init=1e-2,
        max_iter=300,
        n_iter_no_change=30,
        random_state=0,
        device="cpu",
    ).fit(X)
    rates = np.array(est.learning_rate_curve_)
    scores = np.array(est.validation_scores_)
    assert rates[0] == 1e-2
    assert np.all(np.diff(rates) <= 0)
    drops = np.flatnonzero(np.diff(rates) < 0) + 1  # first epoch at a lower rate
    assert drops.size >= 2
    for epoch in drops:
        # The epochs just before a drop made no progress over the best score so far.
        best_before = scores[: epoch - 2].max()
        assert scores[epoch - 2 : epoch].max() < best_before + est.tol
        assert_allclose(rates[epoch], rates[epoch - 1] * 0.5)

    constant = MADEDensity(
        hidden_layer_sizes=(64,),
        learning_rate="constant",
        learning_rate_init=1e-2,
        max_iter=40,
        random_state=0,
        device="cpu",
    ).fit(X)
    assert set(constant.learning_rate_curve_) == {1e-2}


def test_early_stopping_restores_the_best_weights():
    # A wide network on few rows overfits: the validation score peaks, then falls.
    X = _chain(200, 10)
    est = MADEDensity(
        hidden_layer_sizes=(256,),
        learning_rate="constant",
        learning_rate_init=1e-2,
        alpha=0.0,
        max_iter=200,
        n_iter_no_change=20,
        random_state=0,
        device="cpu",
    ).fit(X)
    scores = est.validation_scores_
    assert est.best_validation_score_ == max(scores)
    assert scores[-1] < est.best_validation_score_ - 0.01  # restoring matters
    held_out = X[_validation_rows(200)]
    assert_allclose(est.score(held_out), est.best_validation_score_, rtol=1e-6)


def test_validation_monitors_at_most_eight_masks():
    X = _chain(300, 6)
    est = MADEDensity(
        hidden_layer_sizes=(32,),
        n_masks=10,
        order_agnostic=True,
        max_iter=15,
        random_state=0,
        device="cpu",
    ).fit(X)
    held_out = X[_validation_rows(300)]
    best = est.best_validation_score_
    assert_allclose(est.set_params(n_eval_masks=8).score(held_out), best, rtol=1e-6)
    assert abs(est.set_params(n_eval_masks=10).score(held_out) - best) > 1e-6


def test_early_stopping_auto_holds_out_rows_when_it_can():
    X = _chain(100, 4)
    est = MADEDensity(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    assert len(est.fit(X).validation_scores_) == est.n_iter_
    # At least one row is held out whenever two remain for training.
    assert len(est.fit(X[:3]).validation_scores_) == est.n_iter_ > 0
    # Two rows leave none to check training with: 'auto' keeps the start.
    start = MADEDensity(hidden_layer_sizes=(8,), max_iter=1, learning_rate_init=1e-30)
    start.set_params(early_stopping=False, random_state=0).fit(X[:2])
    two = est.fit(X[:2])
    assert two.validation_scores_ is None and two.n_iter_ == 0
    assert_allclose(two.score_samples(X), start.score_samples(X), rtol=1e-6)
    assert est.set_params(early_stopping=False).fit(X).validation_scores_ is None
    with pytest.raises(ValueError, match="at least 2 and 1 are needed"):
        est.set_params(early_stopping=True).fit(X[:2])


def test_defaults_are_exactly_normalized():
    X = _chain(300, 8)
    est = MADEDensity(random_state=0, device="cpu").fit(X)
    grid = np.array(list(itertools.product([0, 1], repeat=8)), dtype=float)
    assert_allclose(np.exp(est.score_samples(grid)).sum(), 1.0, rtol=1e-4)


def test_defaults_learn_from_300_rows():
    # Held-out rows: the defaults beat the best independent (product) model.
    X = _chain(1300, 12, seed=1)
    train, test = X[:300], X[300:]
    est = MADEDensity(random_state=0, device="cpu").fit(train)
    p = (train.sum(axis=0) + 1) / (train.shape[0] + 2)
    independent = (test @ np.log(p) + (1 - test) @ np.log1p(-p)).mean()
    assert est.score(test) > independent + 1.0


def test_a_rows_score_does_not_depend_on_its_neighbours():
    # MADEDensity only: MAF's float32 elementwise kernels (tanh, exp) still round a
    # row differently in a SIMD body and a scalar tail, by about 1e-9 relative.
    X = np.random.RandomState(0).randn(600, 5)
    est = MADEDensity(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X)
    together = est.score_samples(X)
    alone = np.array([est.score_samples(X[i : i + 1])[0] for i in range(0, 600, 37)])
    assert_array_equal(together[::37], alone)
    assert_array_equal(together[300:], est.score_samples(X[300:]))


def test_integer_columns_get_every_integer_in_their_range():
    rng = np.random.RandomState(0)
    X = rng.choice([0.0, 1.0, 3.0, 4.0], size=(200, 2))
    est = MADEDensity(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)
    assert_array_equal(est.categories_[0], [0, 1, 2, 3, 4])
    assert np.all(np.isfinite(est.score_samples([[2.0, 2.0]])))
    # A range wider than max_categories keeps the values seen.
    wide = np.column_stack([rng.choice([0.0, 1.0, 50.0], size=200), X[:, 1]])
    est.fit(wide)
    assert_array_equal(est.categories_[0], [0, 1, 50])
    with pytest.raises(ValueError, match="not seen during fit"):
        est.score_samples([[2.0, 2.0]])


def _weighted_gaussian_data(n=400, d=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) @ rng.randn(d, d) + rng.randn(d)
    return X, rng.uniform(0.5, 2.0, n)


def test_linear_gaussian_is_the_gaussians_conditionals():
    X, weights = _weighted_gaussian_data()
    order = np.array([3, 0, 4, 1, 2])
    coef, intercept, scale = linear_gaussian(X, weights, order, ridge=0.0)
    mean = weights @ X / weights.sum()
    cov = ((X - mean) * weights[:, None]).T @ (X - mean) / weights.sum()
    for i, d in enumerate(order):
        before = order[:i]
        # Conditioning by the Schur complement, variable by variable.
        beta = np.linalg.solve(cov[np.ix_(before, before)], cov[before, d])
        assert_allclose(coef[i, :i], beta, atol=1e-10)
        assert_array_equal(coef[i, i:], 0.0)
        assert_allclose(intercept[i], mean[d] - beta @ mean[before], atol=1e-10)
        variance = cov[d, d] - cov[before, d] @ beta
        assert_allclose(scale[i] ** 2, variance, rtol=1e-10)
    assert linear_gaussian(np.full((3, 2), 1e300), np.ones(3), [0, 1], 0.0) is None


@pytest.mark.parametrize("mixed", [False, True])
def test_continuous_columns_start_at_the_full_gaussian(monkeypatch, mixed):
    # With the hidden path's output weights zeroed (instead of shrunk), the model
    # before training is exactly the Gaussian of the (standardized) training rows;
    # a categorical column does not enter the continuous columns' conditionals.
    monkeypatch.setattr(skmade._start, "_START_HIDDEN_SCALE", 0.0)
    X, _ = _weighted_gaussian_data(300, 4, seed=1)
    continuous = np.arange(4)
    if mixed:
        codes = np.random.RandomState(2).randint(0, 3, size=(300, 1)).astype(float)
        X = np.hstack([codes, X])
        continuous = np.arange(1, 5)
    est = MADEDensity(
        hidden_layer_sizes=(16,),
        n_components=1,
        direct_connections=True,  # 'auto' leaves it out with a categorical column
        learning_rate_init=1e-12,  # one step of Adam moves nothing
        max_iter=1,
        early_stopping=False,
        random_state=0,
    ).fit(X)
    Xc = X[:, continuous]
    mean, std = Xc.mean(axis=0), Xc.std(axis=0)
    # The standardized covariance, shrunk as scikit-learn's OAS does, plus the ridge.
    shrunk, shrinkage = oas((Xc - mean) / std)
    assert 0 < shrinkage < 0.05
    cov = (shrunk + 1e-3 * np.eye(4)) * np.outer(std, std)
    expected = multivariate_normal(mean, cov).logpdf(Xc)
    observed = est.score_features(X)[:, continuous].sum(axis=1)
    assert_allclose(observed, expected, atol=1e-4)


def test_the_starting_point_competes_in_early_stopping():
    # A rate so high that every epoch is worse than the closed-form start: the fit
    # keeps the start, and the held-out rows score as the best validation score.
    X, _ = _weighted_gaussian_data(300, 4)
    est = MADEDensity(
        learning_rate_init=1.0,
        learning_rate="constant",
        n_iter_no_change=2,
        random_state=0,
    ).fit(X)
    assert est.best_validation_score_ > max(est.validation_scores_)
    held_out = X[_validation_rows(300)]
    assert_allclose(est.score(held_out), est.best_validation_score_, rtol=1e-6)


def test_defaults_on_a_small_gaussian_table_match_the_closed_form_gaussian():
    # 300 rows of a correlated 10-D Gaussian: the defaults are about as good on new
    # rows as the maximum-likelihood Gaussian (GaussianMixture, one component).
    rng = np.random.RandomState(1)
    A = rng.randn(10, 10)
    X = rng.multivariate_normal(np.zeros(10), A @ A.T / 10 + 0.1 * np.eye(10), 5300)
    train, test = X[:300], X[300:]
    gaussian = GaussianMixture(1, covariance_type="full").fit(train).score(test)
    default = MADEDensity(random_state=0).fit(train).score(test)
    assert default > gaussian - 0.15
    no_start = MADEDensity(direct_connections=False, random_state=0).fit(train)
    assert default > no_start.score(test) + 1.0


def test_direct_connections_auto_leaves_out_categorical_tables():
    X = np.random.RandomState(0).randint(0, 2, size=(60, 3)).astype(float)
    est = MADEDensity(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    assert est.fit(X).module_.direct is not None  # binary
    assert est.fit(X + X.sum(axis=1, keepdims=True)).module_.direct is None
    assert est.set_params(direct_connections=False).fit(X).module_.direct is None


@pytest.mark.parametrize("name", ["MADEDensity", "MAFDensity"])
def test_tiny_tables_give_sane_held_out_log_densities(name):
    # On 2-8 rows a flexible model collapses onto the rows it saw (held-out rows
    # scored -1e4 to -1e14). The defaults keep the start (an OAS-shrunk Gaussian for
    # MADEDensity, a standard normal after standardization for MAFDensity) unless
    # held-out rows show that training clearly helps. True entropy: -4.26 nats.
    make = getattr(skmade, name)
    mix = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    for n in [2, 3, 5, 8]:
        for seed in range(3):
            rng = np.random.RandomState(seed)
            X = rng.standard_normal((n, 3)) @ mix * [1, 10, 0.1] + 5
            test = rng.standard_normal((1000, 3)) @ mix * [1, 10, 0.1] + 5
            score = make(random_state=0).fit(X).score(test)
            # Two training rows fix each column's scale from one difference.
            assert score > (-400 if n <= 3 else -15), (n, seed, score)


def test_clear_gain_is_a_one_sided_paired_t_test():
    from scipy import stats

    from skmade._training import clear_gain

    rng = np.random.RandomState(0)
    ones = np.ones(20)
    assert not clear_gain(np.array([5.0]), np.ones(1))  # one row shows nothing
    assert clear_gain(np.full(3, 0.1), np.ones(3))  # no spread: any gain is real
    assert not clear_gain(-np.abs(rng.randn(20)), ones)
    for _ in range(20):
        d = rng.randn(20) + 0.5
        p = stats.ttest_1samp(d, 0.0, alternative="greater").pvalue
        assert clear_gain(d, ones) == (p < 0.025)
    assert clear_gain(np.array([np.inf, -1.0]), np.ones(2))
    assert not clear_gain(np.array([-np.inf, 5.0, 5.0]), np.ones(3))
    assert not clear_gain(np.array([np.nan, -1.0, -1.0]), np.ones(3))


def _atoms(n, seed=0):
    """Continuous columns that pile rows on repeated values: half-units (not
    integers, which would be categorical), a zero-inflated column, their sum."""
    rng = np.random.RandomState(seed)
    counts = 0.5 * rng.randint(0, 4, n) * (rng.rand(n) < 0.7)
    inflated = np.where(rng.rand(n) < 0.5, 0.0, rng.gamma(2.0, 1.0, n))
    return np.column_stack([counts, inflated, counts + inflated + 0.1 * rng.randn(n)])


def test_direct_connections_auto_chooses_the_path_on_validation_rows():
    # Atoms: the plain network clearly beats the Gaussian start on the validation
    # rows; a correlated Gaussian: the direct path stays. Either way the kept model
    # is exactly the fit with that setting (both start from the same random state).
    rng = np.random.RandomState(1)
    gaussian = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4))
    # Atoms are modelled as components of their own by default; without them
    # (atoms=False) only the plain network's free components reach them.
    atoms_off = dict(hidden_layer_sizes=(32,), random_state=0, atoms=False)
    plain = dict(hidden_layer_sizes=(32,), random_state=0)
    for X, chosen, params in ((_atoms(600), False, atoms_off), (gaussian, True, plain)):
        auto = MADEDensity(**params).fit(X)
        assert auto.direct_connections_ is chosen
        assert (auto.module_.direct is not None) is chosen
        fixed = MADEDensity(**params, direct_connections=chosen).fit(X)
        assert_array_equal(auto.score_samples(X), fixed.score_samples(X))
        assert auto.loss_curve_ == fixed.loss_curve_
        assert auto.n_iter_ == fixed.n_iter_
        again = MADEDensity(**params).fit(X)
        assert_array_equal(again.score_samples(X), auto.score_samples(X))


def test_direct_path_choice_reads_only_the_fits_validation_rows(monkeypatch):
    # A spy on the validation scoring: every call during fit sees the same rows,
    # held out of the fit's own X (never the test rows scored afterwards).
    X, test = _atoms(400), _atoms(200, seed=1) + 100.0
    seen = []
    original = MADEDensity._validation_log_likelihood

    def spy(self, Z):
        seen.append(np.array(Z, copy=True))
        return original(self, Z)

    monkeypatch.setattr(MADEDensity, "_validation_log_likelihood", spy)
    est = MADEDensity(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(X)
    assert len(seen) > 2 and all(np.array_equal(Z, seen[0]) for Z in seen)
    rows = seen[0] * est.scale_ + est.mean_
    assert rows.shape[0] == 40  # validation_fraction=0.1
    distance = np.abs(rows[:, None, :] - X[None, :, :]).max(axis=2).min(axis=1)
    assert distance.max() < 1e-4  # every validation row is a row of X
    calls = len(seen)
    est.score(test)
    assert len(seen) == calls


def test_direct_path_is_trained_once_where_there_is_nothing_to_choose(monkeypatch):
    import skmade._base

    trained = []
    original = skmade._base.train

    def counting(*args, **kwargs):
        trained.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(skmade._base, "train", counting)
    X = _atoms(100)
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    cases = [
        ({}, 2, None),
        ({"early_stopping": False}, 1, True),
        ({"direct_connections": True}, 1, True),
        ({"direct_connections": False}, 1, False),
        ({"n_masks": 2, "order_agnostic": True}, 1, True),
    ]
    for extra, n_trainings, direct in cases:
        trained.clear()
        est = MADEDensity(**params, **extra).fit(X)
        assert len(trained) == n_trainings, extra
        if direct is not None:
            assert est.direct_connections_ is direct
    trained.clear()
    est = MADEDensity(**params).fit((X > 1).astype(float))  # binary: no choice
    assert len(trained) == 1 and est.direct_connections_ is True
    # warm_start continues the chosen network, training once.
    est = MADEDensity(**params, warm_start=True).fit(X)
    chosen = est.direct_connections_
    trained.clear()
    est.fit(X)
    assert len(trained) == 1 and est.direct_connections_ is chosen


def test_an_interrupted_choice_leaves_the_fitted_model_as_it_was(monkeypatch):
    import skmade._base

    X = _atoms(200)
    est = MADEDensity(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X)
    scores, state = est.score_samples(X), dict(est.__dict__)
    original = skmade._base.train
    calls = []

    def interrupted(*args, **kwargs):  # the second candidate's training
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(skmade._base, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.set_params(max_iter=7).fit(_atoms(300, seed=2))
    assert len(calls) == 2
    assert_array_equal(est.score_samples(X), scores)
    assert est.n_iter_ == state["n_iter_"]
    assert est.direct_connections_ == state["direct_connections_"]
