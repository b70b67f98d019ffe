"""PyTorch modules of MADE: a masked linear layer and the masked network."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def connectivity(out_degrees: Tensor, in_degrees: Tensor, strict: bool) -> Tensor:
    """Boolean mask ``(n_out, n_in)``: which input each unit may see.

    Hidden units use ``>=`` (a unit of degree m sees the first m variables); output
    units use ``>`` so that output d never sees variable d itself.
    """
    if strict:
        return out_degrees[:, None] > in_degrees[None, :]
    return out_degrees[:, None] >= in_degrees[None, :]


class MaskedLinear(nn.Module):
    """Affine layer whose weight is multiplied by a connectivity mask at each call."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))

    def reset_parameters(self, generator: torch.Generator, used: Tensor) -> None:
        """``nn.Linear``'s uniform init from a local generator, unused weights zeroed.

        Weights that no mask ever uses are set to exactly zero and stay there (they
        never receive a gradient). Left at random values they would only cost memory
        bandwidth; decayed towards zero by a penalty they would become denormal floats,
        which make CPU arithmetic many times slower.
        """
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        with torch.no_grad():
            self.weight.uniform_(-bound, bound, generator=generator)
            self.weight.mul_(used)
            self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return F.linear(x, self.weight * mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation with several masks.

    Parameters
    ----------
    degrees : sequence of Tensor
        ``[inputs, hidden_1, ..., hidden_L]``, each of shape ``(n_masks, width)``:
        the degree of every unit under every mask (see ``skmade._masks``).
    n_params : int
        Number of distribution parameters per variable (1 for Bernoulli logits,
        2 for a Gaussian's mean and log-scale).

    Notes
    -----
    Weights are shared by all masks; a mask only decides which of them are used. The
    output layer has ``n_params * D`` units laid out parameter-major (unit ``p * D + d``
    is parameter ``p`` of variable ``d``), each with the degree of its variable.

    An output whose degree is not above any unit of the last hidden layer (always the
    first variable of the ordering, and more when a hidden layer is narrower than D)
    sees nothing but its bias: it models that variable with an unconditional
    distribution. The joint density stays exactly normalized.
    """

    def __init__(self, degrees: Sequence[Tensor], n_params: int) -> None:
        super().__init__()
        n_masks, n_features = degrees[0].shape
        self.n_features = n_features
        self.n_params = n_params
        self.n_masks = n_masks
        # Degrees are buffers: they travel with the module (device, state_dict, pickle).
        for i, layer_degrees in enumerate(degrees):
            self.register_buffer(f"degrees_{i}", torch.as_tensor(layer_degrees).long())
        self.register_buffer(
            f"degrees_{len(degrees)}", torch.as_tensor(degrees[0]).long().repeat(1, n_params)
        )
        widths = [d.shape[1] for d in degrees] + [n_params * n_features]
        self.layers = nn.ModuleList(
            MaskedLinear(n_in, n_out) for n_in, n_out in zip(widths[:-1], widths[1:])
        )

    def _degrees(self, i: int) -> Tensor:
        return getattr(self, f"degrees_{i}")

    @property
    def orderings(self) -> Tensor:
        """Orderings ``(n_masks, D)``: ``orderings[k, i]`` is mask k's i-th variable."""
        return torch.argsort(self._degrees(0), dim=1)

    def masks(self, k: int) -> list[Tensor]:
        """Float masks of mask ``k``, one ``(n_out, n_in)`` tensor per layer."""
        n_layers = len(self.layers)
        return [
            connectivity(
                self._degrees(i + 1)[k], self._degrees(i)[k], strict=i == n_layers - 1
            ).to(self.layers[i].weight.dtype)
            for i in range(n_layers)
        ]

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every layer from ``generator`` (no global random state)."""
        for i, layer in enumerate(self.layers):
            used = torch.zeros_like(layer.weight, dtype=torch.bool)
            for k in range(self.n_masks):
                used |= connectivity(
                    self._degrees(i + 1)[k],
                    self._degrees(i)[k],
                    strict=i == len(self.layers) - 1,
                )
            layer.reset_parameters(generator, used)

    def forward(self, x: Tensor, k: int = 0) -> Tensor:
        """Distribution parameters ``(n, n_params, D)`` of every conditional, mask k."""
        h = x
        masks = self.masks(k)
        for i, (layer, mask) in enumerate(zip(self.layers, masks)):
            h = layer(h, mask)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        return h.view(x.shape[0], self.n_params, self.n_features)

    def penalty(self, k: int = 0) -> Tensor:
        """Sum of squared weights in use under mask ``k`` (the L2 term)."""
        return sum(
            (layer.weight * mask).square().sum()
            for layer, mask in zip(self.layers, self.masks(k))
        )
