"""Row-wise methods that keep dask arrays lazy.

A dask array passed to ``score_samples``, ``score_features``, ``transform`` and the
other row-wise methods is not loaded: the method returns a dask array whose blocks
are computed where the data lives, each by the fitted estimator on one block of rows.
The estimator enters the task graph once (one key that every block depends on), so a
distributed scheduler ships it to each worker once, not with every task.

A dask DataFrame works the same way, partition by partition: each pandas partition
goes to the method as a pandas DataFrame would (names checked, categorical columns
read as the fitted categories), and the result is a dask array whose row counts
are unknown until computed. :func:`frame_codes` turns a dask DataFrame into the
2-D array of numbers that a streamed fit reads.

dask is optional: nothing here imports it unless a dask collection is passed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.utils.validation import _get_feature_names, check_is_fitted

from ._columns import (
    _check_no_datetimes,
    _is_categorical_dtype,
    check_frame_columns,
    frame_to_numeric,
)


def is_dask_collection(X) -> bool:
    """Whether X is a dask collection (checked without importing dask)."""
    return type(X).__module__.partition(".")[0] == "dask" and hasattr(
        X, "__dask_graph__"
    )


def is_dask_frame(X) -> bool:
    """Whether X is a dask DataFrame."""
    return (
        is_dask_collection(X)
        and hasattr(X, "map_partitions")
        and hasattr(X, "columns")
        and getattr(X, "ndim", None) == 2
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


def _apply(block, estimator, name: str, *args, pieces: int = 1, empty=None):
    """``estimator.name(block, *args)`` on a numpy block (eager), in ``pieces``
    slices of rows on as many threads, results stacked in row order; ``empty`` for
    a block without rows.

    Worker threads run torch on one thread each (:func:`one_torch_thread`), so a
    graph with fewer blocks than cores would leave cores idle; its blocks are split
    over threads of their own instead (one single-threaded torch per thread ran
    faster here than one torch with two threads).
    """
    if len(block) == 0 and empty is not None:
        return empty
    method = getattr(estimator, name)

    def run(rows):
        with one_torch_thread():
            return method(rows, *args)

    pieces = min(pieces, len(block) // SPLIT_ROWS)
    if pieces <= 1:
        return run(block)
    bounds = np.linspace(0, len(block), pieces + 1).astype(int)
    rows = getattr(block, "iloc", block)  # a pandas partition: by position
    parts = [rows[a:b] for a, b in itertools.pairwise(bounds)]
    with ThreadPoolExecutor(pieces, thread_name_prefix="skmade-block") as pool:
        return np.concatenate(list(pool.map(run, parts)))


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

    frame = is_dask_frame(X)
    if not frame and (not hasattr(X, "map_blocks") or getattr(X, "ndim", None) != 2):
        raise TypeError(
            f"{type(estimator).__name__}.{name} takes a 2-D dask array or a dask "
            f"DataFrame; got {type(X).__name__}. Compute it first."
        )
    check_is_fitted(estimator)
    expected = estimator.n_features_in_
    if X.shape[1] != expected:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
            f"expecting {expected} features as input."
        )
    if frame:
        check_frame_columns(X._meta, getattr(estimator, "feature_names_in_", None))
    elif len(X.chunks[1]) > 1:  # every block must hold whole rows
        X = X.rechunk({1: -1})
    # One key for the fitted estimator, on which every block depends.
    model = dask.delayed(estimator, pure=False)
    # Fewer blocks than torch threads: each block on several threads.
    n_blocks = X.npartitions if frame else X.numblocks[0]
    pieces = max(1, torch.get_num_threads() // n_blocks) if split else 1
    shape = (0,) if n_columns is None else (0, n_columns(estimator))
    empty = np.empty(shape, dtype=dtype)
    if frame:  # pandas partitions in, numpy blocks out
        return X.map_partitions(
            _apply, model, name, *args, pieces=pieces, empty=empty, meta=empty
        )
    if n_columns is None:
        return X.map_blocks(
            _apply,
            model,
            name,
            *args,
            pieces=pieces,
            empty=empty,
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
        empty=empty,
        chunks=(X.chunks[0], (width,)),
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


def set_stream_features(estimator, X) -> None:
    """``n_features_in_`` (and ``feature_names_in_`` of a DataFrame) of a
    meta-estimator fitted on a dask collection, which its density reads block by
    block."""
    if is_dask_frame(X):
        estimator.n_features_in_ = len(X.columns)
        names = _get_feature_names(X._meta)
        if names is not None:
            estimator.feature_names_in_ = names
        else:
            estimator.__dict__.pop("feature_names_in_", None)
        return
    if getattr(X, "ndim", None) != 2 or not hasattr(X, "blocks"):
        raise TypeError(
            f"{type(estimator).__name__} fits on 2-D dask arrays and dask "
            f"DataFrames; got {type(X).__name__}. Compute it first."
        )
    estimator.n_features_in_ = int(X.shape[1])
    estimator.__dict__.pop("feature_names_in_", None)


def frame_codes(X, sample_weight, categories, allow_missing: bool, name: str):
    """A dask DataFrame as the 2-D dask array of numbers that a streamed fit reads.

    Categorical columns become their integer codes, as :func:`frame_to_numeric`
    does for a pandas DataFrame; their categories must be known to dask before
    any data is read (``X.categorize()``). The number of rows of every partition
    is counted (one pass of ``len``), since a streamed fit draws its validation
    rows uniformly over all rows.

    Parameters
    ----------
    X : dask DataFrame
    sample_weight : None, array-like or dask Series
    categories : dict or None
        ``{column index: categories}`` of a fitted model (continued training), or
        None: read from X's dtypes.
    allow_missing : bool
    name : str
        The estimator's name, for errors.

    Returns
    -------
    X : dask array of shape (n_samples, n_features), with known row counts
    sample_weight : as given, a dask Series as a dask array in X's row blocks
    categories : dict
        ``{column index: ndarray of categories}``.
    names : ndarray of str or None
        The column names (None where they are not all strings).
    """
    import pandas as pd

    meta = X._meta
    _check_no_datetimes(meta)
    if categories is None:
        categories = {}
        for j, (column, dtype) in enumerate(meta.dtypes.items()):
            if not _is_categorical_dtype(dtype):
                continue
            known = isinstance(dtype, pd.CategoricalDtype) and (
                "__UNKNOWN_CATEGORIES__" not in list(dtype.categories)
            )
            if not known:
                raise ValueError(
                    f"Column {column!r} of the dask DataFrame has dtype {dtype} "
                    "with categories dask does not know yet; a streamed fit needs "
                    f"them before reading any rows. Call X = X.categorize("
                    f"columns=[{column!r}]) first (one pass over the data), or "
                    "convert the column to numbers."
                )
            categories[j] = np.asarray(dtype.categories, dtype=object)
    names = _get_feature_names(meta)

    def codes(part):
        part, _ = frame_to_numeric(
            part, categories, handle_unknown="error", allow_missing=allow_missing
        )
        return part.astype(np.float64)

    numbers = meta.copy()
    for j in categories:
        numbers[numbers.columns[j]] = numbers.iloc[:, j].astype(np.float64)
    lengths = tuple(int(n) for n in X.map_partitions(len).compute())
    array = X.map_partitions(codes, meta=numbers.astype(np.float64))
    array = array.to_dask_array(lengths=lengths)
    if is_dask_collection(sample_weight) and hasattr(sample_weight, "to_dask_array"):
        sample_weight = sample_weight.to_dask_array(lengths=lengths)
    return array, sample_weight, categories, names
