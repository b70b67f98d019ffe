"""Output families: how MADE's outputs parametrise each conditional ``p(x_d | x_<d)``.

A family turns the network's ``(n, n_params, D)`` output into per-variable
log-probabilities and draws values from given noise. Drawing from noise (uniforms for
Bernoulli, categorical and mixture variables, standard normals for Gaussian) rather
than from a generator inside keeps every sampler reproducible and lets two samplers be
compared on the same randomness.

Every family is an instance of a class that satisfies the :class:`Family` protocol;
the estimators and the samplers use nothing else of it.

``draw`` takes parameters with the parameter axis second, ``(..., n_params, ...)``
shaped like ``noise`` with that axis inserted: ``(n, n_params)`` with noise ``(n,)``, or
``(run, n_params, n)`` with noise ``(run, n)`` in the incremental sampler.

:class:`~skmade._table.Table` (in ``_table``) combines these families column by
column for mixed data.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._utils import weighted_quantile

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@runtime_checkable
class Family(Protocol):
    """What an output family provides.

    Attributes
    ----------
    name : str
        ``'bernoulli'``, ``'categorical'``, ``'gaussian'`` or ``'table'``.
    n_params : int or None
        Outputs per variable in MADE's parameter-major layout ``(n, n_params, D)``;
        None for a :class:`Table`, whose outputs are a flat variable-major block per
        column (``output_sizes``), drawn with ``draw_variable``.
    """

    name: str

    @property
    def n_params(self) -> int | None: ...

    def encode(self, x: Tensor) -> Tensor:
        """Network inputs for values ``x`` of shape ``(n, D)``."""

    def initial_bias(self, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The output bias of the independent model fitted to model values Z."""

    def log_prob(
        self, params: Tensor, x: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``log p(x_d | x_<d)`` per variable, ``(n, D)``; the last kernels in
        ``dtype``."""

    def noise(self, shape: tuple[int, int], generator: torch.Generator) -> Tensor:
        """The randomness of a draw of ``shape`` values."""

    def draw(self, params: Tensor, noise: Tensor) -> Tensor:
        """Values from parameters (parameter axis second) and noise."""

    def expectation(self, params: Tensor) -> Tensor:
        """What a mixture of conditionals averages, laid out as ``params``: the
        probability of each value (discrete), the mean in the first parameter's
        place (continuous; the other places zero). A weighted average of these
        over conditionals is the expectation under their mixture."""

    def point(self, expected: Tensor) -> Tensor:
        """The mean (continuous) or mode (discrete) of a conditional or mixture of
        conditionals, from its :meth:`expectation`."""


class Bernoulli:
    """Binary variables; one logit per variable."""

    name = "bernoulli"
    n_params = 1
    input_size = 1

    @staticmethod
    def encode(x: Tensor) -> Tensor:
        return x

    @staticmethod
    def initial_bias(Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Output bias ``(n_params, D)`` of the independent model fitted to ``Z``."""
        mean = (weights.astype(Z.dtype) @ Z).astype(np.float64) / weights.sum()
        mean = np.clip(mean, 1e-3, 1.0 - 1e-3)
        return np.log(mean / (1.0 - mean))[None, :]

    @staticmethod
    def log_prob(params: Tensor, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``log p(x_d | x_<d)`` per variable, shape ``(n, D)``, for 0/1 ``x``.

        ``log sigmoid(l)`` for a one and ``log sigmoid(-l)`` for a zero, written as
        ``-softplus((1 - 2x) l)``: the sign flip is exact in any precision and
        softplus is one stable kernel, cheaper than a general cross-entropy. Only that
        last kernel runs in ``dtype`` (default: the dtype of ``params``).
        """
        logits = params[:, 0]
        signed = torch.where(x > 0.5, -logits, logits)
        return -F.softplus(signed if dtype is None else signed.to(dtype))

    @staticmethod
    def noise(shape: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.rand(shape, generator=generator)

    @staticmethod
    def threshold(noise: Tensor) -> Tensor:
        """``logit(u)``: a one is drawn where the logit exceeds it (``u < p``)."""
        return torch.logit(noise)

    @classmethod
    def draw(cls, params: Tensor, noise: Tensor) -> Tensor:
        """Values from one variable's parameters ``(n, n_params)`` and uniforms."""
        return (params[:, 0] > cls.threshold(noise)).to(params.dtype)

    @staticmethod
    def expectation(params: Tensor) -> Tensor:
        """The probability of a one."""
        return torch.sigmoid(params)

    @staticmethod
    def point(expected: Tensor) -> Tensor:
        """The more probable value."""
        return (expected[:, 0] > 0.5).to(expected.dtype)


class Gaussian:
    """Continuous variables; a mean and a log-scale per variable.

    The log-scale has a soft lower bound, ``LOG_SCALE_MIN + softplus(raw -
    LOG_SCALE_MIN)``: almost the identity above the bound, never below it. Without a
    floor a variable that is constant, or takes few distinct values, drives its scale
    to zero and its log-density to infinity. In standardized units the floor is a
    standard deviation of ``exp(-7) ~ 1e-3``.
    """

    name = "gaussian"
    n_params = 2
    input_size = 1
    LOG_SCALE_MIN = -7.0

    @staticmethod
    def encode(x: Tensor) -> Tensor:
        return x

    @staticmethod
    def initial_bias(Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # Z is standardized: a standard normal per variable is the independent model.
        return np.zeros((2, Z.shape[1]))

    @classmethod
    def raw_log_scale(cls, log_scale: float) -> float:
        """The raw parameter whose floored log-scale is ``log_scale`` (the inverse of
        the soft floor; just above the floor for values at or below it)."""
        excess = max(log_scale - cls.LOG_SCALE_MIN, 1e-6)
        return cls.LOG_SCALE_MIN + float(np.log(np.expm1(excess)))

    @classmethod
    def mean_and_log_scale(cls, params: Tensor) -> tuple[Tensor, Tensor]:
        log_scale = cls.LOG_SCALE_MIN + F.softplus(params[:, 1] - cls.LOG_SCALE_MIN)
        return params[:, 0], log_scale

    @classmethod
    def log_prob(
        cls, params: Tensor, x: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``log N(x_d | mean_d, scale_d)`` per variable, computed in ``dtype``."""
        if dtype is not None:
            params, x = params.to(dtype), x.to(dtype)
        mean, log_scale = cls.mean_and_log_scale(params)
        z = (x - mean) * torch.exp(-log_scale)
        return -0.5 * z.square() - log_scale - _HALF_LOG_2PI

    @staticmethod
    def noise(shape: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.randn(shape, generator=generator)

    @classmethod
    def draw(cls, params: Tensor, noise: Tensor) -> Tensor:
        mean, log_scale = cls.mean_and_log_scale(params)
        return mean + torch.exp(log_scale) * noise

    @classmethod
    def expectation(cls, params: Tensor) -> Tensor:
        """The mean, in the first place."""
        expected = torch.zeros_like(params)
        expected[:, 0] = cls.mean_and_log_scale(params)[0]
        return expected

    @staticmethod
    def point(expected: Tensor) -> Tensor:
        """The mean."""
        return expected[:, 0]


def _soft_floor(raw: Tensor) -> Tensor:
    """The Gaussian family's soft lower bound on log-scales."""
    return Gaussian.LOG_SCALE_MIN + F.softplus(raw - Gaussian.LOG_SCALE_MIN)


def _component_and_uniform(log_weights: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Split one uniform into a component index and a fresh uniform.

    With cumulative weights ``c_j``, the component is the ``j`` with ``c_{j-1} <= u <
    c_j``; given ``j``, ``(u - c_{j-1}) / w_j`` is again uniform on ``(0, 1)`` and
    independent of ``j``. One uniform per variable thus drives a mixture draw exactly.
    ``log_weights`` has the component axis first: ``(C, *u.shape)``.
    """
    weights = torch.softmax(log_weights.double(), dim=0)
    cumulative = torch.cumsum(weights, dim=0)
    u = u.double()
    index = (cumulative < u[None]).sum(dim=0).clamp(max=weights.shape[0] - 1)
    upper = cumulative.gather(0, index[None])[0]
    width = weights.gather(0, index[None])[0]
    fresh = ((u - (upper - width)) / width).clamp(1e-12, 1 - 1e-12)
    return index, fresh


class MixtureOfGaussians:
    """Continuous variables; a mixture of ``n_components`` Gaussians per variable.

    Parameters per variable, in order: ``n_components`` mixture logits, means and raw
    log-scales (with the Gaussian family's soft floor), then one logit per atom. The
    log-density is a log-sum-exp over components, stable for any logits. A draw turns
    one uniform into a component and a standard normal (see
    :func:`_component_and_uniform`).

    Atoms are values that a column repeats (see :func:`find_atoms`): each is a
    component of its own whose mean is fixed at the value and whose log-scale is
    fixed at the floor, ``LOG_SCALE_MIN`` (a standard deviation of ``exp(-7)``
    standardized units), so that only its weight is learned. The density stays a
    proper density on the real line (a mixture of normalized Gaussians): at an atom
    it is, up to the continuous components' share, the atom's conditional
    probability times ``1 / (sqrt(2 pi) exp(-7))``, the mass of a point measure
    spread over the floor's width.

    Parameters
    ----------
    n_components : int
        Free Gaussian components per variable.
    atoms : array-like of shape (n_atoms, n_variables), optional
        Atom values (model units) per variable in the columns; NaN marks an unused
        slot (a variable with fewer atoms). The shape broadcasts against the
        component axis of ``(n, n_params, n_variables)`` parameters; a single
        column's ``(n_atoms, 1)`` also against ``(1, n_params, n)`` and, squeezed,
        ``(n, n_params)``.
    """

    name = "gaussian"
    input_size = 1

    def __init__(self, n_components: int, atoms=None) -> None:
        self.n_components = n_components
        atoms = None if atoms is None else np.asarray(atoms, dtype=np.float64)
        if atoms is not None and atoms.ndim == 1:
            atoms = atoms[:, None]
        if atoms is not None and atoms.shape[0] == 0:
            atoms = None
        self.atoms = atoms
        self.n_atoms = 0 if atoms is None else atoms.shape[0]
        self.n_params = 3 * n_components + self.n_atoms
        if atoms is not None:
            self._atom_values = torch.from_numpy(np.nan_to_num(atoms))
            self._atom_valid = torch.from_numpy(~np.isnan(atoms))

    @staticmethod
    def encode(x: Tensor) -> Tensor:
        return x

    def initial_bias(self, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Equal weights, means at spread quantiles, scales shrunk with ``C``; each
        atom weighted by its share of the rows (relative to the free components,
        which share the rest)."""
        C = self.n_components
        levels = (np.arange(C) + 0.5) / C
        # Weighted inverted-CDF quantiles: a row of weight 2 acts as a repeated row.
        means = (
            weighted_quantile(Z, weights, levels) if Z.shape[0] else np.zeros((C, 1))
        )
        log_scales = np.full((C, Z.shape[1]), np.log(max(0.2, 1.0 / C)))
        parts = [np.zeros((C, Z.shape[1])), means, log_scales]
        if self.atoms is not None:
            total = max(float(np.sum(weights)), 1e-12)
            shares = np.stack(
                [
                    weights @ (Z[:, [j]] == self.atoms[None, :, j]) / total
                    for j in range(Z.shape[1])
                ],
                axis=1,
            )  # (K, m), one column at a time: (n, K) at most
            rest = np.clip(1.0 - shares.sum(axis=0), 0.05, None)
            # softmax weight of an atom over C free components at logit 0.
            parts.append(np.log(np.clip(shares, 1e-4, None) * C / rest))
        return np.concatenate(parts)

    def _atom_tensors(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Atom values and validity, shaped to broadcast against ``params``'s
        component axis (the second)."""
        values = self._atom_values.to(device=params.device, dtype=params.dtype)
        valid = self._atom_valid.to(params.device)
        if params.ndim == 2:  # (n, n_params) of one variable
            return values[:, 0], valid[:, 0]
        return values, valid

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits, means and log-scales of every component (free ones, then atoms),
        component axis second."""
        C = self.n_components
        logits, means, raw = params[:, :C], params[:, C : 2 * C], params[:, 2 * C :]
        if self.atoms is None:
            return logits, means, _soft_floor(raw)
        raw, atom_logits = raw[:, :C], raw[:, C:]
        values, valid = self._atom_tensors(params)
        atom_logits = atom_logits.masked_fill(~valid, -math.inf)
        shape = atom_logits.shape
        atom_means = values.expand(shape)
        atom_scales = torch.full_like(atom_logits, Gaussian.LOG_SCALE_MIN)
        return (
            torch.cat([logits, atom_logits], dim=1),
            torch.cat([means, atom_means], dim=1),
            torch.cat([_soft_floor(raw), atom_scales], dim=1),
        )

    def log_prob(
        self, params: Tensor, x: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        if dtype is not None:
            params, x = params.to(dtype), x.to(dtype)
        logits, means, log_scales = self.split(params)
        z = (x[:, None] - means) * torch.exp(-log_scales)
        per_component = -0.5 * z.square() - log_scales - _HALF_LOG_2PI
        log_weights = torch.log_softmax(logits, dim=1)
        return torch.logsumexp(log_weights + per_component, dim=1)

    @staticmethod
    def noise(shape: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.rand(shape, generator=generator)

    def draw(self, params: Tensor, noise: Tensor) -> Tensor:
        logits, means, log_scales = self.split(params)
        index, fresh = _component_and_uniform(logits.movedim(1, 0), noise)
        mean = means.gather(1, index.unsqueeze(1)).squeeze(1)
        log_scale = log_scales.gather(1, index.unsqueeze(1)).squeeze(1)
        normal = torch.special.ndtri(fresh)
        return (mean.double() + torch.exp(log_scale.double()) * normal).to(noise.dtype)

    def expectation(self, params: Tensor) -> Tensor:
        """The mixture's mean, in the first place."""
        logits, means, _ = self.split(params)
        expected = torch.zeros_like(params)
        expected[:, 0] = (torch.softmax(logits, dim=1) * means).sum(dim=1)
        return expected

    @staticmethod
    def point(expected: Tensor) -> Tensor:
        """The mean."""
        return expected[:, 0]


class Categorical:
    """Integer-coded variables with ``n_categories`` values; a logit per category.

    Values are codes ``0..k-1``. As network inputs they are one-hot blocks of
    ``k`` units (see :class:`Table`).
    """

    name = "categorical"

    def __init__(self, n_categories: int) -> None:
        self.n_categories = n_categories
        self.n_params = n_categories
        self.input_size = n_categories

    def initial_bias(self, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Log-frequencies of the codes, each at least 1e-3 (as :class:`Bernoulli`).

        The floor is on the weighted share, not a pseudo-count, so that a common
        factor of the weights, or a row of weight 2 instead of a repeated row,
        changes nothing.
        """
        k = self.n_categories
        bias = np.empty((k, Z.shape[1]))
        for j, column in enumerate(Z.T):
            counts = np.bincount(column.astype(np.int64), weights, minlength=k)[:k]
            shares = np.maximum(counts / weights.sum(), 1e-3)
            bias[:, j] = np.log(shares / shares.sum())
        return bias

    def encode(self, x: Tensor) -> Tensor:
        """One-hot blocks ``(n, D * k)``, variable-major, for codes ``(n, D)``."""
        onehot = F.one_hot(x.long(), self.n_categories).to(x.dtype)
        return onehot.reshape(x.shape[0], -1)

    def log_prob(
        self, params: Tensor, x: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        if dtype is not None:
            params = params.to(dtype)
        log_p = torch.log_softmax(params, dim=1)
        return log_p.gather(1, x.long()[:, None]).squeeze(1)

    @staticmethod
    def noise(shape: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.rand(shape, generator=generator)

    def draw(self, params: Tensor, noise: Tensor) -> Tensor:
        index, _ = _component_and_uniform(params.movedim(1, 0), noise)
        return index.to(noise.dtype)

    @staticmethod
    def expectation(params: Tensor) -> Tensor:
        """The probability of each category."""
        return torch.softmax(params, dim=1)

    @staticmethod
    def point(expected: Tensor) -> Tensor:
        """The most probable category's code."""
        return expected.argmax(dim=1).to(expected.dtype)


def linear_gaussian(
    Z: np.ndarray,
    weights: np.ndarray,
    order: np.ndarray,
    ridge: float,
    n_rows: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The full-covariance Gaussian of Z as an autoregressive model in ``order``.

    Returns ``(coef, intercept, scale)``, or None when the covariance is not finite:
    ``x[order[i]]`` given the earlier variables is normal with mean ``intercept[i] +
    coef[i] @ x[order]`` (``coef`` strictly lower triangular) and standard deviation
    ``scale[i]``. From the Cholesky factor ``L`` of the weighted covariance (plus
    ``ridge`` on the diagonal) in that order: with ``x = mu + L z``, ``z`` standard
    normal, the conditional mean is ``x - diag(L) L^-1 (x - mu)`` and the conditional
    scale ``diag(L)``. Moments are accumulated in float64 over blocks of rows, so
    memory does not grow with the table.

    With ``n_rows`` (the number of rows the moments stand for: the sum of the row
    weights), the covariance is first shrunk toward a multiple of the identity by
    the oracle approximating shrinkage of Chen et al. (2010), as
    :class:`sklearn.covariance.OAS` does: on fewer rows than variables the sample
    covariance is singular, and a Gaussian start fitted to it would put held-out rows
    at log-densities of -1e4 and below. The shrinkage vanishes as rows accumulate.
    """
    total = weights.sum()
    D = len(order)
    first, second = np.zeros(D), np.zeros((D, D))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, Z.shape[0], _MOMENT_BLOCK):
            X = Z[start : start + _MOMENT_BLOCK, order].astype(np.float64)
            w = weights[start : start + _MOMENT_BLOCK] / total
            first += w @ X
            second += (X * w[:, None]).T @ X
        cov = second - np.outer(first, first)
    if not np.all(np.isfinite(cov)):
        return None
    if n_rows is not None:
        mu = np.trace(cov) / D
        alpha = np.mean(cov**2)
        denominator = (n_rows + 1.0) * (alpha - mu**2 / D)
        shrinkage = 1.0 if denominator <= 0 else min(1.0, (alpha + mu**2) / denominator)
        cov = (1.0 - shrinkage) * cov + shrinkage * mu * np.eye(D)
    cov = cov + ridge * np.eye(D)
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    diag = np.diag(L)
    coef = np.tril(np.eye(D) - diag[:, None] * np.linalg.inv(L), k=-1)
    return coef, first - coef @ first, diag


def gaussian_log_likelihood(start, X: np.ndarray) -> np.ndarray:
    """Log-density of the rows of X (columns in the start's order) under the
    Gaussian that :func:`linear_gaussian` returned."""
    coef, intercept, scale = start
    residual = (X - X @ coef.T - intercept) / scale
    return (-0.5 * residual**2 - np.log(scale) - _HALF_LOG_2PI).sum(axis=1)


_MOMENT_BLOCK = 8192
