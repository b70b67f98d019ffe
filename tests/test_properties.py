"""Property-based tests: random small tables of every column kind."""

import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skmade import MADEDensity, MAFDensity

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
given, settings = hypothesis.given, hypothesis.settings

_SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)
_FAST = dict(hidden_layer_sizes=(6,), max_iter=2, device="cpu")


@st.composite
def tables(draw, kinds=("binary", "categorical", "gaussian")):
    """A table of 4-30 rows and 1-5 columns, each of a kind drawn from ``kinds``."""
    n_rows = draw(st.integers(4, 30))
    n_columns = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    columns = []
    for _ in range(n_columns):
        kind = draw(st.sampled_from(kinds))
        if kind == "binary":
            column = (rng.rand(n_rows) < draw(st.floats(0.05, 0.95))).astype(float)
        elif kind == "categorical":
            column = rng.randint(0, draw(st.integers(2, 4)), n_rows).astype(float)
        else:
            scale = 10.0 ** draw(st.integers(-3, 3))
            column = rng.standard_normal(n_rows) * scale + draw(st.integers(-5, 5))
        columns.append(column)
    return np.column_stack(columns), seed


def _fit(make, X, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(**_FAST, random_state=seed % 1000).fit(X)


@_SETTINGS
@given(tables())
def test_scores_are_float64_never_nan_and_independent_of_row_order_and_chunks(table):
    X, seed = table
    est = _fit(MADEDensity, X, seed)
    scores = est.score_samples(X)
    assert scores.shape == (X.shape[0],) and scores.dtype == np.float64
    assert not np.isnan(scores).any()
    assert np.all(np.isfinite(scores))  # training rows are never impossible
    # The network runs in float32, and BLAS may block a product differently for
    # another batch shape: a row's score moves by float32 rounding at most.
    order = np.random.RandomState(seed).permutation(X.shape[0])
    assert_allclose(est.score_samples(X[order]), scores[order], rtol=1e-6)
    half = X.shape[0] // 2
    chunks = np.concatenate([est.score_samples(X[:half]), est.score_samples(X[half:])])
    assert_allclose(chunks, scores, rtol=1e-6)
    features = est.score_features(X)
    assert features.shape == X.shape and not np.isnan(features).any()
    assert_allclose(features.sum(axis=1), scores, rtol=1e-9, atol=1e-9)
    sample = est.sample(3, random_state=0)
    assert sample.shape == (3, X.shape[1])


@_SETTINGS
@given(tables(kinds=("gaussian",)))
def test_maf_scores_are_float64_never_nan(table):
    X, seed = table
    est = _fit(MAFDensity, X, seed)
    scores = est.score_samples(X)
    assert scores.dtype == np.float64 and not np.isnan(scores).any()
    far = X + 1e6 * np.abs(X).max(axis=0) + 1e6
    assert not np.isnan(est.score_samples(far)).any()


@_SETTINGS
@given(tables(kinds=("binary",)), st.integers(1, 3))
def test_binary_models_sum_to_one_over_all_vectors(table, n_masks):
    X, seed = table
    # Both values in every column, so that each one is binary (not constant).
    X = np.vstack([X, np.zeros(X.shape[1]), np.ones(X.shape[1])])
    est = MADEDensity(
        **_FAST, n_masks=n_masks, order_agnostic=True, random_state=seed % 1000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    grid = np.array(list(itertools.product([0, 1], repeat=X.shape[1])), dtype=float)
    assert_allclose(np.exp(est.score_samples(grid)).sum(), 1.0, rtol=1e-5)
