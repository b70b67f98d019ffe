"""Small helpers shared by the estimators."""

from __future__ import annotations

import copy
from contextlib import contextmanager


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
