"""Row-wise methods that keep dask arrays lazy.

A dask array passed to ``score_samples``, ``score_features``, ``transform`` and the
other row-wise methods is not loaded: the method returns a dask array whose blocks
are computed where the data lives, each by the fitted estimator on one block of rows.
The estimator enters the task graph once (one key that every block depends on), so a
distributed scheduler ships it to each worker once, not with every task.

dask is optional: nothing here imports it unless a dask collection is passed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted


def is_dask_collection(X) -> bool:
    """Whether X is a dask collection (checked without importing dask)."""
    return type(X).__module__.partition(".")[0] == "dask" and hasattr(
        X, "__dask_graph__"
    )


# torch's thread count is one setting for the whole process: the blocks running at
# once on dask's worker threads share one count of them, and the last to finish
# restores the count that was set before.
_THREADS = {"lock": threading.Lock(), "running": 0, "before": None}


@contextlib.contextmanager
def one_torch_thread():
    """Run torch on one thread in a worker thread (nothing changes in the main
    thread).

    dask's threaded scheduler runs a block per core at once; with torch's own
    threads on top, the cores are oversubscribed, and each worker thread keeps an
    OpenMP team whose idle threads outnumber the cores for good: torch in the main
    thread ran on about one core afterwards (scoring at 0.4x its speed).
    """
    if threading.current_thread() is threading.main_thread():
        yield
        return
    with _THREADS["lock"]:
        if _THREADS["running"] == 0:
            _THREADS["before"] = torch.get_num_threads()
        _THREADS["running"] += 1
        # In every worker thread: OpenMP keeps a thread count per thread, and a
        # thread that runs torch with more than one starts a team of its own,
        # whose idle threads then slow every other team in the process.
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS["lock"]:
            _THREADS["running"] -= 1
            if _THREADS["running"] == 0:
                torch.set_num_threads(_THREADS["before"])


# A block is split over threads only into pieces of at least this many rows.
SPLIT_ROWS = 8192


def _apply(block: np.ndarray, estimator, name: str, *args, pieces: int = 1):
    """``estimator.name(block, *args)`` on a numpy block (eager), in ``pieces``
    slices of rows on as many threads, results stacked in row order.

    Worker threads run torch on one thread each (:func:`one_torch_thread`), so a
    graph with fewer blocks than cores would leave cores idle; its blocks are split
    over threads of their own instead (one single-threaded torch per thread ran
    faster here than one torch with two threads).
    """
    method = getattr(estimator, name)

    def run(rows):
        with one_torch_thread():
            return method(rows, *args)

    pieces = min(pieces, len(block) // SPLIT_ROWS)
    if pieces <= 1:
        return run(block)
    with ThreadPoolExecutor(pieces, thread_name_prefix="skmade-block") as pool:
        return np.concatenate(list(pool.map(run, np.array_split(block, pieces))))


def lazy_rows(n_columns=None, dtype=np.float64, split=True):
    """Decorate a row-wise method ``method(self, X, ...)`` so that a dask array X
    gives a lazy dask array of ``dtype``, block by block over the rows.

    ``n_columns(estimator)`` is the width of the result (None: one value per row).
    The checks that need no data (fitted, number of columns) run at once; the rest
    run with each block. ``split=False`` keeps a block in one call (for methods
    whose random draws depend on how many rows a call holds).
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, X, *args):
            if not is_dask_collection(X):
                return method(self, X, *args)
            return _map_rows(self, X, method.__name__, n_columns, dtype, args, split)

        return wrapper

    return decorate


def _map_rows(estimator, X, name: str, n_columns, dtype, args, split: bool):
    import dask

    if not hasattr(X, "map_blocks") or getattr(X, "ndim", None) != 2:
        raise TypeError(
            f"{type(estimator).__name__}.{name} takes a 2-D dask array; got "
            f"{type(X).__name__}. Convert a dask DataFrame with "
            "X.to_dask_array(lengths=True) (categorical columns as their codes), or "
            "compute it first."
        )
    check_is_fitted(estimator)
    expected = estimator.n_features_in_
    if X.shape[1] != expected:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
            f"expecting {expected} features as input."
        )
    if len(X.chunks[1]) > 1:  # every block must hold whole rows
        X = X.rechunk({1: -1})
    # One key for the fitted estimator, on which every block depends.
    model = dask.delayed(estimator, pure=False)
    # Fewer blocks than torch threads: each block on several threads.
    pieces = max(1, torch.get_num_threads() // X.numblocks[0]) if split else 1
    if n_columns is None:
        return X.map_blocks(
            _apply,
            model,
            name,
            *args,
            pieces=pieces,
            drop_axis=1,
            dtype=dtype,
            meta=np.empty((0,), dtype=dtype),
        )
    width = n_columns(estimator)
    return X.map_blocks(
        _apply,
        model,
        name,
        *args,
        pieces=pieces,
        chunks=(X.chunks[0], (width,)),
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


def set_stream_features(estimator, X) -> None:
    """``n_features_in_`` of a meta-estimator fitted on a 2-D dask array, which its
    density reads block by block (dask arrays carry no feature names)."""
    if getattr(X, "ndim", None) != 2 or not hasattr(X, "blocks"):
        raise TypeError(
            f"{type(estimator).__name__} fits on 2-D dask arrays; got "
            f"{type(X).__name__}. Convert a dask DataFrame with "
            "X.to_dask_array(lengths=True), or compute it."
        )
    estimator.n_features_in_ = int(X.shape[1])
    estimator.__dict__.pop("feature_names_in_", None)
