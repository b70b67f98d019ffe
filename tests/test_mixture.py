import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import all_binary_vectors, correlated_binary, fast_made
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler

from skmade import DensityMixture


def _orderings_mixture(n_features, **params):
    backward = np.arange(n_features)[::-1]
    return DensityMixture(
        [
            ("forward", fast_made(ordering="natural")),
            ("backward", fast_made(ordering=backward)),
        ],
        **params,
    )


def test_mixture_is_the_weighted_sum_of_its_members_and_normalized():
    X = correlated_binary(300, 6)
    mixture = _orderings_mixture(6, weights=[3, 1]).fit(X)
    grid = all_binary_vectors(6)
    forward, backward = (np.exp(m.score_samples(grid)) for m in mixture.estimators_)
    assert_allclose(
        np.exp(mixture.score_samples(grid)), 0.75 * forward + 0.25 * backward
    )
    assert abs(np.exp(mixture.score_samples(grid)).sum() - 1) < 1e-4
    assert_allclose(mixture.weights_, [0.75, 0.25])
    assert mixture.score(X) == pytest.approx(mixture.score_samples(X).mean())
    # The members are different models (they factorize the data differently).
    assert not np.allclose(forward, backward)
    assert mixture.named_estimators_.backward is mixture.estimators_[1]


def test_members_are_clones_fitted_on_their_own():
    X = correlated_binary(200, 5)
    made = fast_made(max_iter=3)
    mixture = DensityMixture([("a", made), ("b", made)]).fit(X)
    assert not hasattr(made, "module_")  # the given estimator stays unfitted
    first, second = mixture.estimators_
    assert first is not second
    assert_array_equal(first.score_samples(X), made.fit(X).score_samples(X))


def test_log_densities_stay_finite_or_minus_inf():
    X = np.random.RandomState(0).rand(200, 1)
    mixture = DensityMixture(
        [
            ("narrow", KernelDensity(kernel="tophat", bandwidth=0.05)),
            ("wide", KernelDensity(kernel="tophat", bandwidth=0.5)),
        ]
    ).fit(X)
    scores = mixture.score_samples(np.array([[0.5], [1.3], [5.0]]))
    assert np.isfinite(scores[:2]).all()
    assert scores[2] == -np.inf
    assert not np.isnan(scores).any()


def test_sample_counts_follow_the_weights():
    X = np.random.RandomState(0).rand(100, 1)
    mixture = DensityMixture(
        [
            ("left", KernelDensity(bandwidth=0.01)),
            ("right", KernelDensity(bandwidth=0.01)),
        ],
        weights=[0.9, 0.1],
    ).fit(X)
    mixture.estimators_[1] = KernelDensity(bandwidth=0.01).fit(X + 10)  # far away
    draws = mixture.sample(2000, random_state=0)
    assert draws.shape == (2000, 1)
    assert np.mean(draws > 5) == pytest.approx(0.1, abs=0.03)
    assert 0 < np.mean(draws[:200] > 5) < 0.3  # shuffled, not member by member
    assert_array_equal(draws, mixture.sample(2000, random_state=0))
    assert not np.array_equal(draws, mixture.sample(2000, random_state=1))


def test_sample_keeps_data_frames():
    frame = pd.DataFrame(correlated_binary(200, 4), columns=list("abcd"))
    frame["d"] = pd.Categorical.from_codes(frame["d"].astype(int), ["no", "yes"])
    mixture = _orderings_mixture(4).fit(frame)
    draws = mixture.sample(7, random_state=0)
    assert isinstance(draws, pd.DataFrame)
    assert list(draws.columns) == list("abcd")
    assert list(draws.index) == list(range(7))
    assert set(draws["d"]) <= {"no", "yes"}
    assert_array_equal(mixture.feature_names_in_, list("abcd"))


@pytest.mark.parametrize(
    ("estimators", "weights", "error", "match"),
    [
        ([], None, ValueError, "estimators is empty"),
        ([fast_made()], None, ValueError, "tuples"),
        ([("a", fast_made()), ("a", fast_made())], None, ValueError, "repeated"),
        ([("scaler", StandardScaler())], None, TypeError, "score_samples"),
        ([("a", fast_made()), ("b", fast_made())], [1.0], ValueError, "one weight"),
        ([("a", fast_made()), ("b", fast_made())], [1.0, -1], ValueError, "positive"),
    ],
)
def test_bad_members_are_rejected_before_any_work(estimators, weights, error, match):
    mixture = DensityMixture(estimators, weights=weights)
    with pytest.raises(error, match=match):
        mixture.fit(correlated_binary(50, 3))
    assert not hasattr(mixture, "estimators_")
    members = [e[1] if isinstance(e, tuple) else e for e in estimators]
    assert all(not hasattr(e, "module_") for e in members)


def test_failed_fit_leaves_a_fitted_mixture_as_it_was():
    X = correlated_binary(200, 4)
    mixture = _orderings_mixture(4).fit(X)
    members, scores = mixture.estimators_, mixture.score_samples(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        mixture.fit(bad)
    assert mixture.estimators_ is members
    assert_array_equal(mixture.score_samples(X), scores)


def test_parallel_fit_and_pickle_give_the_same_scores():
    X = correlated_binary(200, 5)
    serial = _orderings_mixture(5).fit(X)
    parallel = _orderings_mixture(5, n_jobs=2).fit(X)
    assert_allclose(parallel.score_samples(X), serial.score_samples(X), rtol=1e-6)
    copy = pickle.loads(pickle.dumps(serial))
    assert_array_equal(copy.score_samples(X), serial.score_samples(X))
