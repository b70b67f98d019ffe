"""Small helpers shared by the estimators."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def restore_on_error(estimator):
    """Undo every attribute change of ``estimator`` if the block raises.

    Input validation must leave a fitted estimator as it was when it fails, and
    ``validate_data`` records feature names as it goes.
    """
    snapshot = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(snapshot)
        raise
