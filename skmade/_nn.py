"""PyTorch modules of MADE: a masked linear layer and the masked network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._blocks import DegreeBlocks
from ._gaussian import GaussianBase
from ._rows import RowOrderings

# Weights below this magnitude are set to zero, with their optimizer state, every
# few steps (see zero_vanishing): far above float32's subnormal range (1.2e-38), so
# no weight can decay through it between two sweeps.
VANISHING = 1e-25


@torch.no_grad()
def zero_vanishing(optimizer: torch.optim.Optimizer, threshold: float = VANISHING):
    """Set parameters smaller than ``threshold`` in magnitude to exactly zero, and
    their optimizer state (Adam's moments) with them.

    Under an L2 penalty a weight with no gradient from the data (from an input
    that is always zero, say the blank border of MNIST) decays geometrically
    towards zero, and with it its gradient and Adam's first moment: after a few
    thousand steps they are subnormal floats, which CPUs handle in microcode, many
    times slower. A 784-2000-784 MADE's epoch went from 5.6 to 29 seconds by the
    fourth epoch. Flushing subnormals in the CPU (``torch.set_flush_denormal``)
    reaches only the calling thread, not the worker threads that run the products;
    zeroing the vanishing weights instead changes no likelihood measurably (they
    are below 1e-25) and stops the decay at its limit, exactly zero.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            vanishing = (p.abs() < threshold) & (p != 0)
            if not vanishing.any():
                continue
            p.masked_fill_(vanishing, 0.0)
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    value.masked_fill_(vanishing, 0.0)


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

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

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
            if self.bias is not None:
                self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return F.linear(x, self.weight * mask, self.bias)


class MADE(DegreeBlocks, RowOrderings, nn.Module):
    """Masked autoencoder for distribution estimation with several masks.

    Parameters
    ----------
    degrees : sequence of Tensor
        ``[variables, hidden_1, ..., hidden_L]``, each of shape ``(n_masks, width)``:
        the degree of every variable and hidden unit under every mask (see
        ``skmade._masks``).
    n_params : int or None
        Number of distribution parameters per variable (1 for Bernoulli logits,
        2 for a Gaussian's mean and log-scale). ``None`` with ``output_sizes``.
    direct : bool
        Add masked direct connections from the inputs to the outputs (the paper's
        option): every conditional also gets a linear term in all earlier variables.
    input_sizes : sequence of int, optional
        Input units of each variable (a one-hot block of ``k`` units for a
        categorical variable); every unit of a block has its variable's degree.
        Default: one unit per variable.
    output_sizes : sequence of int, optional
        Output units of each variable, laid out variable-major (variable ``d`` owns a
        contiguous block). Default: ``n_params`` per variable, parameter-major.
    any_order : bool
        Prepare the network for a different ordering in every row
        (:meth:`forward_rows`): the connections from the inputs and to the outputs
        then depend on the row's ordering, while the hidden layers keep each mask's
        degrees. Every weight of those connections is trained and penalized, since
        some ordering uses it.

    Notes
    -----
    Weights are shared by all masks; a mask only decides which of them are used.
    By default the output layer has ``n_params * D`` units laid out parameter-major
    (unit ``p * D + d`` is parameter ``p`` of variable ``d``) and :meth:`forward`
    returns ``(n, n_params, D)``; with ``output_sizes`` it returns the flat
    ``(n, n_outputs)``. Every output unit has the degree of its variable.

    An output whose degree is not above any unit of the last hidden layer (always the
    first variable of the ordering, and more when a hidden layer is narrower than D)
    sees nothing but its bias: it models that variable with an unconditional
    distribution. The joint density stays exactly normalized.
    """

    def __init__(
        self,
        degrees: Sequence[Tensor],
        n_params: int | None = 1,
        direct: bool = False,
        *,
        input_sizes: Sequence[int] | None = None,
        output_sizes: Sequence[int] | None = None,
        any_order: bool = False,
    ) -> None:
        super().__init__()
        self.any_order = bool(any_order)
        variable_degrees = torch.as_tensor(degrees[0]).long()
        n_masks, n_features = variable_degrees.shape
        self.n_features = n_features
        self.n_masks = n_masks
        self.n_params = None if output_sizes is not None else n_params
        ones = [1] * n_features
        self.input_sizes = list(ones if input_sizes is None else input_sizes)
        self.output_sizes = (
            [n_params] * n_features if output_sizes is None else list(output_sizes)
        )
        # Variable of every input and output unit.
        in_variable = torch.repeat_interleave(
            torch.arange(n_features), torch.tensor(self.input_sizes)
        )
        if output_sizes is None:
            out_variable = torch.arange(n_features).repeat(n_params)
        else:
            out_variable = torch.repeat_interleave(
                torch.arange(n_features), torch.tensor(self.output_sizes)
            )
        # Degrees are buffers: they travel with the module (device, state_dict, pickle).
        self.register_buffer("variable_degrees", variable_degrees)
        self.register_buffer("in_variable", in_variable, persistent=False)
        self.register_buffer("out_variable", out_variable, persistent=False)
        self.register_buffer("degrees_0", variable_degrees[:, in_variable])
        for i, layer_degrees in enumerate(degrees[1:], start=1):
            self.register_buffer(f"degrees_{i}", torch.as_tensor(layer_degrees).long())
        self.register_buffer(
            f"degrees_{len(degrees)}", variable_degrees[:, out_variable]
        )
        widths = [in_variable.numel()] + [d.shape[1] for d in degrees[1:]]
        widths.append(out_variable.numel())
        self.layers = nn.ModuleList(
            MaskedLinear(n_in, n_out) for n_in, n_out in pairwise(widths)
        )
        self.direct = (
            MaskedLinear(widths[0], widths[-1], bias=False) if direct else None
        )
        # With any_order, the first hidden layer also learns which variables it
        # sees: unit u adds visibility[u, d] for every variable d of the row's
        # ordering that it is connected to (the mask as an input, as in the MADE
        # paper's connectivity-agnostic training and Uria et al.'s order-agnostic
        # NADE). It tells a zero input from an unseen one and depends on the
        # ordering only, never on values, so every conditional stays autoregressive.
        self.visibility = (
            nn.Parameter(torch.zeros(widths[1], n_features))
            if self.any_order and len(widths) > 2
            else None
        )
        # A Gaussian whose conditionals offset the continuous outputs (any_order
        # models; see skmade._gaussian and set_gaussian).
        self.gaussian: GaussianBase | None = None
        self._mask_cache: dict = {}
        self._plan_cache: dict = {}  # incremental-sampling plans (skmade._sampling)
        self._block_cache: dict = {}  # degree-block plans (skmade._blocks)
        self._sorted_cache: dict = {}  # weights in the blocks' layout (inference)
        # Dropout of hidden units in training mode (set_dropout); not a parameter
        # of the network, so not saved with it.
        self.dropout = 0.0
        self._dropout_generator: torch.Generator | None = None
        # Mixed-precision training (set_precision): the dtype of the products in
        # training mode, or None for the parameters' own.
        self.training_dtype: torch.dtype | None = None

    # Float masks are rebuilt from degrees on demand and cached, within a memory
    # budget: rebuilding them at every training step costs as much as a small GEMM.
    _MASK_CACHE_ELEMENTS = 2**26

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mask_cache"] = {}
        state["_plan_cache"] = {}
        state["_block_cache"] = {}
        state["_sorted_cache"] = {}
        state["_dropout_generator"] = None  # not picklable; reseeded by set_dropout
        return state

    def __setstate__(self, state):
        state.setdefault("_block_cache", {})  # modules pickled before block plans
        state.setdefault("_sorted_cache", {})
        state.setdefault("dropout", 0.0)  # modules pickled before dropout
        state.setdefault("_dropout_generator", None)
        state.setdefault("training_dtype", None)  # modules pickled before it
        super().__setstate__(state)

    def to_arrays(self) -> dict:
        """The module as plain Python values and numpy arrays (no torch objects).

        :meth:`from_arrays` rebuilds an equal module, so that estimators can be saved
        by formats that refuse arbitrary objects (``skops.io``).
        """
        return {
            "n_params": self.n_params,
            "direct": self.direct is not None,
            "input_sizes": [int(s) for s in self.input_sizes],
            "output_sizes": [int(s) for s in self.output_sizes],
            "any_order": self.any_order,
            "state": {  # with the Gaussian's buffers, if any
                name: tensor.detach().cpu().numpy()
                for name, tensor in self.state_dict().items()
            },
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> MADE:
        """The module that :meth:`to_arrays` described (on the CPU)."""
        state = {
            name: torch.from_numpy(a.copy()) for name, a in arrays["state"].items()
        }
        n_layers = sum(name.endswith(".weight") for name in state if "layers." in name)
        degrees = [state["variable_degrees"]]
        degrees += [state[f"degrees_{i}"] for i in range(1, n_layers)]
        made = cls(
            degrees,
            arrays["n_params"],
            arrays["direct"],
            input_sizes=arrays["input_sizes"],
            output_sizes=None if arrays["n_params"] else arrays["output_sizes"],
            any_order=arrays.get("any_order", False),
        )
        if "gaussian.mean" in state:
            base = {
                name: state[f"gaussian.{name}"]
                for name in (
                    "mean",
                    "cov",
                    "variables",
                    "in_units",
                    "mean_units",
                    "scale_units",
                    "logit_units",
                    "slope",
                )
            }
            made.set_gaussian(GaussianBase(**base, n_outputs=made.out_variable.numel()))
        if "input_low" in state:
            made.set_input_bounds(state["input_low"], state["input_high"])
        made.load_state_dict(state)
        return made

    def train(self, mode: bool = True) -> MADE:
        self._sorted_cache.clear()
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._sorted_cache.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def set_dropout(self, rate: float, generator: torch.Generator) -> None:
        """Zero each hidden unit with probability ``rate`` in training mode.

        The kept units are scaled by ``1 / (1 - rate)`` (inverted dropout), so
        evaluation mode, where nothing is dropped, needs no rescaling; masks and
        the autoregressive property are untouched. The draws come from a generator
        on the module's device seeded from ``generator`` (which is drawn from only
        when ``rate > 0``).
        """
        self.dropout = float(rate)
        self._dropout_generator = None
        if self.dropout > 0:
            seed = int(torch.randint(2**62, (), generator=generator))
            device = self.in_variable.device
            self._dropout_generator = torch.Generator(device).manual_seed(seed)

    def set_precision(self, dtype: torch.dtype | None) -> None:
        """Compute the products of training mode in ``dtype`` (mixed precision).

        With ``torch.bfloat16``, the layers of a training forward pass (and so
        their backward pass) run under ``torch.autocast``: inputs and weights are
        rounded to bfloat16 for each product, which accumulates in float32, while
        the parameters, their gradients and the optimizer stay in float32. The
        outputs are returned in the inputs' dtype. Evaluation mode always computes
        in the parameters' dtype, so scores are unaffected. None turns it off.
        """
        self.training_dtype = dtype

    def _autocast(self, x: Tensor):
        """The mixed-precision context of a forward pass (a no-op unless set and
        training)."""
        enabled = self.training and self.training_dtype is not None
        dtype = self.training_dtype if enabled else None
        return torch.autocast(x.device.type, dtype=dtype, enabled=enabled)

    def _activate(self, h: Tensor) -> Tensor:
        """A hidden layer's activation: ReLU, then dropout in training mode."""
        h = F.relu(h)
        if self.dropout > 0 and self.training:
            # Uniform draws compared with the rate: about 2.5 times faster on a CPU
            # than bernoulli_, which costs about as much as the layer's product.
            draws = torch.rand(
                h.shape, generator=self._dropout_generator, device=h.device
            )
            h = h * (draws >= self.dropout).to(h.dtype) * (1.0 / (1.0 - self.dropout))
        return h

    def set_input_bounds(self, low: Tensor | None, high: Tensor | None) -> None:
        """Clip the network's inputs to ``[low, high]`` (one bound per input unit,
        ``-inf``/``inf`` where unbounded; None removes the bounds).

        Every conditional then sees its context clipped to the box, in training,
        scoring and sampling alike: each is still a normalized distribution of its
        own variable, so the model stays an exact autoregressive density, while a
        context far outside the training range can no longer push the network's
        outputs (means, scales) beyond anything it was trained on.
        """
        if low is None:
            self._buffers.pop("input_low", None)
            self._buffers.pop("input_high", None)
        else:
            self.register_buffer("input_low", torch.as_tensor(low).clone())
            self.register_buffer("input_high", torch.as_tensor(high).clone())
        self._plan_cache.clear()

    def input_bounds(self) -> tuple[Tensor, Tensor] | None:
        """``(low, high)`` of :meth:`set_input_bounds`, or None."""
        low = self._buffers.get("input_low")
        return None if low is None else (low, self._buffers["input_high"])

    def clip_inputs(self, x: Tensor) -> Tensor:
        """``x`` clipped to the input bounds (``x`` itself where there are none)."""
        bounds = self.input_bounds()
        if bounds is None:
            return x
        low, high = (b.to(device=x.device, dtype=x.dtype) for b in bounds)
        return torch.maximum(torch.minimum(x, high), low)

    def set_gaussian(self, base: GaussianBase | None) -> None:
        """Offset the continuous conditionals by a Gaussian's (None removes it)."""
        if base is not None:
            base = base.to(self.in_variable.device)
        self.gaussian = base
        self._plan_cache.clear()

    def linear_terms(self, k: int) -> tuple[Tensor | None, Tensor | None]:
        """``(weight, bias)`` of everything linear from the inputs to the outputs
        under mask ``k``: the masked direct connections plus the Gaussian's offsets
        (None where there is nothing)."""
        weight = bias = None
        if self.direct is not None:
            weight = self.direct.weight * self.masks(k)[-1]
        if self.gaussian is not None:
            g_weight, bias = self.gaussian.fixed(
                self.variable_degrees[k],
                self.layers[0].in_features,
                self.layers[0].weight.dtype,
            )
            weight = g_weight if weight is None else weight + g_weight
        return weight, bias

    def _degrees(self, i: int) -> Tensor:
        return getattr(self, f"degrees_{i}")

    def layer_bias(self, i: int, k: int) -> Tensor:
        """Bias of layer ``i`` under mask ``k``: the layer's own, plus for the first
        hidden layer the visibility terms of the variables mask ``k`` shows it."""
        bias = self.layers[i].bias
        if i or self.visibility is None:
            return bias
        seen = self.variable_degrees[k][None, :] <= self._degrees(1)[k][:, None]
        return bias + (self.visibility * seen.to(self.visibility.dtype)).sum(dim=1)

    @property
    def orderings(self) -> Tensor:
        """Orderings ``(n_masks, D)``: ``orderings[k, i]`` is mask k's i-th variable."""
        return torch.argsort(self.variable_degrees, dim=1)

    def _wiring(self) -> list[tuple[MaskedLinear, int, int, bool]]:
        """Each masked layer with the degrees it connects (in, out) and its rule."""
        last = len(self.layers) - 1
        wiring = [(layer, i, i + 1, i == last) for i, layer in enumerate(self.layers)]
        if self.direct is not None:  # inputs to outputs, strict like the output layer
            wiring.append((self.direct, 0, last + 1, True))
        return wiring

    @property
    def masked_layers(self) -> list[MaskedLinear]:
        """The hidden and output layers, then the direct layer if there is one."""
        return [layer for layer, *_ in self._wiring()]

    def masks(self, k: int) -> list[Tensor]:
        """Float masks of mask ``k``, one per layer of :attr:`masked_layers`."""
        weight = self.layers[0].weight
        key = (k, weight.device, weight.dtype)
        cached = self._mask_cache.get(key)
        if cached is not None:
            return cached
        masks = [
            connectivity(
                self._degrees(out)[k], self._degrees(inp)[k], strict=strict
            ).to(weight.dtype)
            for _, inp, out, strict in self._wiring()
        ]
        size = sum(m.numel() for m in masks)
        in_cache = sum(m.numel() for ms in self._mask_cache.values() for m in ms)
        if in_cache + size > self._MASK_CACHE_ELEMENTS:
            self._mask_cache.clear()
        self._mask_cache[key] = masks
        return masks

    def _row_dependent(self, inp: int, out: int) -> bool:
        """Whether a connection changes with the row's ordering (``any_order``)."""
        return self.any_order and (inp == 0 or out == len(self.layers))

    def _possible(self, inp: int, out: int) -> Tensor:
        """Weights of a row-dependent connection that some ordering uses: all of
        them, except a variable's own inputs to its outputs."""
        if inp == 0 and out == len(self.layers):
            return self.out_variable[:, None] != self.in_variable[None, :]
        n_out, n_in = (len(self._degrees(i)[0]) for i in (out, inp))
        return torch.ones(n_out, n_in, dtype=torch.bool, device=self.in_variable.device)

    def trained_masks(self, k: int) -> list[Tensor]:
        """The weights mask ``k`` trains, one float mask per masked layer.

        Mask ``k``'s own masks, or with ``any_order`` its hidden-to-hidden masks and,
        for the row-dependent connections, every weight some ordering uses.
        """
        masks = self.masks(k)
        if not self.any_order:
            return masks
        return [
            self._possible(inp, out).to(mask.dtype)
            if self._row_dependent(inp, out)
            else mask
            for mask, (_, inp, out, _) in zip(masks, self._wiring(), strict=True)
        ]

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every layer from ``generator`` (no global random state)."""
        for layer, inp, out, strict in self._wiring():
            if self._row_dependent(inp, out):
                used = self._possible(inp, out)
            else:
                used = torch.zeros_like(layer.weight, dtype=torch.bool)
                for k in range(self.n_masks):
                    used |= connectivity(
                        self._degrees(out)[k], self._degrees(inp)[k], strict=strict
                    )
            layer.reset_parameters(generator, used)

    @property
    def premasked(self) -> bool:
        """True when the stored weights already are the masked weights.

        With a single mask, weights outside it start at zero and only ever receive
        masked gradients (see :meth:`mask_grads`), so multiplying by the mask at every
        call would change nothing; skipping it saves a copy and a product per layer.
        """
        return self.n_masks == 1 and not self.any_order

    def forward(self, x: Tensor, k: int = 0) -> Tensor:
        """Distribution parameters of every conditional under mask ``k``.

        ``x`` holds the network inputs ``(n, n_inputs)`` (values, or one-hot blocks:
        see ``input_sizes``). Returns ``(n, n_params, D)``, or ``(n, n_outputs)`` with
        ``output_sizes``. Large layers are computed over degree blocks
        (:meth:`block_plan`), which skips most masked-out weights.
        """
        x = self.clip_inputs(x)
        with self._autocast(x):
            h = self._forward(x, k)
        h = h.to(x.dtype)
        if self.n_params is None:
            return h
        return h.view(x.shape[0], self.n_params, self.n_features)

    def _forward(self, x: Tensor, k: int) -> Tensor:
        """:meth:`forward`'s outputs as ``(n, n_outputs)``."""
        masks = None if self.premasked else self.masks(k)
        plan = self.block_plan(k) if self.use_blocks else None
        layers = None
        if plan is not None:
            layers = self._sorted_layers(k, masks, plan, x.shape[0])
        # Whether the products masked the weights' gradients (see mask_grads).
        self._grads_masked = layers is not None and self.premasked
        if layers is not None:
            h = self._forward_blocks(x, layers, plan)
        else:
            h = x
            last = len(self.layers) - 1
            for i, layer in enumerate(self.layers):
                weight = layer.weight if masks is None else layer.weight * masks[i]
                h = F.linear(h, weight, self.layer_bias(i, k))
                h = self._activate(h) if i < last else h
            if self.direct is not None:
                weight = self.direct.weight
                h = h + F.linear(x, weight if masks is None else weight * masks[-1])
        if self.gaussian is not None:
            h = h + F.linear(
                x, *self.gaussian.fixed(self.variable_degrees[k], x.shape[1], x.dtype)
            )
        return h

    @torch.no_grad()
    def mask_grads(self, k: int, penalty_scale: float = 0.0) -> None:
        """Finish the weights' gradients after ``backward``: mask, then add the L2 term.

        Adds the gradient of ``penalty_scale * penalty(k)``, one fused update per
        layer (cheaper than differentiating the penalty). Gradients that the degree
        blocks already masked (one mask, last forward pass blocked) are not masked
        again. Weights outside mask ``k``
        get no penalty, so unused weights never decay into slow denormal floats.
        """
        for layer, mask in zip(self.masked_layers, self.trained_masks(k), strict=True):
            if layer.weight.grad is None:
                layer.weight.grad = torch.zeros_like(layer.weight)
            grad = layer.weight.grad
            if self.premasked:
                if not getattr(self, "_grads_masked", False):
                    grad.mul_(mask)
                if penalty_scale > 0:  # the weight is zero outside the mask already
                    grad.add_(layer.weight, alpha=2.0 * penalty_scale)
            elif penalty_scale > 0:
                grad.addcmul_(layer.weight, mask, value=2.0 * penalty_scale)

    @torch.no_grad()
    def penalty(self, k: int = 0) -> Tensor:
        """Sum of squared weights in use under mask ``k`` (the L2 term)."""
        return sum(
            (layer.weight * mask).square().sum()
            for layer, mask in zip(
                self.masked_layers, self.trained_masks(k), strict=True
            )
        )
