"""Exact ancestral sampling from one MADE mask: a naive and an incremental sampler.

Both draw variable ``ordering[i]`` at step ``i`` from its conditional given the values
drawn before it, using ``noise[:, d]`` as the randomness for variable ``d``: with the same
noise they produce the same rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._nn import MADE


@torch.no_grad()
def sample_naive(made: MADE, family, k: int, noise: Tensor) -> Tensor:
    """Draw ``noise.shape[0]`` rows from mask ``k`` with one full pass per variable.

    The reference sampler: ``D`` forward passes. Outputs never see later variables,
    so the zeros still standing in for them are never read.
    """
    x = torch.zeros_like(noise)
    for d in made.orderings[k].tolist():
        params = made(x, k)[:, :, d]
        x[:, d] = family.draw(params, noise[:, d])
    return x


def _degree_ends(degrees: Tensor, n_features: int) -> list[int]:
    """``ends[m]``: how many units have degree ``<= m``, for ``m = 0..D``."""
    counts = torch.bincount(degrees.cpu(), minlength=n_features + 1)
    return [0, *torch.cumsum(counts, 0)[1:].tolist()][: n_features + 1]


@torch.no_grad()
def sample_incremental(made: MADE, family, k: int, noise: Tensor) -> Tensor:
    """Draw ``noise.shape[0]`` rows from mask ``k`` at about the cost of one pass.

    A hidden unit of degree ``m`` depends only on the first ``m`` variables of the
    ordering, so once those are drawn it never changes. With the units of every layer
    sorted by degree (and the inputs by position), the masked weights are
    block-triangular: at step ``i`` only the units of degree exactly ``i`` are new,
    and they need only the first columns of their rows. Each unit is computed once,
    then the next variable's parameters are one small product with the units already
    known. The work is one forward pass in ``D`` slices plus ``D`` draws.

    Everything is kept transposed, ``(units, rows)``, so that a block of units is a
    contiguous row slice that matrix products can write into directly.
    """
    n_samples, n_features = noise.shape
    layers = made.layers
    n_hidden = len(layers) - 1
    n_params = made.n_params
    order = made.orderings[k]
    masks = made.masks(k)

    # Hidden layers: units sorted by degree; columns follow the previous layer's sort.
    weights, biases, ends = [], [], []
    columns = order  # inputs in the order they are drawn
    for i in range(n_hidden):
        degrees = made._degrees(i + 1)[k]
        units = torch.argsort(degrees, stable=True)
        weight = layers[i].weight * masks[i]
        weights.append(weight[units][:, columns].contiguous())
        biases.append(layers[i].bias[units, None])
        ends.append(_degree_ends(degrees, n_features))
        columns = units
    # Output layer: the rows of variable ordering[i] (one per parameter) at index i.
    rows = (torch.arange(n_params, device=order.device)[None, :] * n_features) + order[
        :, None
    ]
    out_weight = (layers[-1].weight * masks[-1])[rows.reshape(-1)][:, columns]
    out_weight = out_weight.reshape(n_features, n_params, -1)
    out_bias = layers[-1].bias[rows][:, :, None]  # (D, P, 1)
    # Units the output of step i may see: degree <= i in the last hidden layer (or
    # the first i inputs without hidden layers).
    visible = ends[-1] if n_hidden else list(range(n_features + 1))

    x_t = torch.zeros(n_features, n_samples, dtype=noise.dtype, device=noise.device)
    hidden_t = [
        torch.zeros(w.shape[0], n_samples, dtype=noise.dtype, device=noise.device)
        for w in weights
    ]
    last_t = hidden_t[-1] if n_hidden else x_t
    noise_t = noise[:, order].T.contiguous()
    threshold = getattr(family, "threshold", None)
    if threshold is not None:
        # x = [logit > t(noise)] = [(bias - t(noise)) + W h > 0]: folding the noise
        # into the bias makes a draw one product and one in-place comparison.
        out_bias = out_bias - threshold(noise_t)[:, None, :]

    for i in range(n_features):
        if i:
            for layer in range(n_hidden):
                start, stop = ends[layer][i - 1], ends[layer][i]
                if stop > start:
                    inputs = (
                        x_t[:i]
                        if layer == 0
                        else hidden_t[layer - 1][: ends[layer - 1][i]]
                    )
                    block = hidden_t[layer][start:stop]
                    torch.addmm(
                        biases[layer][start:stop],
                        weights[layer][start:stop, : inputs.shape[0]],
                        inputs,
                        out=block,
                    )
                    block.relu_()
        seen = visible[i]
        if threshold is not None:
            row = x_t[i : i + 1]
            torch.addmm(out_bias[i], out_weight[i, :, :seen], last_t[:seen], out=row)
            row.gt_(0)
        else:
            params = torch.addmm(out_bias[i], out_weight[i, :, :seen], last_t[:seen])
            x_t[i] = family.draw(params.T, noise_t[i])

    x = torch.empty_like(noise)
    x[:, order] = x_t.T
    return x
