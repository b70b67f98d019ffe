"""Exact ancestral sampling from one MADE mask: a naive and an incremental sampler.

Both draw variable ``ordering[i]`` at step ``i`` from its conditional given the
values drawn before it, using ``noise[:, d]`` as the randomness for variable ``d``: with
the same noise they produce the same rows.
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
    if made.n_params is None:  # variable-major layout: a Table family
        ends = torch.cumsum(torch.tensor(made.output_sizes), 0).tolist()
        for d in made.orderings[k].tolist():
            params = made(family.encode(x), k)[
                :, ends[d] - made.output_sizes[d] : ends[d]
            ]
            x[:, d] = family.draw_variable(d, params.T, noise[:, d])
        return x
    for d in made.orderings[k].tolist():
        params = made(family.encode(x), k)[:, :, d]
        x[:, d] = family.draw(params, noise[:, d])
    return x


def _degree_ends(degrees: Tensor, n_features: int) -> list[int]:
    """``ends[m]``: how many units have degree ``<= m``, for ``m = 0..D``."""
    counts = torch.bincount(degrees.cpu(), minlength=n_features + 1)
    return [0, *torch.cumsum(counts, 0)[1:].tolist()][: n_features + 1]


class _Plan:
    """Everything incremental sampling from one mask needs that does not depend on n.

    Hidden units are sorted by degree (inputs by position), weights reordered to match
    and cut into the slices each step uses, so that the sampling loop does nothing
    but products, activations and draws.
    """

    def __init__(self, made: MADE, k: int) -> None:
        n_features = made.n_features
        layers = made.layers
        n_hidden = len(layers) - 1
        masks = made.masks(k)
        self.order = made.orderings[k]
        self.widths = [layer.out_features for layer in layers[:-1]]

        # Inputs in the order they are drawn (a variable's one-hot block stays
        # together); in_ends[i]: input units of the first i positions.
        in_degrees = made._degrees(0)[k]
        in_units = torch.argsort(in_degrees, stable=True)
        self.in_ends = _degree_ends(in_degrees, n_features)
        # The inputs' bounds (MADE.set_input_bounds) in the same order, as columns.
        bounds = made.input_bounds()
        self.in_bounds = None
        if bounds is not None:
            self.in_bounds = tuple(b[in_units.to(b.device)][:, None] for b in bounds)
        weights, biases, ends = [], [], []
        columns = in_units
        out_mask = masks[n_hidden]
        for i in range(n_hidden):
            degrees = made._degrees(i + 1)[k]
            units = torch.argsort(degrees, stable=True)
            weights.append((layers[i].weight * masks[i])[units][:, columns])
            biases.append(made.layer_bias(i, k)[units, None])
            ends.append(_degree_ends(degrees, n_features))
            columns = units
        # Output rows position-major: each variable's parameters in their order.
        out_degrees = made._degrees(n_hidden + 1)[k]
        rows = torch.argsort(out_degrees, stable=True)
        self.out_ends = _degree_ends(out_degrees, n_features)
        out_weight = (layers[-1].weight * out_mask)[rows][:, columns]
        linear_weight, linear_bias = made.linear_terms(k)
        out_bias = layers[-1].bias
        if linear_bias is not None:
            out_bias = out_bias + linear_bias
        self.out_bias = out_bias[rows][:, None]  # (n_outputs, 1)
        # visible[i]: units of the last hidden layer (or inputs) position i sees.
        visible = ends[-1] if n_hidden else self.in_ends
        direct = None
        if linear_weight is not None:
            # Direct weights let position i see every earlier position: no two
            # positions are independent, so every run is a single position.
            direct = linear_weight[rows][:, in_units]
            visible = list(range(n_features + 1))

        # The output of position i sees the last layer's units of degree <= i. When
        # no unit has degree i + 1, positions i and i + 1 see the same units and do
        # not depend on each other: a run of such positions is drawn in one step.
        self.runs = []
        done = 0  # units of degree <= done are computed before this run
        start = 0
        while start < n_features:
            stop = start + 1
            while stop < n_features and visible[stop] == visible[start]:
                stop += 1
            hidden = []
            for layer in range(n_hidden):
                first, last = ends[layer][done], ends[layer][start]
                if last > first:  # units of degree in (done, start]: inputs < start
                    previous = self.in_ends if layer == 0 else ends[layer - 1]
                    n_inputs = previous[start]
                    hidden.append(
                        (
                            layer,
                            first,
                            last,
                            n_inputs,
                            weights[layer][first:last, :n_inputs],
                            biases[layer][first:last],
                        )
                    )
            outputs = slice(self.out_ends[start], self.out_ends[stop])
            seen = ends[-1][start] if n_hidden else self.in_ends[start]
            direct_weight = (
                None if direct is None else direct[outputs, : self.in_ends[start]]
            )
            self.runs.append(
                (start, stop, seen, hidden, out_weight[outputs, :seen], direct_weight)
            )
            done = start
            start = stop


def _plan(made: MADE, k: int) -> _Plan:
    """The cached plan of mask ``k``, rebuilt whenever a parameter has changed."""
    weight = made.layers[0].weight
    versions = tuple(p._version for p in made.parameters())
    key = (k, weight.device, weight.dtype)
    cached = made._plan_cache.get(key)
    if cached is None or cached[0] != versions:
        cached = (versions, _Plan(made, k))
        made._plan_cache[key] = cached
    return cached[1]


@torch.no_grad()
def sample_incremental(made: MADE, family, k: int, noise: Tensor) -> Tensor:
    """Draw ``noise.shape[0]`` rows from mask ``k`` at about the cost of one pass.

    A hidden unit of degree ``m`` depends only on the first ``m`` variables of the
    ordering, so once those are drawn it never changes. With the units of every layer
    sorted by degree (and the inputs by position), the masked weights are
    block-triangular: each unit is computed once, as a slice of one product, as soon
    as its variables are drawn, and each run of mutually independent positions is
    drawn in one step (see :class:`_Plan`). The work is one forward pass in slices
    plus one small step per distinct degree of the last hidden layer.

    Everything is kept transposed, ``(units, rows)``, so that a block of units is a
    contiguous row slice that matrix products can write into directly.
    """
    plan = _plan(made, k)
    n_samples, n_features = noise.shape
    n_params = made.n_params
    options = {"dtype": noise.dtype, "device": noise.device}
    in_ends, out_ends = plan.in_ends, plan.out_ends
    x_t = torch.zeros(in_ends[-1], n_samples, **options)  # network inputs, sorted
    hidden_t = [torch.zeros(width, n_samples, **options) for width in plan.widths]
    last_t = hidden_t[-1] if hidden_t else x_t
    noise_t = noise[:, plan.order].T.contiguous()
    per_variable = n_params is None  # a Table: values and inputs differ
    bounds = plan.in_bounds  # inputs are the values clipped to the bounds
    if bounds is not None:
        bounds = tuple(b.to(**options) for b in bounds)
    separate = per_variable or bounds is not None
    values_t = torch.zeros(n_features, n_samples, **options) if separate else x_t
    order = plan.order.tolist()
    threshold = getattr(family, "threshold", None)
    out_bias = plan.out_bias
    if threshold is not None:
        # x = [logit > t(noise)] = [(bias - t(noise)) + W h > 0]: folding the noise
        # into the bias makes a run of draws one product and one comparison.
        out_bias = out_bias - threshold(noise_t)

    for start, stop, seen, hidden, out_weight, direct_weight in plan.runs:
        for layer, first, last, n_inputs, weight, bias in hidden:
            inputs = x_t if layer == 0 else hidden_t[layer - 1]
            block = hidden_t[layer][first:last]
            torch.addmm(bias, weight, inputs[:n_inputs], out=block)
            block.relu_()
        outputs = out_bias[out_ends[start] : out_ends[stop]]
        if threshold is not None:
            draws = x_t[start:stop]
            torch.addmm(outputs, out_weight, last_t[:seen], out=draws)
            if direct_weight is not None:
                draws.addmm_(direct_weight, x_t[:start])
            draws.gt_(0)
            if separate:  # 0/1 draws are within any bounds
                values_t[start:stop] = draws
            continue
        params = torch.addmm(outputs, out_weight, last_t[:seen])
        if direct_weight is not None:
            params.addmm_(direct_weight, x_t[: in_ends[start]])
        if not per_variable:
            params = params.view(stop - start, n_params, n_samples)
            values_t[start:stop] = family.draw(params, noise_t[start:stop])
            if bounds is not None:
                low, high = (b[start:stop] for b in bounds)
                torch.clamp(values_t[start:stop], low, high, out=x_t[start:stop])
            continue
        for i in range(start, stop):
            d = order[i]
            block = params[
                out_ends[i] - out_ends[start] : out_ends[i + 1] - out_ends[start]
            ]
            values_t[i] = family.draw_variable(d, block, noise_t[i])
            units = slice(in_ends[i], in_ends[i + 1])
            x_t[units] = family.encode_variable(d, values_t[i])
            if bounds is not None:
                x_t[units] = torch.clamp(x_t[units], bounds[0][units], bounds[1][units])

    x = torch.empty_like(noise)
    x[:, plan.order] = values_t.T
    return x
