"""PyTorch modules of the masked autoregressive flow (MAF): batch norm and the stack.

A MAF (Papamakarios et al., 2017) maps data ``x`` to noise ``u`` through a stack of
Gaussian MADEs: layer ``i`` computes ``u_d = (x_d - mu_d(x_<d)) * exp(-s_d(x_<d))`` in
its own ordering, with log-Jacobian ``-sum_d s_d``. Optional batch-norm layers between
them are affine per dimension, with log-Jacobian ``sum_d log gamma_d - 0.5 log(var_d +
eps)``. The base density of the last ``u`` is a standard normal, or a MADE with
mixture-of-Gaussians conditionals (MAF MoG).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._families import Gaussian, MixtureOfGaussians
from ._nn import MADE
from ._sampling import sample_incremental

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class FlowGaussian(Gaussian):
    """The affine layer of a MAF: a Gaussian whose log-scale is bounded both ways.

    ``s = B tanh(raw / B)``, so that each layer stretches or squeezes by at most
    ``exp(B)``. A single MADE can let a conditional's scale shrink far (its floor is
    ``exp(-7)``); in a stack, a layer that has collapsed onto duplicated training values
    would stretch a slightly different test value by that much and hand the next
    layers inputs far outside anything they were trained on, compounding the blow-up.
    """

    LOG_SCALE_BOUND = 3.0

    @classmethod
    def mean_and_log_scale(cls, params: Tensor) -> tuple[Tensor, Tensor]:
        bound = cls.LOG_SCALE_BOUND
        return params[:, 0], bound * torch.tanh(params[:, 1] / bound)


class BatchNormFlow(nn.Module):
    """Batch normalization as an invertible layer with a tracked log-Jacobian.

    In training mode the batch's mean and variance normalize it (and update running
    averages); in eval mode the stored statistics do, so the layer is a fixed affine
    map and the density is exactly normalized.
    """

    def __init__(self, n_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(n_features))
        self.beta = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("running_mean", torch.zeros(n_features))
        self.register_buffer("running_var", torch.ones(n_features))

    def forward(
        self, x: Tensor, weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(u, log_det)``: normalized ``x`` and the per-dimension log-Jacobian.

        In training mode, ``weights`` (one per row) make the batch's moments
        weighted, so that a row of weight 2 counts as two rows.
        """
        if self.training and x.shape[0] > 1:
            if weights is not None and weights.sum() > 0:
                w = (weights / weights.sum())[:, None].to(x.dtype)
                mean = (w * x).sum(0)
                var = (w * (x - mean).square()).sum(0)
            else:
                mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        log_std = 0.5 * torch.log(var + self.eps)
        log_gamma = self.log_gamma.to(x.dtype)
        u = (x - mean) * torch.exp(log_gamma - log_std) + self.beta.to(x.dtype)
        return u, (log_gamma - log_std).expand_as(x)

    def inverse(self, u: Tensor) -> Tensor:
        log_std = 0.5 * torch.log(self.running_var + self.eps)
        return (u - self.beta) * torch.exp(log_std - self.log_gamma) + self.running_mean

    @torch.no_grad()
    def set_statistics(self, x: Tensor, weights: Tensor) -> None:
        """Set the stored statistics to the weighted moments of ``x``."""
        w = (weights / weights.sum())[:, None].to(x.dtype)
        mean = (w * x).sum(0)
        self.running_mean.copy_(mean)
        self.running_var.copy_((w * (x - mean).square()).sum(0))


class MAF(nn.Module):
    """A stack of Gaussian MADEs (with batch norm between them) and a base density.

    Parameters
    ----------
    flows : list of MADE
        Gaussian MADEs (two parameters per variable, one mask each), data side first.
    batch_norm : bool
        Put a :class:`BatchNormFlow` after every MADE but the last.
    base : MADE or None
        A MADE with mixture-of-Gaussians conditionals for the base density, or None
        for a standard normal.
    base_family : family or None
        The family of ``base``.
    """

    n_masks = 1

    def __init__(self, flows, batch_norm: bool, base=None, base_family=None):
        super().__init__()
        n_features = flows[0].n_features
        self.n_features = n_features
        self.flows = nn.ModuleList(flows)
        self.norms = nn.ModuleList(
            BatchNormFlow(n_features) if batch_norm and i < len(flows) - 1 else None
            for i in range(len(flows))
        )
        self.base = base
        self.base_family = base_family

    def to_arrays(self) -> dict:
        """The flow as plain Python values and numpy arrays (see MADE.to_arrays)."""
        return {
            "batch_norm": any(norm is not None for norm in self.norms),
            "flows": [made.to_arrays() for made in self.flows],
            "base": None if self.base is None else self.base.to_arrays(),
            "n_components": getattr(self.base_family, "n_components", None),
            "norms": [
                None
                if norm is None
                else {k: v.detach().cpu().numpy() for k, v in norm.state_dict().items()}
                for norm in self.norms
            ],
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> MAF:
        """The flow that :meth:`to_arrays` described (on the CPU)."""
        base, family = None, None
        if arrays["base"] is not None:
            base = MADE.from_arrays(arrays["base"])
            family = MixtureOfGaussians(arrays["n_components"])
        flows = [MADE.from_arrays(made) for made in arrays["flows"]]
        maf = cls(flows, arrays["batch_norm"], base, family)
        for norm, state in zip(maf.norms, arrays["norms"], strict=True):
            if norm is not None:
                norm.load_state_dict(
                    {k: torch.from_numpy(v.copy()) for k, v in state.items()}
                )
        return maf

    @property
    def mades(self) -> list[MADE]:
        return [*self.flows, *([self.base] if self.base is not None else [])]

    def transform(
        self,
        x: Tensor,
        dtype: torch.dtype | None = None,
        weights: Tensor | None = None,
    ):
        """Noise ``u`` and per-dimension log-Jacobian ``(n, D)`` of data ``x``.

        The networks run in their own precision; with ``dtype`` the elementwise
        transforms and the log-Jacobian run in ``dtype``. ``weights`` weight the
        batch-norm moments in training mode.
        """
        u = x if dtype is None else x.to(dtype)
        log_det = torch.zeros_like(u)
        weight_dtype = self.flows[0].layers[0].weight.dtype
        for made, norm in zip(self.flows, self.norms, strict=True):
            params = made(u.to(weight_dtype))
            if dtype is not None:
                params = params.to(dtype)
            mean, log_scale = FlowGaussian.mean_and_log_scale(params)
            u = (u - mean) * torch.exp(-log_scale)
            log_det = log_det - log_scale
            if norm is not None:
                u, norm_log_det = norm(u, weights)
                log_det = log_det + norm_log_det
        return u, log_det

    def forward(
        self,
        x: Tensor,
        k: int = 0,
        dtype: torch.dtype | None = None,
        weights: Tensor | None = None,
    ):
        """Per-dimension terms ``(n, D)`` of ``log p(x)``: they sum to it.

        ``weights`` (one per row) weight the batch-norm moments in training mode.
        """
        u, log_det = self.transform(x, dtype, weights)
        if self.base is None:
            base = -0.5 * u.square() - _HALF_LOG_2PI
        else:
            weight_dtype = self.base.layers[0].weight.dtype
            params = self.base(u.to(weight_dtype))
            base = self.base_family.log_prob(params, u, dtype)
        return log_det + base

    @torch.no_grad()
    def mask_grads(self, k: int, penalty_scale: float = 0.0) -> None:
        for made in self.mades:
            made.mask_grads(0, penalty_scale)

    @torch.no_grad()
    def penalty(self, k: int = 0) -> Tensor:
        return sum(made.penalty(0) for made in self.mades)

    @torch.no_grad()
    def set_statistics(self, x: Tensor, weights: Tensor) -> None:
        """Store every batch-norm layer's statistics of the data ``x`` (in order)."""
        u = x
        for made, norm in zip(self.flows, self.norms, strict=True):
            mean, log_scale = FlowGaussian.mean_and_log_scale(made(u))
            u = (u - mean) * torch.exp(-log_scale)
            if norm is not None:
                norm.set_statistics(u, weights)
                # Pass on with the stored statistics: in training mode the layer
                # would normalize by (and average in) the unweighted batch moments.
                training = norm.training
                u, _ = norm.eval()(u)
                norm.train(training)

    @torch.no_grad()
    def sample(self, noise: Tensor) -> Tensor:
        """Data from base noise: uniforms for a MoG base, standard normals else.

        Each MADE is inverted by the incremental sampler: ``x_d = mu_d(x_<d) +
        exp(s_d(x_<d)) u_d`` is exactly a Gaussian draw with noise ``u_d``.
        """
        u = noise
        if self.base is not None:
            u = sample_incremental(self.base, self.base_family, 0, noise)
        for made, norm in zip(reversed(self.flows), reversed(self.norms), strict=True):
            if norm is not None:
                u = norm.inverse(u)
            u = sample_incremental(made, FlowGaussian(), 0, u)
        return u


class FlowOutput:
    """The family of a MAF for the training loop: its output is the log-density."""

    @staticmethod
    def encode(x: Tensor) -> Tensor:
        return x

    @staticmethod
    def log_prob(out: Tensor, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        return out if dtype is None else out.to(dtype)
