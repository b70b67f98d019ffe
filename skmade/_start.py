"""The Gaussian start of MADEDensity: closed-form fits that training starts from.

A linear-Gaussian regression of each continuous column on the columns before it sets
the direct path (the network then starts as that Gaussian), and with missing values a
Gaussian base over the continuous columns fitted by EM (:mod:`skmade._gaussian`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._families import (
    Gaussian,
    MixtureOfGaussians,
    gaussian_log_likelihood,
    linear_gaussian,
)
from ._gaussian import (
    GaussianBase,
    gaussian_em,
    indicator_gain,
    marginal_log_likelihood,
)
from ._table import Table

# The Gaussian start: ridge on the standardized covariance's diagonal, and the factor
# on the hidden path's output weights.
_START_RIDGE = 1e-3
_START_HIDDEN_SCALE = 0.1
# Most continuous columns under a Gaussian base (allow_missing).
_GAUSSIAN_BASE_MAX = 128


def _indicators(Z, continuous, discrete, sizes) -> np.ndarray:
    """The Gaussian base's dimensions of model values Z: the continuous columns,
    then each discrete column (binary: itself; categorical: its one-hot
    indicators), NaN where the column is missing."""
    blocks = [Z[:, continuous]]
    for d, k in zip(discrete, sizes, strict=True):
        values = Z[:, d]
        block = (
            values[:, None]
            if k == 1
            else (values[:, None] == np.arange(k)[None, :]).astype(float)
        )
        blocks.append(np.where(np.isnan(values)[:, None], np.nan, block))
    return np.concatenate(blocks, axis=1)


class GaussianStartMixin:
    """The closed-form starts of :class:`~skmade.MADEDensity` (see the module)."""

    def _gaussian_base(
        self, module, family, Z, weights, Z_val, weights_val, rng
    ) -> None:
        """Put a Gaussian's exact conditionals under the outputs.

        With ``allow_missing`` the network predicts each column from any subset of
        the others; a full-covariance Gaussian over the continuous columns, the
        binary ones and the one-hot indicators of the categorical ones, fitted by EM
        to the incomplete rows, gives the exact conditional for every subset, and
        the network's outputs are offsets from it (see ``skmade._gaussian``: a
        continuous column's mean and log-scale, a binary column's or a category's
        logit by a trained slope times the conditional mean's departure from the
        overall mean). A categorical column stays in the Gaussian only if, on the
        validation rows, those linear logits predict it better than its shares do by
        more than two standard errors (:func:`indicator_gain`); its dimensions are
        otherwise marginalized out (dropped from the mean and covariance). Training
        starts at the Gaussian: component means spread around its mean by half of
        the column's scale given all other columns, component scales shrunk so that
        the mixture keeps its variance, the hidden path's output weights small and
        the direct weights of those outputs at zero. As for the Gaussian start of a
        fixed ordering, the validation rows choose between the covariance shrunk as
        OAS does and the plain one (without any, the shrunk one, and no categorical
        column). Used for 2 to ``_GAUSSIAN_BASE_MAX`` dimensions (a Cholesky factor
        per row and step costs the cube of their number).
        """
        kinds = np.asarray(self.column_distributions_)
        continuous = np.flatnonzero(kinds == "gaussian")
        discrete = np.flatnonzero(kinds != "gaussian")
        if isinstance(family, Table):
            in_starts, out_starts, stride = family.in_starts, family.out_starts, 1
            sizes = [
                family.sizes[d] if kinds[d] == "categorical" else 1 for d in discrete
            ]
            first = family.families[continuous[0]] if continuous.size else None
        else:
            in_starts = out_starts = np.arange(Z.shape[1] + 1)
            stride = Z.shape[1]
            sizes = [1] * discrete.size
            first = family
        # Mixture layout (logits, means, raw scales, then any atoms' logits) or a
        # single Gaussian's (mean, raw scale); all continuous columns share C.
        mixture = isinstance(first, MixtureOfGaussians)
        C = first.n_components if mixture else 1
        variables = np.concatenate(
            [continuous, *[np.full(k, d) for d, k in zip(discrete, sizes, strict=True)]]
        ).astype(np.int64)
        if not 2 <= variables.size <= _GAUSSIAN_BASE_MAX:
            return
        units = np.concatenate(
            [np.zeros(continuous.size, np.int64), *[np.arange(k) for k in sizes]]
        )
        E = _indicators(Z, continuous, discrete, sizes)
        E_val = _indicators(Z_val, continuous, discrete, sizes)
        fitted = gaussian_em(E, weights, _START_RIDGE, rng)
        if fitted is None:
            return
        if E_val.shape[0]:
            plain = gaussian_em(E, weights, _START_RIDGE, rng, False)
            if plain is not None:
                scores = [
                    np.average(
                        marginal_log_likelihood(*candidate, E_val),
                        weights=weights_val if weights_val.sum() > 0 else None,
                    )
                    for candidate in (fitted, plain)
                ]
                if scores[1] > scores[0]:
                    fitted = plain
        mean, cov = fitted
        # Starting slopes: the logit's first-order expansion 1 / (p (1 - p)).
        slope = 1.0 / (np.clip(mean, 0.01, 0.99) * (1.0 - np.clip(mean, 0.01, 0.99)))
        keep = np.ones(variables.size, bool)
        for d in discrete[[kinds[d] == "categorical" for d in discrete]]:
            dims = np.flatnonzero(variables == d)
            gain = indicator_gain(mean, cov, E_val, dims, slope[dims])
            # Kept when the mean gain is more than two standard errors above 0.
            keep[dims] = gain.size > 1 and gain.mean() > 2 * gain.std(ddof=1) / np.sqrt(
                gain.size
            )
        variables, units, slope = variables[keep], units[keep], slope[keep]
        mean, cov = mean[keep], cov[np.ix_(keep, keep)]
        if variables.size < 2:
            return
        in_units = in_starts[variables] + units
        n_continuous = continuous.size
        logit_units = (out_starts[variables] + units)[n_continuous:]
        slope = slope[n_continuous:]
        first_mean, first_raw = (C, 2 * C) if mixture else (0, 1)
        offsets = stride * np.arange(C)
        starts = out_starts[continuous][:, None]
        mean_units = starts + stride * first_mean + offsets
        scale_units = starts + stride * first_raw + offsets
        spread = np.arange(C) - (C - 1) / 2
        if C > 1:  # in units of the scale given all other columns; variance 0.25
            spread = 0.5 * spread / spread.std()
        given_rest = 1.0 / np.sqrt(np.diag(np.linalg.inv(cov)))[:n_continuous]
        n_params = 3 * C if mixture else 2
        continuous_units = np.concatenate(
            [out_starts[continuous] + stride * p for p in range(n_params)]
        ).astype(np.int64)
        output = module.layers[-1]
        with torch.no_grad():
            based = np.concatenate([continuous_units, logit_units])
            output.weight[based] *= _START_HIDDEN_SCALE
            if module.direct is not None:
                module.direct.weight[based] = 0.0
            if n_continuous:
                output.bias[continuous_units] = 0.0
                output.bias[mean_units] = torch.as_tensor(
                    given_rest[:, None] * spread[None, :], dtype=output.bias.dtype
                )
                output.bias[scale_units] = 0.5 * math.log(1.0 - spread.var())
        module.set_gaussian(
            GaussianBase(
                torch.from_numpy(mean),
                torch.from_numpy(cov),
                torch.from_numpy(variables),
                torch.from_numpy(in_units.astype(np.int64)),
                torch.from_numpy(mean_units.astype(np.int64)),
                torch.from_numpy(scale_units.astype(np.int64)),
                n_outputs=output.out_features,
                logit_units=torch.from_numpy(logit_units.astype(np.int64)),
                slope=torch.from_numpy(slope),
            )
        )

    def _linear_gaussian_start(
        self, module, family, Z, weights, n_rows, Z_val, weights_val
    ) -> None:
        """Start the continuous conditionals at the full-covariance Gaussian.

        With direct connections and one shared ordering, the direct path can hold the
        Gaussian's conditionals exactly: a linear mean in the earlier continuous
        columns and a constant scale (computed in closed form by
        :func:`linear_gaussian`). Mixture components start around that mean (spread
        by half a residual scale, their own scales shrunk so that the mixture keeps
        its variance) and the hidden path's output weights start small, so training
        begins from the model that GaussianMixture with one component would fit.
        """
        orderings = module.orderings.numpy()
        kinds = np.asarray(self.column_distributions_)
        if module.direct is None or not (orderings == orderings[0]).all():
            return
        order = np.array([d for d in orderings[0] if kinds[d] == "gaussian"])
        if order.size == 0:
            return
        # Two candidates: the sample covariance, and the same shrunk as OAS does
        # (safe on fewer rows than columns, harmful on strongly collinear ones).
        # The validation rows choose; without any, the shrunk one is the safe one.
        start = linear_gaussian(Z, weights, order, _START_RIDGE, n_rows)
        if Z_val.shape[0] and start is not None:
            plain = linear_gaussian(Z, weights, order, _START_RIDGE)
            if plain is not None:
                scores = [
                    np.average(
                        gaussian_log_likelihood(candidate, Z_val[:, order]),
                        weights=weights_val if weights_val.sum() > 0 else None,
                    )
                    for candidate in (start, plain)
                ]
                if scores[1] > scores[0]:
                    start = plain
        if start is None:  # no finite covariance (extreme values): keep the default
            return
        coef, intercept, scale = start
        n_features = Z.shape[1]
        if isinstance(family, Table):
            families = family.families
            in_units = family.in_starts[order]
            out_starts = family.out_starts
            stride = 1
        else:
            families = [family] * n_features
            in_units = order
            out_starts = np.arange(n_features)
            stride = n_features
        direct, output = module.direct.weight, module.layers[-1]
        with torch.no_grad():
            for i, d in enumerate(order):
                mixture = isinstance(families[d], MixtureOfGaussians)
                C = families[d].n_components if mixture else 1
                first_mean, first_raw = (C, 2 * C) if mixture else (0, 1)
                spread = np.arange(C) - (C - 1) / 2
                if C > 1:  # in residual scales; variance 0.25
                    spread = 0.5 * spread / spread.std()
                log_scale = np.log(scale[i] * np.sqrt(1.0 - spread.var()))
                raw = Gaussian.raw_log_scale(log_scale)
                units = out_starts[d] + stride * np.arange(families[d].n_params)
                output.weight[units] *= _START_HIDDEN_SCALE
                direct[units] = 0.0
                for c in range(C):
                    mean_unit = units[first_mean + c]
                    direct[mean_unit, in_units[:i]] = torch.as_tensor(
                        coef[i, :i], dtype=direct.dtype
                    )
                    output.bias[mean_unit] = float(intercept[i] + scale[i] * spread[c])
                    output.bias[units[first_raw + c]] = float(raw)
                    if mixture:
                        output.bias[units[c]] = 0.0
