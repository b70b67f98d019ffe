"""Orderings and unit degrees of MADE (Germain et al. 2015, section 4).

Every unit of the network gets a *degree*. Input ``j`` has degree ``k`` when it is
the ``k``-th variable of the ordering (``1 <= k <= D``). A hidden unit of degree ``m``
may only see inputs of degree ``<= m``, so it is a function of the first ``m`` variables
of the ordering. Output ``d`` may only see hidden units of degree ``< degree(d)``, so
it is a function of the variables before ``d`` in the ordering: the autoregressive
property.

Everything here is plain numpy driven by a ``numpy.random.RandomState``; the torch
network receives the finished degrees and turns them into masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_ordering(ordering, n_features: int) -> np.ndarray:
    """Validate a user-given ordering: a permutation of ``range(n_features)``."""
    array = np.asarray(ordering)
    if array.ndim != 1 or array.shape[0] != n_features:
        raise ValueError(
            f"ordering must be 'natural', 'random' or a permutation of "
            f"range(n_features) of length {n_features}; got an array of shape "
            f"{array.shape}."
        )
    if not np.issubdtype(array.dtype, np.integer) and not (
        np.issubdtype(array.dtype, np.floating) and np.all(array == np.round(array))
    ):
        raise ValueError(
            f"ordering must hold integer feature indices; got dtype {array.dtype}."
        )
    array = array.astype(np.int64)
    if not np.array_equal(np.sort(array), np.arange(n_features)):
        raise ValueError(
            f"ordering must be a permutation of range({n_features}): every feature "
            f"index exactly once; got {array.tolist()}."
        )
    return array


def check_orderings(ordering, n_features: int, n_masks: int) -> np.ndarray:
    """Validate a user-given ordering: one permutation (1-D), or one per mask
    (shape ``(n_masks, n_features)``). Returns a 1-D or 2-D integer array."""
    array = np.asarray(ordering)
    if array.ndim != 2:
        return check_ordering(ordering, n_features)
    if array.shape != (n_masks, n_features):
        raise ValueError(
            f"ordering as a 2-D array gives one ordering per mask and must have "
            f"shape (n_masks, n_features) = ({n_masks}, {n_features}); got "
            f"{array.shape}. Give a single permutation of range({n_features}) for "
            "the first mask only."
        )
    return np.stack([check_ordering(row, n_features) for row in array])


def make_orderings(
    ordering, n_features: int, n_masks: int, order_agnostic: bool, random_state
) -> np.ndarray:
    """Orderings of all masks, shape ``(n_masks, n_features)``.

    ``orderings[k, i]`` is the feature modelled ``i``-th by mask ``k``. The first mask
    follows ``ordering``; with ``order_agnostic`` every further mask draws a fresh
    random permutation, otherwise all masks share the first mask's ordering. A 2-D
    ``ordering`` gives every mask its own.
    """
    if not isinstance(ordering, str) and np.ndim(ordering) == 2:
        return check_orderings(ordering, n_features, n_masks).astype(np.int64)
    if isinstance(ordering, str) and ordering == "natural":
        first = np.arange(n_features)
    elif isinstance(ordering, str) and ordering == "random":
        first = random_state.permutation(n_features)
    else:
        first = check_ordering(ordering, n_features)
    orderings = np.empty((n_masks, n_features), dtype=np.int64)
    orderings[0] = first
    for k in range(1, n_masks):
        orderings[k] = random_state.permutation(n_features) if order_agnostic else first
    return orderings


def input_degrees(orderings: np.ndarray) -> np.ndarray:
    """Degrees of the inputs (``1..D``) from orderings, same shape as ``orderings``."""
    degrees = np.empty_like(orderings)
    positions = np.arange(1, orderings.shape[1] + 1)
    for k, ordering in enumerate(orderings):
        degrees[k, ordering] = positions
    return degrees


def make_degrees(
    orderings: np.ndarray,
    hidden_layer_sizes: Sequence[int],
    random_state,
    lowest: int = 1,
) -> list[np.ndarray]:
    """Degrees of every layer for every mask: ``[inputs, hidden_1, ..., hidden_L]``.

    Each entry has shape ``(n_masks, layer_width)``. Hidden degrees are drawn uniformly
    in ``[min degree of the previous layer, D - 1]`` (the paper's rule): degree ``D``
    would feed no output, and a degree below the previous layer's minimum would leave
    the unit with no inputs.

    ``lowest`` raises the first layer's bound: with ``lowest = p`` every hidden unit
    sees the first ``p`` variables of every ordering (a conditional model, whose
    first ``p`` variables are the features it conditions on).

    With ``D == 1`` the range is empty; hidden units then get degree 1 and the single
    output sees none of them, so the model reduces to its output bias: the
    unconditional (marginal) distribution, which is the right model for one variable.

    The units of each layer are then listed in the order of their first mask's
    degrees (the same reordering for every mask, so the masks' joint draw is
    unchanged): a single-mask network is already in the degree-sorted layout that
    its block products use (``skmade._blocks``) and needs no copy of its hidden
    weights.
    """
    n_masks, n_features = orderings.shape
    degrees = [input_degrees(orderings)]
    for width in hidden_layer_sizes:
        low = np.maximum(degrees[-1].min(axis=1), lowest)
        high = np.maximum(low, n_features - 1)
        layer = np.empty((n_masks, width), dtype=np.int64)
        for k in range(n_masks):
            layer[k] = random_state.randint(low[k], high[k] + 1, size=width)
        degrees.append(layer[:, np.argsort(layer[0], kind="stable")])
    return degrees
