"""Small helpers shared by the estimators."""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager

import numpy as np


def display_name(estimator) -> str:
    """The estimator's name in messages: its class's, or the public estimator's
    that it serves (``_display_name``)."""
    return getattr(estimator, "_display_name", type(estimator).__name__)


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


class TrainingLog:
    """What ``verbose`` prints while a network trains.

    One line per epoch: the training loss, the validation log-likelihood (with early
    stopping), the learning rate of that epoch and the time since training began.
    When tqdm is installed (it is optional) the lines are written above a progress
    bar over ``max_iter`` epochs that shows the same numbers. Silent unless
    ``verbose``; use it as a context manager so that the bar is closed on errors.
    """

    def __init__(self, verbose, total: int, name: str) -> None:
        self.enabled = bool(verbose) and total > 0
        self.total = total
        self.name = name
        self.bar = None

    def __enter__(self):
        if self.enabled:
            self.start = time.perf_counter()
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=self.total, desc=self.name, unit="epoch")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def epoch(self, n: int, loss: float, learning_rate: float, validation=None):
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        line = f"Epoch {n}: loss {loss:.6f}"
        if validation is not None:
            line += f", validation log-likelihood {validation:.6f}"
        line += f", learning rate {learning_rate:.3g}, {elapsed:.1f} s"
        if self.bar is None:
            print(line, flush=True)
            return
        postfix = {"loss": f"{loss:.4f}", "lr": f"{learning_rate:.2g}"}
        if validation is not None:
            postfix["validation"] = f"{validation:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)
        self.bar.write(line)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            print(text, flush=True)
        else:
            self.bar.write(text)
