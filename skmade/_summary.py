"""Column statistics: weighted standardization of any finite values, and the
:class:`ColumnSummary` that gathers a table's column state block by block.

What :func:`~skmade._columns.infer_kinds` and :meth:`~skmade._columns.ColumnCodec.fit`
read, from data held at once or streamed. No torch here.
"""

from __future__ import annotations

import numpy as np


def _weighted_mean(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Column means of X under row weights; a BLAS mat-vec, not a broadcast."""
    return (weights.astype(X.dtype) @ X).astype(np.float64) / weights.sum()


def standardization(X: np.ndarray, weights: np.ndarray):
    """Weighted column means and standard deviations, for any finite values.

    Missing entries (NaN) are left out: each column's statistics come from its
    observed entries (a column with none gets mean 0 and scale 1).

    Each column is divided by a power of two at its largest magnitude first (exact),
    so that neither the sums nor the squares overflow (values up to the float64
    limit) or lose a spread of 1e-300 to underflow. A column whose spread is within
    rounding of its mean is constant: its mean is one of its values, so that its
    standardized values are exactly 0, and its scale is 1, or the rounding bound of
    its magnitude where that is larger (a constant near 1e54 would otherwise
    standardize to rounding errors of 1e38).
    """
    missing = np.isnan(X)
    if missing.any():  # each column over its observed entries
        mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        for j in range(X.shape[1]):
            rows = ~missing[:, j]
            if rows.any() and weights[rows].sum() > 0:
                column = standardization(X[rows, j : j + 1], weights[rows])
                mean[j], scale[j] = column[0][0], column[1][0]
        return mean, scale
    # 2**e with the column's largest magnitude in [2**e, 2**(e+1)): dividing by it
    # is exact, and unit values stay within 2 in magnitude.
    _, exponent = np.frexp(np.abs(X).max(axis=0).astype(np.float64))
    peak = np.ldexp(1.0, exponent - 1)
    # Underflow (tiny squares, subnormal bounds) only loses what is below rounding.
    with np.errstate(under="ignore"):
        unit = X / peak
        mean = _weighted_mean(unit, weights)
        scale = np.sqrt(_weighted_mean((unit - mean) ** 2, weights)) * peak
        mean = mean * peak
        bound = 10 * np.finfo(np.float64).eps * np.abs(mean)
    constant = scale <= bound
    if constant.any():
        row = int(np.argmax(weights))
        mean[constant] = X[row, constant]
        scale[constant] = np.maximum(1.0, bound[constant])
    return mean, scale


# A column summary keeps a column's distinct values up to this many (more than any
# categorical column a model could use), then forgets them.
SUMMARY_UNIQUE = 4096


class ColumnSummary:
    """Column statistics gathered block by block: what :func:`infer_kinds` and
    :meth:`ColumnCodec.fit` read from a table, from data never held at once.

    :meth:`see` takes every row (the families follow from them),
    :meth:`add_moments` the training rows and their weights (the standardization).
    Memory stays at the distinct values of each column (up to ``SUMMARY_UNIQUE``,
    then none) and one weighted mean and scale per block and column.
    """

    def __init__(self, n_features: int):
        self.n_features = n_features
        self.n_rows = 0
        self.binary = np.ones(n_features, dtype=bool)
        self.uniques = [np.empty(0) for _ in range(n_features)]
        self._blocks = []  # per block: observed weight, mean and scale of each column

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.n_features

    def see(self, X: np.ndarray) -> None:
        """Add a block of validated rows (NaN for missing entries) to the values
        seen: which columns are binary, the distinct values of each."""
        missing = np.isnan(X)
        self.binary &= np.all((X == 0) | (X == 1) | missing, axis=0)
        for j, seen in enumerate(self.uniques):
            if seen is not None:
                seen = np.union1d(seen, X[~missing[:, j], j])
                self.uniques[j] = seen if seen.size <= SUMMARY_UNIQUE else None
        self.n_rows += X.shape[0]

    def add_moments(self, X: np.ndarray, weights: np.ndarray) -> None:
        """Add a block of rows to the weighted means and scales (training rows)."""
        if X.shape[0] and weights.sum() > 0:
            observed = weights @ ~np.isnan(X)
            self._blocks.append((observed, *standardization(X, weights)))

    def standardization(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted column means and standard deviations over all blocks (see
        :func:`standardization`), merged from each block's."""
        if not self._blocks:
            return np.zeros(self.n_features), np.ones(self.n_features)
        W, M, S = (np.stack(part) for part in zip(*self._blocks, strict=True))
        total = W.sum(axis=0)
        _, exponent = np.frexp(np.maximum(np.abs(M).max(axis=0), S.max(axis=0)))
        peak = np.ldexp(1.0, exponent - 1)
        with np.errstate(under="ignore", invalid="ignore", divide="ignore"):
            share = np.where(total > 0, W / total, 0.0)
            unit_mean = M / peak
            mean = (share * unit_mean).sum(axis=0)
            spread = (S / peak) ** 2 + (unit_mean - mean) ** 2
            scale = np.sqrt((share * spread).sum(axis=0)) * peak
            mean = mean * peak
            bound = 10 * np.finfo(np.float64).eps * np.abs(mean)
        constant = scale <= bound
        if constant.any():  # a value of the column, as for data held at once
            first = np.argmax(W > 0, axis=0)
            values = M[first, np.arange(self.n_features)]
            mean[constant] = values[constant]
            scale[constant] = np.maximum(1.0, bound[constant])
        unseen = total == 0
        mean[unseen], scale[unseen] = 0.0, 1.0
        return mean, scale
