"""Fit input: arrays, DataFrames and dask collections become one row source.

:func:`fit_source` checks everything a fit reads before any work (rows, weights,
column kinds, the parameters that need X's shape, the device), holds rows out for
early stopping and fits the column codec (or reads X with the fitted one when
training continues). The estimator then trains on the :class:`FitSource` alone,
whether its rows are in memory or read block by block from a dask collection
(:mod:`skmade._stream`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils.validation import _check_sample_weight

from ._columns import ColumnCodec, check_frame_columns, frame_to_numeric
from ._dask import frame_codes, is_dask_collection, is_dask_frame
from ._params import resolve_device
from ._stream import InMemoryRows, RowStream, StreamedRows, survey
from ._summary import ColumnSummary
from ._training import check_weights, l2_scale, user_total
from ._utils import display_name


@dataclass
class FitSource:
    """What training reads, however X came.

    ``rows`` are the training rows (in memory or streamed), ``start`` the rows
    ``(Z, weights)`` in model values that the data-dependent start and
    ``_after_training`` read (all training rows in memory; a sample of a stream),
    ``validation`` the held-out ``(Z_val, weights_val)``, ``n_rows`` the training
    weights' total in the user's units and ``penalty_scale`` the L2 factor.
    """

    codec: ColumnCodec
    rows: InMemoryRows | StreamedRows
    start: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    n_rows: float
    rng: np.random.RandomState
    penalty_scale: float
    continuing: bool
    hidden: tuple[int, ...]
    device: torch.device

    @property
    def start_rows(self) -> InMemoryRows | StreamedRows:
        """The rows whose loss at the start judges divergence."""
        if isinstance(self.rows, StreamedRows):
            Z, weights = self.start
            return InMemoryRows(Z, weights, self.device)
        return self.rows


def fit_source(estimator, X, sample_weight, incremental: bool) -> FitSource:
    """Check and prepare X for a fit of ``estimator`` (``partial_fit`` when
    ``incremental``); raises before any work on bad input."""
    continuing = (estimator.warm_start or incremental) and hasattr(estimator, "module_")
    if continuing:
        estimator._check_unchanged_structure()
    hidden = estimator._hidden_sizes()
    read = _streamed if is_dask_collection(X) else _in_memory
    return read(estimator, X, sample_weight, incremental, continuing, hidden)


def _in_memory(estimator, X, sample_weight, incremental, continuing, hidden):
    allow_missing = estimator._allows_missing()
    if continuing:
        codec = estimator._columns_
        frame_categories = codec.frame_categories
        X = codec.read_frame(
            X,
            getattr(estimator, "feature_names_in_", None),
            allow_missing=allow_missing,
        )
    else:
        X, frame_categories = frame_to_numeric(X, allow_missing=allow_missing)
    X = estimator._validated(X, ensure_min_samples=2, reset=not continuing)
    weights, exponent = check_weights(sample_weight, X)
    if continuing:
        codec.check_values(X)
    else:
        kinds = estimator._column_kinds(X, frame_categories)
    estimator._check_parameters(X.shape[1])
    validation = n_validation(estimator, X.shape[0], incremental)
    device = resolve_device(estimator.device)
    # Everything is checked: the work starts here.
    rng = estimator._fit_rng(incremental, continuing)
    X, weights, X_val, weights_val = split_rows(X, weights, validation, rng)
    penalty_scale = l2_scale(estimator.alpha, weights, exponent)
    if not continuing:
        codec = estimator._fit_columns(X, weights, kinds, frame_categories)
    Z, Z_val = codec.to_internal(X), codec.to_internal(X_val)
    return FitSource(
        codec,
        InMemoryRows(Z, weights, device),
        (Z, weights),
        (Z_val, weights_val),
        user_total(weights.sum(), exponent),
        rng,
        penalty_scale,
        continuing,
        hidden,
        device,
    )


def _streamed(estimator, X, sample_weight, incremental, continuing, hidden):
    """A dask array or frame read block by block: a first pass checks every block
    and gathers the column state and the validation and start rows; the epochs
    read the blocks again."""
    name = display_name(estimator)
    codec = estimator._columns_ if continuing else None
    frame_categories, names = {}, None
    if is_dask_frame(X):  # categorical columns as codes, rows counted
        if continuing:
            check_frame_columns(X._meta, getattr(estimator, "feature_names_in_", None))
        X, sample_weight, frame_categories, names = frame_codes(
            X,
            sample_weight,
            codec.frame_categories if continuing else None,
            estimator._allows_missing(),
            name,
        )

    def check(block):
        block = estimator._validated(block, reset=False, block=True)
        if codec is not None:
            codec.check_values(block)
        return block

    stream = RowStream(X, sample_weight, check, name)
    if stream.n_rows < 2:
        raise ValueError(
            f"Found array with {stream.n_rows} sample(s) while a minimum of 2 "
            f"is required by {name}."
        )
    if continuing and stream.n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {stream.n_features} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    estimator._check_parameters(stream.n_features)
    held_out = n_validation(estimator, stream.n_rows, incremental)
    device = resolve_device(estimator.device)
    exponent = 0
    if stream.weights is not None:
        top = stream.weights.max()
        top = float(top.compute() if hasattr(top, "compute") else top)
        if top == 0:
            raise ValueError(
                "sample_weight must contain at least one non-zero number: "
                "every row has weight zero."
            )
        if np.isfinite(top) and top > 0:
            exponent = int(np.frexp(top)[1])

    def weigh(block, w):
        if w is None:
            return np.full(block.shape[0], np.ldexp(1.0, -exponent))
        w = _check_sample_weight(w, block, dtype=np.float64, ensure_non_negative=True)
        return np.ldexp(w, -exponent)

    if not continuing:
        estimator.n_features_in_ = stream.n_features
        estimator.__dict__.pop("feature_names_in_", None)
        if names is not None:
            estimator.feature_names_in_ = names
    rng = estimator._fit_rng(incremental, continuing)
    summary = ColumnSummary(stream.n_features)
    held, seeds, (X_val, w_val), (X_start, w_start), total = survey(
        stream, summary, held_out, weigh, rng
    )
    penalty_scale = l2_scale(estimator.alpha, np.array([total]), exponent)
    if not continuing:
        kinds = estimator._column_kinds(summary, frame_categories)
        codec = estimator._fit_columns(summary, None, kinds, frame_categories)
    Z_val, Z_start = codec.to_internal(X_val), codec.to_internal(X_start)
    return FitSource(
        codec,
        StreamedRows(stream, held, seeds, codec.to_internal, weigh, total, device),
        (Z_start, w_start),
        (Z_val, w_val),
        user_total(total, exponent),
        rng,
        penalty_scale,
        continuing,
        hidden,
        device,
    )


def n_validation(estimator, n_samples: int, incremental: bool) -> int:
    """Rows held out for early stopping (none for ``partial_fit``).

    ``early_stopping='auto'`` holds rows out whenever the split leaves at least
    one for validation and two for training.
    """
    if not estimator.early_stopping or incremental:
        return 0
    n_validation = max(1, math.floor(estimator.validation_fraction * n_samples))
    feasible = n_validation >= 1 and n_samples - n_validation >= 2
    if estimator.early_stopping == "auto":
        return n_validation if feasible else 0
    if not feasible:
        raise ValueError(
            f"early_stopping=True with validation_fraction="
            f"{estimator.validation_fraction} splits {n_samples} rows into "
            f"{n_samples - n_validation} for training and {n_validation} for "
            "validation; at least 2 and 1 are needed. Provide more rows, "
            "change validation_fraction or set early_stopping=False."
        )
    return n_validation


def split_rows(X, weights, n_validation, rng):
    """``(X, weights, X_val, weights_val)`` with ``n_validation`` rows held out.

    Draws from ``rng`` only when rows are held out, so that without a split the
    model does not depend on the number of rows (weighted and repeated rows fit
    the same network).
    """
    if not n_validation:
        return X, weights, X[:0], weights[:0]
    permutation = rng.permutation(X.shape[0])
    validation_rows = permutation[:n_validation]
    train_rows = np.sort(permutation[n_validation:])
    return (
        X[train_rows],
        weights[train_rows],
        X[validation_rows],
        weights[validation_rows],
    )
