"""Timing helpers shared by the benchmarks: medians of repeats."""

from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit_seconds(estimator, X) -> float:
    """Wall time of one ``estimator.fit(X)``."""
    start = time.perf_counter()
    estimator.fit(X)
    return time.perf_counter() - start
