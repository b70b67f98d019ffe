"""Output families: how MADE's outputs parametrise each conditional ``p(x_d | x_<d)``.

A family turns the network's ``(n, n_params, D)`` output into per-variable
log-probabilities and draws values from given noise. Drawing from noise (uniforms for
Bernoulli, standard normals for Gaussian) rather than from a generator inside keeps
every sampler reproducible and lets two samplers be compared on the same randomness.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Bernoulli:
    """Binary variables; one logit per variable."""

    name = "bernoulli"
    n_params = 1

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
    LOG_SCALE_MIN = -7.0

    @staticmethod
    def initial_bias(Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # Z is standardized: a standard normal per variable is the independent model.
        return np.zeros((2, Z.shape[1]))

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


FAMILIES = {family.name: family for family in (Bernoulli, Gaussian)}
