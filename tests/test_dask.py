"""Dask: lazy row-wise methods and a grid search on a local dask cluster."""

import numpy as np
import pytest

from skmade import MADEDensity, MADEImputer, MADEOutlierDetector

da = pytest.importorskip("dask.array")


def binary_table(n=240, d=6, seed=0):
    rng = np.random.RandomState(seed)
    first = rng.rand(n, 1) < 0.4
    return np.where(rng.rand(n, d) < 0.85, first, ~first).astype(float)


@pytest.fixture(scope="module")
def density():
    X = binary_table()
    return MADEDensity(hidden_layer_sizes=(16,), max_iter=20, random_state=0).fit(X)


def graph_size(array) -> int:
    return len(dict(array.__dask_graph__()))


def test_score_samples_of_a_dask_array_is_lazy_and_equal(density):
    X = binary_table(seed=1)
    lazy_X = da.from_array(X, chunks=(50, 3))  # columns split too: rechunked
    scores = density.score_samples(lazy_X)
    assert isinstance(scores, da.Array)
    assert scores.shape == (240,) and scores.chunks[0] == lazy_X.chunks[0]
    np.testing.assert_allclose(scores.compute(), density.score_samples(X))
    assert density.score(lazy_X) == pytest.approx(density.score(X))


def test_the_model_enters_the_graph_once(density):
    lazy_X = da.from_array(binary_table(seed=2), chunks=(40, 6))
    n_blocks = len(lazy_X.chunks[0])
    scores = density.score_samples(lazy_X)
    # The input blocks, the output blocks and one key holding the model.
    assert graph_size(scores) == graph_size(lazy_X) + n_blocks + 1
    models = [
        key
        for key, task in dict(scores.__dask_graph__()).items()
        if "MADEDensity" in str(key)
    ]
    assert len(models) == 1


def test_score_features_and_outlier_methods_stay_lazy():
    X = binary_table(seed=3)
    lazy_X = da.from_array(X, chunks=(70, 6))
    detector = MADEOutlierDetector(
        density=MADEDensity(hidden_layer_sizes=(16,), max_iter=15, random_state=0)
    ).fit(X)
    for name in ("score_samples", "decision_function", "predict", "score_features"):
        lazy = getattr(detector, name)(lazy_X)
        assert isinstance(lazy, da.Array), name
        eager = getattr(detector, name)(X)
        assert lazy.dtype == eager.dtype, name
        np.testing.assert_allclose(lazy.compute(), eager, err_msg=name)
    features = detector.density_.score_features(lazy_X)
    assert features.shape == X.shape
    np.testing.assert_allclose(features.compute(), detector.density_.score_features(X))


def test_imputer_transform_is_lazy_and_fills_like_numpy():
    rng = np.random.RandomState(4)
    X = rng.randn(200, 4) @ rng.randn(4, 4)
    holes = X.copy()
    holes[rng.rand(*X.shape) < 0.2] = np.nan
    imputer = MADEImputer(
        density=MADEDensity(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    ).fit(holes)
    lazy = imputer.transform(da.from_array(holes, chunks=(64, 4)))
    assert isinstance(lazy, da.Array)
    filled = lazy.compute()
    assert not np.isnan(filled).any()
    np.testing.assert_allclose(filled, imputer.transform(holes))


def test_dask_input_is_checked_before_any_work(density):
    with pytest.raises(ValueError, match="X has 5 features, but MADEDensity"):
        density.score_samples(da.zeros((10, 5), chunks=5))
    with pytest.raises(TypeError, match="2-D dask array"):
        density.score_samples(da.zeros(10, chunks=5))
    unfitted = MADEDensity()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        unfitted.score_samples(da.zeros((10, 6), chunks=5))


def test_values_are_checked_when_blocks_compute(density):
    bad = da.from_array(np.full((10, 6), 2.0), chunks=5)
    lazy = density.score_samples(bad)  # the values are only seen with the blocks
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        lazy.compute()


def test_grid_search_on_a_local_dask_cluster():
    distributed = pytest.importorskip("distributed")
    import joblib
    import torch
    from sklearn.model_selection import GridSearchCV

    X = binary_table(n=200)
    grid = {"hidden_layer_sizes": [(4,), (24,)]}
    estimator = MADEDensity(max_iter=15, random_state=0)
    local = GridSearchCV(estimator, grid, cv=2).fit(X)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # Each worker process runs torch on one thread: two workers on two
        # cores do not oversubscribe them.
        threads = client.run(torch.get_num_threads)
        assert set(threads.values()) == {1}
        with joblib.parallel_backend("dask"):
            remote = GridSearchCV(estimator, grid, cv=2, n_jobs=-1).fit(X)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        rtol=1e-4,
    )


def test_worker_threads_run_torch_on_one_thread_and_restore_it(density):
    import threading

    import torch

    from skmade._dask import one_torch_thread

    before = torch.get_num_threads()
    seen = {}

    def work():
        with one_torch_thread():
            seen["inside"] = torch.get_num_threads()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["inside"] == 1
    assert torch.get_num_threads() == before
    with one_torch_thread():  # the main thread keeps its threads
        assert torch.get_num_threads() == before
    lazy_X = da.from_array(binary_table(seed=4), chunks=(60, 6))
    scores = density.score_samples(lazy_X).compute(scheduler="threads")
    np.testing.assert_allclose(scores, density.score_samples(binary_table(seed=4)))
    assert torch.get_num_threads() == before


def test_a_block_is_split_over_threads_in_row_order(monkeypatch):
    import threading

    from skmade import _dask

    monkeypatch.setattr(_dask, "SPLIT_ROWS", 10)
    seen = []

    class RowSums:
        def score_samples(self, rows):
            seen.append((threading.get_ident(), len(rows)))
            return rows.sum(axis=1)

    block = np.arange(90.0).reshape(45, 2)
    out = _dask._apply(block, RowSums(), "score_samples", pieces=3)
    np.testing.assert_array_equal(out, block.sum(axis=1))
    assert sorted(n for _, n in seen) == [15, 15, 15]
    assert threading.get_ident() not in {ident for ident, _ in seen}
    seen.clear()  # no pieces below SPLIT_ROWS rows: 25 rows in two, 15 in one
    _dask._apply(block[:25], RowSums(), "score_samples", pieces=3)
    assert sorted(n for _, n in seen) == [12, 13]
    seen.clear()
    _dask._apply(block[:15], RowSums(), "score_samples", pieces=3)
    assert seen == [(threading.get_ident(), 15)]


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_a_single_block_scores_the_same_split_over_threads(
    density, monkeypatch, scheduler
):
    import torch

    from skmade import _dask

    monkeypatch.setattr(_dask, "SPLIT_ROWS", 16)
    threads = torch.get_num_threads()  # one block: a piece per thread
    X = binary_table(seed=5)
    calls = []
    original = _dask._apply

    def counting(block, *args, pieces=1, **options):
        calls.append(pieces)
        return original(block, *args, pieces=pieces, **options)

    monkeypatch.setattr(_dask, "_apply", counting)
    lazy = density.score_samples(da.from_array(X, chunks=(240, 6)))
    np.testing.assert_allclose(
        lazy.compute(scheduler=scheduler), density.score_samples(X), rtol=1e-12
    )
    assert calls == [threads]
    calls.clear()  # as many blocks as threads: no split
    blocks = da.from_array(X, chunks=(-(-240 // threads), 6))
    density.score_samples(blocks).compute(scheduler="sync")
    assert calls == [1] * threads


def mixed_frame(n=300, seed=0):
    import pandas as pd

    rng = np.random.RandomState(seed)
    letter = rng.choice(["a", "b", "c"], n)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n) + (letter == "a"),
            "c": pd.Categorical(letter),
            "b": (rng.rand(n) < np.where(letter == "b", 0.8, 0.2)).astype(float),
        }
    )


def test_a_dask_dataframe_fits_as_its_codes_and_scores_lazily():
    dd = pytest.importorskip("dask.dataframe")
    frame = mixed_frame()
    lazy = dd.from_pandas(frame, npartitions=3)
    params = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    est = MADEDensity(**params).fit(lazy)
    assert list(est.feature_names_in_) == ["x", "c", "b"]
    # The same fit as on the codes of the categorical column, in the same blocks.
    codes = frame.assign(c=frame["c"].cat.codes.astype(float)).to_numpy()
    lengths = tuple(len(part) for part in lazy.partitions)
    plain = MADEDensity(**params).fit(da.from_array(codes, chunks=(lengths, 3)))
    np.testing.assert_array_equal(est.loss_curve_, plain.loss_curve_)
    np.testing.assert_allclose(est.score_samples(frame), plain.score_samples(codes))
    # Lazy scoring of the partitions: pandas frames read with the fitted categories.
    scores = est.score_samples(lazy)
    assert isinstance(scores, da.Array)
    np.testing.assert_allclose(scores.compute(), est.score_samples(frame))
    assert est.score(lazy) == pytest.approx(est.score(frame))
    features = est.score_features(lazy).compute()
    np.testing.assert_allclose(features, est.score_features(frame))
    with pytest.raises(ValueError, match="another order"):  # checked at once
        est.score_samples(lazy[["c", "x", "b"]])


def test_a_dask_dataframe_needs_known_categories():
    dd = pytest.importorskip("dask.dataframe")
    lazy = dd.from_pandas(mixed_frame(), npartitions=2)
    lazy["c"] = lazy["c"].cat.as_unknown()
    est = MADEDensity(max_iter=2)
    with pytest.raises(ValueError, match=r"X.categorize\(columns=\['c'\]\)"):
        est.fit(lazy)
    assert not hasattr(est, "n_features_in_")
    est.fit(lazy.categorize(columns=["c"]))
    assert est.n_features_in_ == 3


def test_outlier_detector_fits_and_predicts_on_a_dask_dataframe():
    dd = pytest.importorskip("dask.dataframe")
    frame = mixed_frame(seed=1)
    lazy = dd.from_pandas(frame, npartitions=2)
    density = MADEDensity(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    detector = MADEOutlierDetector(density=density).fit(lazy)
    assert list(detector.feature_names_in_) == ["x", "c", "b"]
    np.testing.assert_array_equal(
        detector.predict(lazy).compute(), detector.predict(frame)
    )
    weights = np.linspace(0.5, 2.0, len(frame))
    weighted = MADEOutlierDetector(density=density).fit(lazy, sample_weight=weights)
    # Explanations are relative to the weighted training rows: zero on average.
    contributions = weighted.score_features(frame)
    np.testing.assert_allclose(
        np.average(contributions, axis=0, weights=weights), 0, atol=1e-9
    )


def test_a_dask_dataframe_with_an_empty_partition_fits():
    dd = pytest.importorskip("dask.dataframe")
    frame = mixed_frame(seed=2)
    lazy = dd.from_pandas(frame, npartitions=3)
    lazy = lazy.map_partitions(lambda part: part[part.index >= 100])  # one empty
    assert len(lazy.partitions[0]) == 0
    est = MADEDensity(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(lazy)
    scores = est.score_samples(lazy).compute()
    assert scores.shape == (200,) and np.isfinite(scores).all()
    np.testing.assert_allclose(scores, est.score_samples(frame.iloc[100:]))
