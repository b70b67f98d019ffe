"""Empirical tail calibration of per-feature surprises (numpy only).

A density's conditionals ``log p(x_d | x_<d)`` are not comparable across features
(units, resolution, atoms). Their *ranks* among normal rows are: the share of
held-out normal rows at least as surprising is a p-value, whatever the feature's
scale. :class:`SurpriseCalibration` stores, for every (mask, feature), the sorted
surprises ``-log p_k(x_d | x_<d)`` of calibration rows and turns new surprises into
log p-values, as ECOD does for marginal tails, but for a density's conditionals.
"""

from __future__ import annotations

import numpy as np

# Most calibration rows kept per (mask, feature): p-values resolve to about 1/4096;
# beyond the largest calibration surprise the exponential tail takes over.
MAX_CALIBRATION_ROWS = 4096


class SurpriseCalibration:
    """Log p-values of surprises under the empirical law of calibration rows.

    For a surprise ``s`` of one (mask, feature), the log p-value is
    ``log(W(s) / W)``, where ``W(s)`` is the weight of calibration rows whose
    surprise is at least ``s`` and ``W`` their total weight (with unit weights, the
    share ``#{s_i >= s} / m``; a weight of 2 acts exactly as a repeated row and a
    common factor of the weights changes nothing). Beyond the largest calibration
    surprise ``s_max`` the p-value falls on from its value there by one nat for
    each nat of extra surprise, ``log(W(s_max) / W) - (s - s_max)``, so that the
    score stays strictly monotone however extreme the row. An infinite surprise (a
    value the model gives no probability) has log p-value ``-inf``; calibration
    rows with one are left out of that feature's law.

    Parameters
    ----------
    surprises : ndarray of shape (n_masks, n_rows, n_features)
        Surprises of the calibration rows; NaN marks an entry with no value
        (a missing entry), left out of its feature's law.

    weights : ndarray of shape (n_rows,)
        Non-negative row weights.
    """

    def __init__(self, surprises: np.ndarray, weights: np.ndarray) -> None:
        n_masks, _, n_features = surprises.shape
        self.values_ = []
        self.tail_weights_ = []
        self.totals_ = np.zeros((n_masks, n_features))
        for k in range(n_masks):
            values, tails = [], []
            for d in range(n_features):
                s = surprises[k, :, d]
                keep = np.isfinite(s) & (weights > 0)
                order = np.argsort(s[keep], kind="stable")
                sorted_s = s[keep][order]
                w = weights[keep][order]
                # Weight at or above each sorted value: suffix sums.
                tail = np.cumsum(w[::-1])[::-1]
                values.append(sorted_s)
                tails.append(tail)
                self.totals_[k, d] = float(tail[0]) if tail.size else 0.0
            self.values_.append(values)
            self.tail_weights_.append(tails)

    def log_pvalues(self, surprises: np.ndarray) -> np.ndarray:
        """Log p-values of ``(n_masks, n, n_features)`` surprises; NaN gives 0.

        Returns
        -------
        log_p : ndarray of the same shape
            At most 0, ``-inf`` for an infinite surprise, 0 for a missing entry.
        """
        out = np.zeros(surprises.shape, dtype=np.float64)
        n_masks, _, n_features = surprises.shape
        for k in range(n_masks):
            for d in range(n_features):
                out[k, :, d] = self._column(k, d, surprises[k, :, d])
        return out

    def _column(self, k: int, d: int, s: np.ndarray) -> np.ndarray:
        values = self.values_[k][d]
        tails = self.tail_weights_[k][d]
        total = self.totals_[k, d]
        missing = np.isnan(s)
        s = np.where(missing, -np.inf, s)
        if values.size == 0:  # no finite calibration surprise: only the tail
            log_p = -np.maximum(s, 0.0)
            return np.where(missing, 0.0, log_p)
        beyond = s - values[-1]
        # Past the largest value, the weight at it (all its ties: repeated rows count
        # as a weight does); the tail takes over from there.
        last = np.searchsorted(values, values[-1], side="left")
        position = np.minimum(np.searchsorted(values, s, side="left"), last)
        with np.errstate(invalid="ignore"):
            log_p = np.log(tails[position] / total)
            log_p = np.where(beyond > 0, log_p - beyond, log_p)
        return np.where(missing, 0.0, log_p)
