"""Streamed fits: training on a dask array block by block, never holding it."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmade import MADEDensity, MADEImputer, MADEOutlierDetector, MAFDensity, _stream

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")


def mixed_table(n=1200, seed=0):
    """Two correlated continuous columns, a binary one, a 4-level one."""
    rng = np.random.RandomState(seed)
    z = rng.randn(n, 2) @ np.array([[1.0, 0.8], [0.0, 0.6]])
    binary = (z[:, :1] + 0.5 * rng.randn(n, 1) > 0).astype(float)
    level = np.clip(np.round(z[:, 1:] + 1.5 + 0.3 * rng.randn(n, 1)), 0, 3)
    return np.hstack([3 * z + 5, binary, level])


def counted(X, chunk):
    """X as a dask array built from its blocks, with a list of the blocks made."""
    made = []

    def make(start, stop):
        made.append((start, stop))
        return X[start:stop]

    blocks = [
        da.from_delayed(
            dask.delayed(make)(s, min(s + chunk, len(X))),
            shape=(min(chunk, len(X) - s), X.shape[1]),
            dtype=X.dtype,
        )
        for s in range(0, len(X), chunk)
    ]
    return da.concatenate(blocks), made


def quiet_fit(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, **kw)


SMALL = dict(hidden_layer_sizes=(24,), max_iter=15, random_state=0)


def test_streamed_fit_starts_where_the_in_memory_fit_does():
    """Without held-out rows, the column state, the masks and the start weights are
    those of the in-memory fit; only the batches differ."""
    X = mixed_table()
    w = np.random.RandomState(1).rand(len(X))
    params = dict(SMALL, early_stopping=False, max_iter=2, learning_rate_init=1e-12)
    memory = quiet_fit(MADEDensity(**params), X, sample_weight=w)
    lazy = da.from_array(X, chunks=(250, 3))
    streamed = quiet_fit(
        MADEDensity(**params), lazy, sample_weight=da.from_array(w, chunks=300)
    )
    assert list(streamed.column_distributions_) == list(memory.column_distributions_)
    np.testing.assert_allclose(streamed.mean_, memory.mean_, rtol=1e-12)
    np.testing.assert_allclose(streamed.scale_, memory.scale_, rtol=1e-12)
    np.testing.assert_array_equal(streamed.categories_[3], memory.categories_[3])
    np.testing.assert_array_equal(streamed.orderings_, memory.orderings_)
    before, after = memory.module_.state_dict(), streamed.module_.state_dict()
    for name, value in before.items():
        # A rate of 1e-12 moves no weight by more than 1e-11 in two epochs.
        np.testing.assert_allclose(after[name], value, atol=1e-9, err_msg=name)
    assert streamed.n_features_in_ == 4
    assert not hasattr(streamed, "feature_names_in_")


def test_streamed_fit_learns_as_well_as_in_memory():
    X, X_test = mixed_table(), mixed_table(seed=5)
    memory = quiet_fit(MADEDensity(**SMALL), X)
    streamed = quiet_fit(MADEDensity(**SMALL), da.from_array(X, chunks=(200, 4)))
    independent = quiet_fit(
        MADEDensity(hidden_layer_sizes=(), **{"max_iter": 15, "random_state": 0}),
        X,
    )
    assert streamed.validation_scores_ and len(streamed.validation_scores_) > 1
    # Other validation rows and batches: as good, give or take the noise of both.
    assert streamed.score(X_test) > memory.score(X_test) - 0.1
    assert streamed.score(X_test) > independent.score(X_test) + 0.2


def test_every_block_is_read_once_per_pass():
    """One pass to survey, one per epoch: the array is never computed whole."""
    X = mixed_table(n=900)
    lazy, made = counted(X, 200)
    est = quiet_fit(MADEDensity(**SMALL), lazy)
    n_blocks = 5
    assert len(made) == n_blocks * (1 + est.n_iter_)
    assert all(stop - start <= 200 for start, stop in made)


def test_batches_run_across_block_boundaries():
    X = mixed_table(n=1000)
    stream = _stream.RowStream(da.from_array(X, chunks=(130, 4)), None, np.asarray, "")
    rows = _stream.StreamedRows(
        stream,
        np.zeros(stream.n_blocks, dtype=np.int64),
        np.zeros(stream.n_blocks, dtype=np.int64),
        lambda A: A,
        lambda A, w: np.ones(len(A)),
        1000.0,
        torch.device("cpu"),
    )
    sizes, seen = [], []
    for x, _ in rows.batches(64, torch.Generator().manual_seed(0)):
        sizes.append(x.shape[0])
        seen.append(x.numpy())
    assert sizes == [64] * 15 + [40]
    seen = np.concatenate(seen)
    # Every row exactly once, in a shuffled order.
    order = np.lexsort(seen.T)
    np.testing.assert_array_equal(seen[order], X.astype(np.float32)[np.lexsort(X.T)])
    assert not np.array_equal(seen, X.astype(np.float32))


def test_validation_and_start_rows_are_capped(monkeypatch):
    monkeypatch.setattr(_stream, "SAMPLE_VALUES", 400)  # 100 rows of 4 values
    X = mixed_table(n=3000)
    seen = {}
    build = MADEDensity._build_module

    def spy(self, Z, weights, Z_val, weights_val, *args):
        seen["start"], seen["validation"] = Z.shape[0], Z_val.shape[0]
        return build(self, Z, weights, Z_val, weights_val, *args)

    monkeypatch.setattr(MADEDensity, "_build_module", spy)
    est = quiet_fit(MADEDensity(**SMALL), da.from_array(X, chunks=(500, 4)))
    assert seen == {"start": 100, "validation": 100}
    assert np.isfinite(est.score(X))


def test_categories_come_from_every_block():
    """A category first seen in the last block is known (not an error in a later
    chunk, as with partial_fit over chunks)."""
    X = mixed_table(n=800)
    X[:, 3] = np.minimum(X[:, 3], 2)
    X[-5:, 3] = 7
    est = quiet_fit(MADEDensity(**SMALL), da.from_array(X, chunks=(200, 4)))
    np.testing.assert_array_equal(est.categories_[3], np.arange(8))
    assert np.all(np.isfinite(est.score_samples(X[-5:])))


def test_streamed_fit_is_reproducible():
    X = mixed_table()
    lazy = da.from_array(X, chunks=(300, 4))
    first = quiet_fit(MADEDensity(**SMALL), lazy).score_samples(X)
    second = quiet_fit(MADEDensity(**SMALL), lazy).score_samples(X)
    np.testing.assert_array_equal(first, second)


def test_streamed_partial_fit_continues():
    X = mixed_table()
    lazy = da.from_array(X, chunks=(300, 4))
    est = MADEDensity(**SMALL)
    scores = []
    for _ in range(4):
        est.partial_fit(lazy)
        scores.append(est.score(X))
    assert est.n_iter_ == 4 and scores[-1] > scores[0]
    unknown = X.copy()
    unknown[-1, 3] = 9
    state = est.module_.state_dict()["layers.0.weight"].clone()
    with pytest.raises(ValueError, match="not seen during fit"):
        est.partial_fit(da.from_array(unknown, chunks=(300, 4)))
    assert est.n_iter_ == 4
    np.testing.assert_array_equal(est.module_.state_dict()["layers.0.weight"], state)


def test_missing_entries_stream_with_allow_missing():
    X = mixed_table(n=600)
    X[np.random.RandomState(0).rand(*X.shape) < 0.1] = np.nan
    lazy = da.from_array(X, chunks=(150, 4))
    with pytest.raises(ValueError, match="NaN"):
        MADEDensity(**SMALL).fit(lazy)
    est = quiet_fit(MADEDensity(**SMALL, allow_missing=True), lazy)
    assert np.all(np.isfinite(est.score_samples(X)))


def test_maf_streams_too():
    X, X_test = mixed_table()[:, :2], mixed_table(seed=5)[:, :2]
    params = dict(n_flows=2, hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    memory = quiet_fit(MAFDensity(**params), X)
    streamed = quiet_fit(MAFDensity(**params), da.from_array(X, chunks=(300, 2)))
    assert streamed.score(X_test) > memory.score(X_test) - 0.1


def test_bad_streams_fail_before_any_work_and_keep_the_fitted_model():
    X = mixed_table(n=400)
    est = quiet_fit(MADEDensity(**SMALL), X)
    before = est.score_samples(X)
    lazy, made = counted(X, 100)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        est.fit(lazy, sample_weight=np.ones(10))
    unknown_rows = da.from_array(X, chunks=(100, 4))[da.from_array(X[:, 0]) > 5]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        est.fit(unknown_rows)
    with pytest.raises(TypeError, match="2-D dask arrays"):
        est.fit(da.from_array(X[:, 0]))
    assert made == []
    bad = X.copy()
    bad[-1, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.fit(da.from_array(bad, chunks=(100, 4)))
    np.testing.assert_array_equal(est.score_samples(X), before)


def test_outlier_detector_and_imputer_fit_on_streams():
    X = mixed_table(n=800)
    lazy = da.from_array(X, chunks=(200, 4))
    density = MADEDensity(**SMALL)
    memory = MADEOutlierDetector(density=density, contamination=0.1)
    streamed = MADEOutlierDetector(density=density, contamination=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        memory.fit(X)
        streamed.fit(lazy)
    assert streamed.n_features_in_ == 4
    # The threshold is the training rows' 10% quantile, as in memory.
    flagged = streamed.predict(X) == -1
    assert flagged.mean() == pytest.approx(0.1, abs=0.01)
    np.testing.assert_allclose(
        np.mean(streamed.score_features(X), axis=0), 0, atol=1e-9
    )
    assert memory.feature_offsets_.shape == streamed.feature_offsets_.shape
    holes = X.copy()
    holes[::7, 1] = np.nan
    imputer = MADEImputer(density=MADEDensity(**SMALL, allow_missing=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer.fit(da.from_array(holes, chunks=(200, 4)))
    filled = imputer.transform(holes)
    assert not np.isnan(filled).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_from_host_memory(monkeypatch):
    """Rows kept in host memory and moved per batch train the model that rows held
    on the GPU train (the same batches)."""
    X = mixed_table(n=500)
    whole = quiet_fit(MADEDensity(**SMALL, device="cuda"), X)
    monkeypatch.setattr(_stream, "DEVICE_SHARE", 0.0)  # nothing fits on the GPU
    batched = quiet_fit(MADEDensity(**SMALL, device="cuda"), X)
    assert next(batched.module_.parameters()).is_cuda
    np.testing.assert_allclose(
        batched.score_samples(X), whole.score_samples(X), rtol=1e-4
    )
    streamed = quiet_fit(
        MADEDensity(**SMALL, device="cuda"), da.from_array(X, chunks=(100, 4))
    )
    assert np.isfinite(streamed.score(X))
