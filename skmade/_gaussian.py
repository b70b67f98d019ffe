"""A full-covariance Gaussian under MADE's continuous conditionals, for any ordering.

A model trained for every ordering of the columns (``allow_missing``) must predict a
continuous column from any subset of the others. For a Gaussian the best linear
prediction changes with the subset (two near-copies of a column share its weight
when both are seen, one carries it alone), which one set of masked linear weights
cannot express. :class:`GaussianBase` gives every continuous conditional the exact
conditional of a full-covariance Gaussian, fitted by EM to the incomplete rows
(:func:`gaussian_em`), as an offset of its mean and log-scale; the network learns
what the Gaussian misses. The offsets depend only on the values of the variables
earlier in the row's ordering, so every conditional stays autoregressive and the
joint density stays exactly normalized.

No scikit-learn here: numpy for the fit, torch for the offsets.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

# Rows used by the EM fit (a random subset beyond this), its iterations and its
# stopping tolerance on the largest change of a mean or covariance entry.
_EM_MAX_ROWS = 5000
_EM_MAX_ITER = 30
_EM_TOL = 1e-4
_EM_BLOCK = 512


def _shrunk(cov: np.ndarray, n_rows: float | None, ridge: float) -> np.ndarray:
    """``cov`` shrunk toward a multiple of the identity as :class:`sklearn.covariance.
    OAS` does (Chen et al., 2010) for ``n_rows`` rows (None: not shrunk), plus
    ``ridge`` on the diagonal."""
    D = cov.shape[0]
    if n_rows is None:
        return cov + ridge * np.eye(D)
    mu = np.trace(cov) / D
    alpha = np.mean(cov**2)
    denominator = (n_rows + 1.0) * (alpha - mu**2 / D)
    shrinkage = 1.0 if denominator <= 0 else min(1.0, (alpha + mu**2) / denominator)
    return (1.0 - shrinkage) * cov + shrinkage * mu * np.eye(D) + ridge * np.eye(D)


def gaussian_em(
    Z: np.ndarray,
    weights: np.ndarray,
    ridge: float,
    rng: np.random.RandomState,
    shrink: bool = True,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and covariance of a Gaussian fitted to the rows of Z, NaN as missing.

    Expectation-maximization for a Gaussian with entries missing at random: the
    E-step completes each row with the conditional mean of its missing entries
    given its observed ones and adds their conditional covariance; the M-step takes
    the weighted moments. Each iteration adds ``ridge`` to the covariance's
    diagonal and, with ``shrink``, first shrinks it as OAS does (safe on few rows,
    harmful on nearly collinear columns). At most ``_EM_MAX_ROWS`` rows
    (drawn with ``rng``) are used. Returns None when a column has no observed value
    or the moments are not finite.
    """
    if Z.shape[0] > _EM_MAX_ROWS:
        rows = np.sort(rng.choice(Z.shape[0], _EM_MAX_ROWS, replace=False))
        Z, weights = Z[rows], weights[rows]
    Z = Z.astype(np.float64)
    w = weights / weights.sum()
    n_rows = None
    if shrink:  # the effective number of rows
        n_rows = float(weights.sum() ** 2 / np.square(weights).sum())
    missing = np.isnan(Z)
    observed_weight = w @ ~missing
    if np.any(observed_weight <= 0):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (w @ np.nan_to_num(Z)) / observed_weight
        filled = np.where(missing, mean, Z)
        centred = filled - mean
        cov = _shrunk((centred * w[:, None]).T @ centred, n_rows, ridge)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        return None
    incomplete = np.flatnonzero(missing.any(axis=1))
    eye = np.eye(Z.shape[1])
    for _ in range(_EM_MAX_ITER):
        filled = np.where(missing, 0.0, Z)
        correction = np.zeros_like(cov)
        for start in range(0, incomplete.size, _EM_BLOCK):
            rows = incomplete[start : start + _EM_BLOCK]
            seen = (~missing[rows]).astype(np.float64)  # (n, D)
            # Observed block of the covariance, identity on the missing entries:
            # solving with it gives Sigma_OO^-1 on the observed entries, 0 elsewhere.
            A = seen[:, :, None] * cov * seen[:, None, :] + (1 - seen)[:, :, None] * eye
            residual = seen * np.nan_to_num(Z[rows] - mean)
            solved = np.linalg.solve(
                A,
                np.concatenate([residual[:, :, None], seen[:, :, None] * cov], axis=2),
            )
            filled[rows] = mean + solved[:, :, 0] @ cov  # observed entries unchanged
            # Conditional covariance of the missing entries (0 on observed ones).
            conditional = cov - (cov * seen[:, None, :]) @ solved[:, :, 1:]
            correction += np.einsum("n,nij->ij", w[rows], conditional)
        filled = np.where(missing, filled, Z)
        new_mean = w @ filled
        centred = filled - new_mean
        with np.errstate(over="ignore", invalid="ignore"):
            new_cov = (centred * w[:, None]).T @ centred + correction
            new_cov = _shrunk(new_cov, n_rows, ridge)
        if not (np.all(np.isfinite(new_mean)) and np.all(np.isfinite(new_cov))):
            return None
        change = max(np.abs(new_mean - mean).max(), np.abs(new_cov - cov).max())
        mean, cov = new_mean, new_cov
        if change < _EM_TOL:
            break
    return mean, cov


def marginal_log_likelihood(mean: np.ndarray, cov: np.ndarray, Z: np.ndarray):
    """Log-density of each row's observed entries (NaN: missing) under the
    Gaussian; 0 for a row with none."""
    missing = np.isnan(Z)
    seen = (~missing).astype(np.float64)
    out = np.empty(Z.shape[0])
    eye = np.eye(Z.shape[1])
    for start in range(0, Z.shape[0], _EM_BLOCK):
        s = seen[start : start + _EM_BLOCK]
        A = s[:, :, None] * cov * s[:, None, :] + (1 - s)[:, :, None] * eye
        residual = s * np.nan_to_num(Z[start : start + _EM_BLOCK] - mean)
        _, logdet = np.linalg.slogdet(A)
        quad = (residual * np.linalg.solve(A, residual[:, :, None])[:, :, 0]).sum(1)
        out[start : start + _EM_BLOCK] = -0.5 * (
            quad + logdet + s.sum(axis=1) * np.log(2 * np.pi)
        )
    return out


def indicator_gain(
    mean: np.ndarray,
    cov: np.ndarray,
    E: np.ndarray,
    dims: np.ndarray,
    slope: np.ndarray,
) -> np.ndarray:
    """What the Gaussian's linear logits add, in nats, to each row's likelihood of
    one categorical column whose one-hot indicators are the dimensions ``dims``.

    For each row of E (NaN: missing) where the column is observed, its category's
    log-probability under ``softmax(log mean + slope (m - mean))``, ``m`` the
    indicators' conditional mean given the row's other observed dimensions (the
    start of a base that includes the column), minus the same under the column's
    shares ``mean`` alone. One value per row where the column is observed.
    """
    observed = ~np.isnan(E[:, dims[0]])
    if not observed.any():
        return np.zeros(0)
    E = E[observed]
    seen = (~np.isnan(E)).astype(np.float64)
    seen[:, dims] = 0.0
    eye = np.eye(E.shape[1])
    A = seen[:, :, None] * cov * seen[:, None, :] + (1 - seen)[:, :, None] * eye
    residual = seen * np.nan_to_num(E - mean)
    m = mean + np.linalg.solve(A, residual[:, :, None])[:, :, 0] @ cov
    log_share = np.log(np.clip(mean[dims], 1e-3, None))
    log_share -= np.logaddexp.reduce(log_share)
    logits = log_share + slope * (m[:, dims] - mean[dims])
    logits -= np.logaddexp.reduce(logits, axis=1, keepdims=True)
    truth = np.argmax(E[:, dims], axis=1)
    rows = np.arange(len(E))
    return logits[rows, truth] - log_share[truth]


def _before(sorted_position: Tensor) -> Tensor:
    """``(n, G, G)``: whether sorted dimension ``q`` is strictly before sorted
    dimension ``i`` (``[n, i, q]``), from each row's sorted positions (a tie is not
    before)."""
    G = sorted_position.shape[1]
    tie_start = torch.searchsorted(sorted_position.contiguous(), sorted_position)
    arange = torch.arange(G, device=sorted_position.device)
    return arange[None, None, :] < tie_start[:, :, None]


class GaussianBase(nn.Module):
    """Offsets that put a Gaussian's exact conditionals under MADE's outputs.

    The Gaussian is over ``variables`` (continuous and binary columns, binary ones
    as 0/1 values), with input units ``in_units``. Given the variables before it in
    an ordering, a variable is normal with a mean linear in their values and a
    scale that depends on which they are. For a continuous variable both are added
    to the network's outputs: the mean to every component's mean (``mean_units``,
    one column per mixture component), the log-scale to every component's raw
    log-scale (``scale_units``). For a binary variable the logit (``logit_units``)
    gets ``slope * (m - mean)``, ``m`` its conditional mean: the first-order
    expansion of ``logit(m)`` around the column's mean with ``slope = 1 / (mean (1
    - mean))`` at the start, and the slope is then trained. The Gaussian itself is
    fitted once (buffers), not trained.

    Parameters
    ----------
    mean, cov : Tensor
        The Gaussian, over ``variables`` in model units.
    variables, in_units : Tensor of shape (G,)
        The variables (continuous first, then binary) and their input units.
    mean_units, scale_units : Tensor of shape (G_continuous, C)
        Output units of each continuous variable's component means and raw
        log-scales.
    logit_units : Tensor of shape (G_binary,)
        Output unit of each binary variable's logit.
    n_outputs : int
        Output units of the network.
    """

    def __init__(
        self,
        mean: Tensor,
        cov: Tensor,
        variables: Tensor,
        in_units: Tensor,
        mean_units: Tensor,
        scale_units: Tensor,
        n_outputs: int,
        logit_units: Tensor | None = None,
        slope: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_outputs = int(n_outputs)
        if logit_units is None:
            logit_units = torch.zeros(0, dtype=torch.long)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("cov", torch.as_tensor(cov, dtype=torch.float64))
        for name, value in (
            ("variables", variables),
            ("in_units", in_units),
            ("mean_units", mean_units),
            ("scale_units", scale_units),
            ("logit_units", logit_units),
        ):
            self.register_buffer(name, torch.as_tensor(value).long())
        n_continuous = self.mean_units.shape[0]
        if slope is None:
            p = self.mean[n_continuous:].clamp(0.01, 0.99)
            slope = 1.0 / (p * (1.0 - p))
        self.slope = nn.Parameter(torch.as_tensor(slope, dtype=torch.float32).clone())
        self._cache: dict = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    @property
    def n_continuous(self) -> int:
        return self.mean_units.shape[0]

    def fixed(self, variable_degrees: Tensor, n_inputs: int, dtype) -> tuple:
        """``(weight, bias)`` of the offsets for one ordering (the variables'
        degrees): linear in the inputs, for continuous and binary outputs alike.
        """
        key = (tuple(variable_degrees.tolist()), n_inputs, dtype, self.slope._version)
        cached = self._cache.get(key)
        if cached is not None and not torch.is_grad_enabled():
            return cached
        position = variable_degrees[self.variables]
        order = torch.argsort(position, stable=True)
        L = torch.linalg.cholesky(self.cov[order][:, order])
        before = _before(position[order][None])[0]
        # Conditional means: mean + (L * before) L^-1 (x - mean); without ties
        # (one dimension per variable) that is x - diag(L) L^-1 (x - mean).
        coef = (L * before) @ torch.linalg.inv(L)
        diag = torch.sqrt((L.square() * ~before).sum(dim=1))  # conditional scales
        # Back to the dimensions' order (rows), columns still in sorted order.
        rank = torch.argsort(order)
        coef, diag = coef[rank], diag[rank]
        mean_sorted = self.mean[order]
        intercept = self.mean - coef @ mean_sorted
        in_units = self.in_units[order]
        weight = torch.zeros(self.n_outputs, n_inputs, dtype=L.dtype, device=L.device)
        bias = torch.zeros(self.n_outputs, dtype=L.dtype, device=L.device)
        G = self.n_continuous
        for c in range(self.mean_units.shape[1]):
            weight[self.mean_units[:, c][:, None], in_units[None, :]] = coef[:G]
            bias[self.mean_units[:, c]] = intercept[:G]
            bias[self.scale_units[:, c]] = torch.log(diag[:G])
        weight, bias = weight.to(dtype), bias.to(dtype)
        if self.logit_units.numel():
            slope = self.slope.to(dtype)[:, None]
            binary_weight = torch.zeros(
                len(self.logit_units), n_inputs, dtype=dtype, device=L.device
            )
            binary_weight[:, in_units] = coef[G:].to(dtype)
            weight = weight.index_put(
                (self.logit_units,), slope * binary_weight, accumulate=False
            )
            shift = (intercept[G:] - self.mean[G:]).to(dtype)
            bias = bias.index_put((self.logit_units,), slope[:, 0] * shift)
        if not torch.is_grad_enabled():
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (weight, bias)
        return weight, bias

    def rows(self, x: Tensor, positions: Tensor) -> Tensor:
        """Offsets ``(n, n_outputs)`` with a different ordering in every row.

        ``positions[n, d]`` is variable ``d``'s position in row ``n``'s ordering;
        variables may share a position, and each is then conditioned on the
        variables strictly before it only (so a tie of the missing variables after
        the observed ones gives each missing variable its conditional given the
        observed ones). From the Cholesky factor ``L`` of the covariance in the
        row's order, with ``x = mean + L z``: the conditional mean of the variable
        at sorted index ``i``, whose tie starts at ``a``, is ``mean_i + sum_{q<a}
        L_iq z_q``, its variance ``sum_{a<=q<=i} L_iq^2``.
        """
        n = x.shape[0]
        with torch.no_grad():
            position = positions[:, self.variables]  # (n, G)
            order = torch.argsort(position, dim=1, stable=True)
            cov = self.cov[order[:, :, None], order[:, None, :]]  # (n, G, G)
            L = torch.linalg.cholesky(cov)
            mean = self.mean[order]
            values = x[:, self.in_units].to(torch.float64).gather(1, order)
            z = torch.linalg.solve_triangular(
                L, (values - mean)[:, :, None], upper=False
            )[:, :, 0]
            before = _before(position.gather(1, order))
            cond_mean = mean + (L * before * z[:, None, :]).sum(dim=2)
            cond_var = (L.square() * ~before).sum(dim=2)
            inverse = torch.argsort(order, dim=1)  # back to the variables' order
            cond_mean = cond_mean.gather(1, inverse)
            log_scale = (0.5 * torch.log(cond_var)).gather(1, inverse)
        out = x.new_zeros(n, self.n_outputs)
        C = self.n_continuous
        for c in range(self.mean_units.shape[1]):
            out[:, self.mean_units[:, c]] = cond_mean[:, :C].to(x.dtype)
            out[:, self.scale_units[:, c]] = log_scale[:, :C].to(x.dtype)
        if self.logit_units.numel():
            shift = (cond_mean[:, C:] - self.mean[C:]).to(x.dtype)
            out = out.index_put(
                (torch.arange(n, device=x.device)[:, None], self.logit_units[None]),
                self.slope.to(x.dtype) * shift,
            )
        return out
