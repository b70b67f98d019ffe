"""Small helpers shared by the estimators."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np


@contextmanager
def restore_on_error(estimator, deep: bool = False):
    """Undo every attribute change of ``estimator`` if the block raises.

    A fit that fails for any reason (bad input, divergence, an interrupt) must leave
    the estimator as it was. A fresh fit replaces its fitted attributes with new
    objects, so a shallow snapshot restores them; a fit that continues training
    (``warm_start``, ``partial_fit``) changes the network, the optimizer and the
    curves in place, so it needs ``deep=True``: a copy of all of them, taken once.
    """
    snapshot = copy.deepcopy(estimator.__dict__) if deep else dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(snapshot)
        raise


def weighted_quantile(values, weights, q):
    """Quantiles ``q`` of each column of ``values`` under row ``weights``.

    The averaged inverted CDF (numpy's ``method='averaged_inverted_cdf'`` for equal
    weights): the value whose weighted cumulative share first reaches ``q``, or,
    where a row's share ends exactly at ``q``, the midpoint between it and the next
    value. It is a quantile definition under which a row of weight 2 acts exactly
    as a repeated row and a common factor of the weights changes nothing, and with
    ``q * n`` an integer ``k`` exactly ``k`` of ``n`` equally weighted distinct
    values lie below it.

    Parameters
    ----------
    values : ndarray of shape (n,) or (n, D)
    weights : ndarray of shape (n,), non-negative with a positive sum
    q : float or ndarray of shape (m,), in [0, 1]

    Returns
    -------
    quantiles : ndarray of shape ``q.shape + values.shape[1:]``
    """
    values, weights = np.asarray(values), np.asarray(weights, dtype=np.float64)
    keep = weights > 0
    columns = values[keep].reshape(int(keep.sum()), -1)
    weights = weights[keep]
    q = np.asarray(q, dtype=np.float64)
    last = len(weights) - 1
    # Shares that differ from q by rounding only (uniform weights of 0.3) count as
    # equal to it, so that equal weights of any size give the unweighted quantile.
    tolerance = 4 * np.finfo(np.float64).eps * len(weights)
    result = np.empty(q.shape + columns.shape[1:])
    for d, column in enumerate(columns.T):
        order = np.argsort(column, kind="stable")
        cumulative = np.cumsum(weights[order])
        shares = cumulative / cumulative[-1]
        lower = np.searchsorted(shares, q - tolerance, side="left")
        upper = np.searchsorted(shares, q + tolerance, side="right")
        lower, upper = np.minimum(lower, last), np.minimum(upper, last)
        result[..., d] = 0.5 * (column[order[lower]] + column[order[upper]])
    return result if values.ndim > 1 else result[..., 0]
