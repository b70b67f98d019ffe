import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError
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
    assert np.all(scores <= 0)  # sums of log p-values
    # contamination is the share of training rows below the threshold.
    assert np.mean(detector.predict(normal) == -1) == pytest.approx(0.1, abs=0.005)
    likelihood = MADEOutlierDetector(
        _small_density(), statistic="likelihood", contamination=0.1
    ).fit(normal)
    assert_allclose(likelihood.score_samples(X), likelihood.density_.score_samples(X))
    assert np.mean(likelihood.predict(normal) == -1) == pytest.approx(0.1, abs=0.005)


@pytest.mark.parametrize(
    "method", ["score_samples", "decision_function", "predict", "score_features"]
)
def test_methods_before_fit_raise_not_fitted(method):
    X = np.zeros((3, 2))
    for detector in (MADEOutlierDetector(), MADEOutlierDetector(_small_density())):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(detector, method)(X)


def test_auto_contamination_flags_one_percent_of_training_rows():
    normal, _ = _correlated_normal_and_anomalies(n_normal=1000)
    detector = MADEOutlierDetector(_small_density()).fit(normal)
    assert np.mean(detector.predict(normal) == -1) == pytest.approx(0.01, abs=0.002)


def test_finds_anomalies_that_break_a_dependency():
    normal, anomalies = _correlated_normal_and_anomalies()
    detector = MADEOutlierDetector(_small_density(), random_state=0).fit(normal[:400])
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


def test_default_density_trains_for_a_step_budget(monkeypatch):
    # A small budget, so that the fit stops at it: 2,000 rows, 10% held out for
    # early stopping, batches of 32 ('auto' below 3,200 rows), so 57 steps per
    # epoch and 3 epochs for 150.
    import skmade._outlier

    monkeypatch.setattr(skmade._outlier, "_DEFAULT_STEPS", 150)
    normal, _ = _correlated_normal_and_anomalies(n_normal=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping at the budget is not a warning
        detector = MADEOutlierDetector(random_state=0).fit(normal)
    assert detector.density_.max_iter == 3
    assert detector.density_.n_iter_ == 3
    assert detector.density is None
    # A density the user passes trains, and warns, as it is set.
    explicit = MADEOutlierDetector._default_density(0).set_params(max_iter=2)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        fitted = MADEOutlierDetector(explicit).fit(normal)
    assert fitted.density_.max_iter == 2


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
    detector = MADEOutlierDetector(_small_density(), random_state=0).fit(normal)
    relative = detector.score_features(normal)
    assert_allclose(relative.mean(axis=0), 0, atol=1e-8)
    assert_allclose(
        detector.score_features(anomalies).sum(axis=1),
        detector.score_samples(anomalies) - detector.score_samples(normal).mean(),
        atol=1e-6,
    )
    # Rescaling one feature changes raw log-densities but not explanations.
    scaled = MADEOutlierDetector(_small_density(), random_state=0)
    scaled.fit(normal * [1000, 1, 1])
    assert_allclose(
        scaled.score_features(anomalies * [1000, 1, 1]),
        detector.score_features(anomalies),
        rtol=1e-4,
        atol=1e-4,
    )


def _mixed_table(n=300, seed=0):
    """A 0/1 column, an integer column with 4 values and two continuous columns."""
    rng = np.random.RandomState(seed)
    binary = rng.randint(0, 2, n)
    level = rng.randint(0, 4, n)
    x = rng.randn(n) + level
    return np.column_stack([binary, level, x, x + 0.1 * rng.randn(n)]).astype(float)


def test_values_never_seen_in_training_are_the_least_likely_and_never_raise():
    X = _mixed_table()
    detector = MADEOutlierDetector(
        MADEDensity(
            hidden_layer_sizes=(16,),
            max_iter=20,
            handle_unknown="ignore",
            random_state=0,
        )
    ).fit(X)
    odd = np.repeat(X[:1], 5, axis=0)
    odd[0, 0] = 0.5  # not 0/1 in a column that was binary
    odd[1, 1] = 7.0  # an integer beyond the training range
    odd[2, 2] = 1e300  # beyond float32 range once standardized
    odd[3, 3] = -1e16 * X[:, 3].std()  # past the 1e15-standard-deviation bound
    with np.errstate(all="raise"):
        scores = detector.score_samples(odd)
        features = detector.score_features(odd)
    assert_array_equal(scores[:4], -np.inf)
    assert np.isfinite(scores[4])
    assert_array_equal(
        detector.predict(odd), [-1, -1, -1, -1, detector.predict(X[:1])[0]]
    )
    for row in range(4):  # -inf exactly at the impossible value, finite elsewhere
        assert features[row, row] == -np.inf
        assert np.all(np.isfinite(np.delete(features[row], row)))


def test_default_detector_scores_unseen_values_as_impossible():
    X = _mixed_table()
    detector = MADEOutlierDetector(random_state=0).fit(X)
    odd = X[:3].copy()
    odd[0, 0], odd[1, 1], odd[2, 2] = 2.0, -3.0, 1e300
    assert_array_equal(detector.score_samples(odd), -np.inf)


def test_density_rejects_non_binary_values_unless_told_to_ignore_them():
    X = _mixed_table()
    density = _small_density(max_iter=3).fit(X)
    odd = X[:2].copy()
    odd[0, 0] = 0.5
    with pytest.raises(ValueError, match="handle_unknown='ignore'"):
        density.score_samples(odd)
    scores = density.set_params(handle_unknown="ignore").score_samples(odd)
    assert scores[0] == -np.inf and np.isfinite(scores[1])


def test_dataframes_with_string_and_categorical_columns_end_to_end():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    n = 300
    city = rng.choice(["Paris", "Lyon", "Nice"], n)
    frame = pd.DataFrame(
        {
            "city": city,
            "kind": pd.Categorical(rng.choice(["flat", "house"], n)),
            "rent": rng.randn(n) + (city == "Paris") * 3,
        }
    )
    detector = MADEOutlierDetector(random_state=0).fit(frame)
    assert_array_equal(detector.feature_names_in_, ["city", "kind", "rent"])
    odd = frame.iloc[:3].copy()
    odd["city"] = ["Paris", "Rome", "Lyon"]  # Rome: never seen
    scores = detector.score_samples(odd)
    assert np.isfinite(scores[[0, 2]]).all() and scores[1] == -np.inf
    assert detector.predict(odd)[1] == -1
    assert detector.score_features(odd)[1, 0] == -np.inf
    with pytest.raises(ValueError, match="feature names"):
        detector.score_samples(odd[["rent", "kind", "city"]])


def test_density_parameters_can_be_tuned_with_the_default_density():
    X = _mixed_table(200)
    detector = MADEOutlierDetector(random_state=3)
    detector.set_params(density__hidden_layer_sizes=(8,), density__max_iter=3)
    assert detector.density.hidden_layer_sizes == (8,)
    assert detector.density.random_state == 3
    assert detector.get_params()["density__handle_unknown"] == "ignore"
    detector.fit(X)
    assert detector.density_.module_.layers[0].out_features == 8

    def mean_log_likelihood(estimator, X, y=None):
        return estimator.score_samples(X).mean()

    search = GridSearchCV(
        MADEOutlierDetector(random_state=0),
        {"density__hidden_layer_sizes": [(4,), (8,)], "density__max_iter": [3]},
        scoring=mean_log_likelihood,
        cv=2,
    ).fit(X)
    assert search.best_params_["density__hidden_layer_sizes"] in [(4,), (8,)]


def test_a_fit_that_fails_inside_the_density_leaves_the_detector_as_it_was():
    X = _mixed_table(200)
    detector = MADEOutlierDetector(_small_density(max_iter=3)).fit(X)
    before = detector.score_samples(X)
    state = dict(detector.__dict__)
    with pytest.raises(ValueError, match="minimum of 2"):
        detector.fit(X[:1, :2])  # passes the detector's checks, not the density's
    assert detector.__dict__.keys() == state.keys()
    assert all(detector.__dict__[k] is v for k, v in state.items())
    assert_array_equal(detector.score_samples(X), before)


def test_weighted_quantile_is_numpys_averaged_inverted_cdf_and_repetition_exact():
    from skmade._utils import weighted_quantile

    rng = np.random.RandomState(0)
    q = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.99, 1.0])
    for n in [1, 2, 5, 17, 300]:
        Z = rng.standard_normal((n, 3))
        assert_allclose(
            weighted_quantile(Z, np.ones(n), q),
            np.quantile(Z, q, axis=0, method="averaged_inverted_cdf"),
            rtol=0,
            atol=1e-15,
        )
        counts = rng.randint(0, 4, size=n)
        counts[0] = 1
        repeated = weighted_quantile(Z.repeat(counts, axis=0), np.ones(counts.sum()), q)
        # Zero weights remove rows; a common factor (here 1/8) changes nothing.
        assert_array_equal(weighted_quantile(Z, counts / 8, q), repeated)
        assert_array_equal(weighted_quantile(Z[:, 0], counts, q), repeated[:, 0])
        # Equal weights of any size (rounding in their cumulative sums) are no weights.
        assert_array_equal(
            weighted_quantile(Z, np.full(n, 0.3), q),
            weighted_quantile(Z, np.ones(n), q),
        )


def test_calibrated_score_is_the_sum_of_empirical_log_pvalues():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=300)
    detector = MADEOutlierDetector(
        _small_density(n_masks=2, order_agnostic=True), random_state=0
    ).fit(normal)
    # Under 4096 rows every training row calibrates: brute force the p-values.
    conditionals = detector.density_._mask_conditionals(normal)
    rows = np.vstack([normal[:20], anomalies])
    surprise = -detector.density_._mask_conditionals(rows)
    expected = np.zeros(surprise.shape)
    for k in range(2):
        for d in range(3):
            cal = -conditionals[k, :, d]
            for i, s in enumerate(surprise[k, :, d]):
                if s <= cal.max():
                    expected[k, i, d] = np.log(np.mean(cal >= s))
                else:  # one nat per nat past the most surprising row
                    expected[k, i, d] = np.log(np.mean(cal >= cal.max())) - (
                        s - cal.max()
                    )
    assert_allclose(
        detector.score_samples(rows), expected.mean(axis=0).sum(axis=1), rtol=1e-10
    )
    assert np.all(detector.score_samples(normal) <= 0)


def test_calibrated_score_is_monotone_in_the_density_and_extremes_score_lowest():
    normal, _ = _correlated_normal_and_anomalies(n_normal=400)
    density = _small_density(distribution="gaussian", ordering="natural")
    detector = MADEOutlierDetector(density, random_state=0).fit(normal)
    # Feature 0 and 2 fixed: only p(x_1 | x_0) changes along the line.
    line = np.column_stack([np.zeros(200), np.linspace(-12, 12, 200), np.zeros(200)])
    log_density = detector.density_.score_samples(line)
    scores = detector.score_samples(line)
    order = np.argsort(-log_density)
    assert np.all(np.diff(scores[order]) <= 1e-12)  # less likely: more abnormal
    assert np.isfinite(scores).all()
    # Values far beyond the training range score below every training row.
    far = normal[:5].copy()
    far[:, 1] = normal[:, 1].max() + 10 * normal[:, 1].std()
    assert detector.score_samples(far).max() < detector.score_samples(normal).min()


def test_calibration_fraction_holds_rows_out_of_the_density():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=400)

    class Spy(KernelDensity):
        def fit(self, X, y=None, sample_weight=None):
            self.n_fit_ = len(X)
            return super().fit(X, y, sample_weight)

    held_out = MADEOutlierDetector(
        Spy(bandwidth=0.3), calibration_fraction=0.25, random_state=0
    ).fit(normal)
    assert held_out.density_.n_fit_ == 300
    in_sample = MADEOutlierDetector(Spy(bandwidth=0.3), random_state=0).fit(normal)
    assert in_sample.density_.n_fit_ == 400
    # Without per-feature conditionals the log-likelihood is calibrated: the same
    # ranking as the density's, as long as rows stay within the calibration range.
    rows = normal[:50]
    assert_array_equal(
        np.argsort(in_sample.score_samples(rows)),
        np.argsort(in_sample.density_.score_samples(rows)),
    )
    assert np.all(held_out.score_samples(anomalies) <= 0)
    with pytest.raises(ValueError, match="calibration_fraction"):
        MADEOutlierDetector(calibration_fraction=1.5).fit(normal)


def test_likelihood_statistic_scores_by_the_density():
    normal, anomalies = _correlated_normal_and_anomalies(n_normal=300)
    detector = MADEOutlierDetector(
        _small_density(), statistic="likelihood", random_state=0
    ).fit(normal)
    assert not hasattr(detector, "calibration_")
    assert_allclose(
        detector.score_samples(anomalies), detector.density_.score_samples(anomalies)
    )
    assert_allclose(
        detector.score_features(anomalies),
        detector.density_.score_features(anomalies) - detector.feature_offsets_,
    )


def test_calibration_weights_act_as_repeated_rows_in_and_beyond_its_range():
    from skmade._calibration import SurpriseCalibration

    rng = np.random.RandomState(0)
    surprises = rng.rand(2, 12, 3)
    weights = rng.randint(0, 4, 12).astype(float)
    weights[np.argmax(surprises[0, :, 0])] = 3  # the largest value, repeated
    weighted = SurpriseCalibration(surprises, weights)
    repeated = SurpriseCalibration(
        np.repeat(surprises, weights.astype(int), axis=1),
        np.ones(int(weights.sum())),
    )
    new = np.concatenate([surprises, surprises + 0.5, rng.rand(2, 20, 3) * 3], axis=1)
    assert_allclose(weighted.log_pvalues(new), repeated.log_pvalues(new))
