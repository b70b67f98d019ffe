import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from skmade import MADEDensity, MADEOutlierDetector


def _small_density(**params):
    defaults = dict(
        hidden_layer_sizes=(16,),
        max_iter=60,
        learning_rate_init=1e-2,
        random_state=0,
        device="cpu",
    )
    return MADEDensity(**{**defaults, **params})


def _correlated_normal_and_anomalies(n_normal=600, n_anomalies=30, seed=0):
    """Normal rows follow x1 ~ x0; anomalies break that, with normal marginals."""
    rng = np.random.RandomState(seed)
    x0 = rng.randn(n_normal)
    normal = np.column_stack([x0, x0 + 0.1 * rng.randn(n_normal), rng.randn(n_normal)])
    a0 = rng.randn(n_anomalies)
    anomalies = np.column_stack(
        [a0, -a0 + 0.1 * rng.randn(n_anomalies), rng.randn(n_anomalies)]
    )
    return normal, anomalies


def test_api_is_consistent():
    normal, anomalies = _correlated_normal_and_anomalies()
    detector = MADEOutlierDetector(_small_density(), contamination=0.1).fit(normal)
    X = np.vstack([normal[:50], anomalies])
    scores = detector.score_samples(X)
    assert_allclose(detector.decision_function(X), scores - detector.offset_)
    assert_array_equal(detector.predict(X), np.where(scores < detector.offset_, -1, 1))
    assert_allclose(scores, detector.density_.score_samples(X))
    # contamination is the share of training rows below the threshold.
    assert np.mean(detector.predict(normal) == -1) == pytest.approx(0.1, abs=0.005)


def test_auto_contamination_flags_one_percent_of_training_rows():
    normal, _ = _correlated_normal_and_anomalies(n_normal=1000)
    detector = MADEOutlierDetector(_small_density()).fit(normal)
    assert np.mean(detector.predict(normal) == -1) == pytest.approx(0.01, abs=0.002)


def test_finds_anomalies_that_break_a_dependency():
    normal, anomalies = _correlated_normal_and_anomalies()
    detector = MADEOutlierDetector(_small_density()).fit(normal[:400])
    X = np.vstack([normal[400:], anomalies])
    y = np.r_[np.zeros(200), np.ones(30)]
    assert roc_auc_score(y, -detector.score_samples(X)) > 0.95
    # Where the dependency is clearly broken (x1 far from x0), the explanation points
    # at feature 1 (or 0), not at the independent feature 2.
    clear = np.abs(anomalies[:, 0] - anomalies[:, 1]) > 1.5
    assert clear.sum() >= 10
    contributions = detector.score_features(anomalies[clear])
    assert np.all(np.argmin(contributions, axis=1) != 2)


def test_default_density_and_random_state():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=300)
    a = MADEOutlierDetector(random_state=0).fit(normal)
    b = MADEOutlierDetector(random_state=0).fit(normal)
    assert isinstance(a.density_, MADEDensity)
    assert a.density is None  # the parameter is left as given
    assert_array_equal(a.score_samples(anomalies), b.score_samples(anomalies))


def test_grid_search_tunes_the_density():
    normal, _ = _correlated_normal_and_anomalies(n_normal=300)

    def mean_log_likelihood(estimator, X, y=None):
        return estimator.score_samples(X).mean()

    search = GridSearchCV(
        MADEOutlierDetector(_small_density(max_iter=10)),
        {"density__hidden_layer_sizes": [(4,), (16,)]},
        scoring=mean_log_likelihood,
        cv=2,
    ).fit(normal)
    assert search.best_params_["density__hidden_layer_sizes"] in [(4,), (16,)]


def test_any_density_with_score_samples():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=300)
    detector = MADEOutlierDetector(KernelDensity(bandwidth=0.3)).fit(normal)
    assert detector.score_samples(anomalies).shape == (30,)
    assert not hasattr(detector, "score_features")
    assert hasattr(MADEOutlierDetector(), "score_features")


def test_sample_weight_reaches_the_density_and_the_threshold():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=300)
    X = np.vstack([normal, anomalies])
    weights = np.r_[np.ones(300), np.zeros(30)]
    detector = MADEOutlierDetector(_small_density(), contamination=0.1)
    detector.fit(X, sample_weight=weights)
    # Zero-weight rows neither shape the density nor move the threshold: about
    # 10% of the weighted (normal) rows fall below it.
    assert np.mean(detector.predict(normal) == -1) == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match="does not accept sample_weight"):
        MADEOutlierDetector(GaussianMixture()).fit(X, sample_weight=weights)


def test_mixed_scale_tabular_data_gives_finite_scores():
    rng = np.random.RandomState(0)
    n = 400
    X = np.column_stack(
        [
            rng.randn(n) * 1e6 + 1e7,  # huge scale and offset
            rng.randn(n) * 1e-6,  # tiny scale
            np.full(n, 3.0),  # constant
            rng.randint(0, 3, n).astype(float),  # near-discrete
            rng.poisson(0.2, n).astype(float),  # mostly zeros
            (rng.rand(n) < 0.5).astype(float),  # binary
        ]
    )
    detector = MADEOutlierDetector(random_state=0).fit(X)
    assert np.all(np.isfinite(detector.density_.loss_curve_))
    scores = detector.score_samples(X)
    assert np.all(np.isfinite(scores))
    assert list(detector.density_.column_distributions_) == [
        "gaussian",
        "gaussian",
        "categorical",
        "categorical",
        "categorical",
        "bernoulli",
    ]
    odd = X[:5].copy()
    odd[:, 2] = 4.0  # the constant (one-category) column takes an unseen value
    odd_scores = detector.score_samples(odd)
    assert np.all(odd_scores == -np.inf)  # impossible under the model: most abnormal
    assert np.all(detector.predict(odd) == -1)
    assert not np.isnan(detector.score_features(odd)).any()
    # What changed is feature 2, and the explanation of the change says so.
    change = detector.score_features(odd) - detector.score_features(X[:5])
    assert np.all(np.argmin(change, axis=1) == 2)
    assert np.all(change[:, 2] < -1)


def test_bad_input_leaves_the_fitted_detector_unchanged():
    normal, _ = _correlated_normal_and_anomalies(n_normal=200)
    detector = MADEOutlierDetector(_small_density(max_iter=5)).fit(normal)
    offset, density = detector.offset_, detector.density_
    bad = normal.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        detector.fit(bad)
    assert detector.offset_ == offset and detector.density_ is density
    with pytest.raises(ValueError, match="has 2 features"):
        detector.predict(normal[:, :2])


def test_pickle_round_trip():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=200)
    detector = MADEOutlierDetector(_small_density(max_iter=5)).fit(normal)
    loaded = pickle.loads(pickle.dumps(detector))
    assert_array_equal(
        loaded.decision_function(anomalies), detector.decision_function(anomalies)
    )


def test_explanations_are_relative_to_typical_rows():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=300)
    detector = MADEOutlierDetector(_small_density()).fit(normal)
    relative = detector.score_features(normal)
    assert_allclose(relative.mean(axis=0), 0, atol=1e-8)
    assert_allclose(
        detector.score_features(anomalies).sum(axis=1),
        detector.score_samples(anomalies) - detector.score_samples(normal).mean(),
        atol=1e-6,
    )
    # Rescaling one feature changes raw log-densities but not explanations.
    scaled = MADEOutlierDetector(_small_density()).fit(normal * [1000, 1, 1])
    assert_allclose(
        scaled.score_features(anomalies * [1000, 1, 1]),
        detector.score_features(anomalies),
        rtol=1e-4,
        atol=1e-4,
    )
