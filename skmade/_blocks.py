"""Masked layers as a few dense products over degree blocks.

With the units of two layers sorted by degree, a MADE weight mask is a staircase:
output unit ``j`` sees a prefix of the inputs, and the prefix grows with ``j``. Cut the
outputs into ``B`` contiguous blocks; block ``b`` needs only the prefix its last unit
sees, so the layer is ``B`` products ``x[:, :p_b] @ W[rows_b, :p_b].T`` that together
skip most of the zero upper triangle: about ``(B + 1) / (2 B)`` of the dense work for
a uniform staircase. The weights inside a block's rectangle but outside the mask must
be zero (or be zeroed by the caller), so the result equals the masked product up to
the order of floating-point sums.

:class:`DegreeBlocks` is MADE's forward pass over such blocks: a plan per mask, the
layers in the sorted layout (cached for inference), and the blocked pass itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# A product has a fixed cost beside its multiply-adds (dispatch, a thin matrix's
# poor use of the vector units): counted as this many multiply-adds per row of the
# batch for each block, and this many extra input columns per output row.
_BLOCK_OVERHEAD = 2**14
_COLUMN_OVERHEAD = 16
# Blocks are cut at multiples of this many output units (aligned products), more
# for wide layers.
_GRAIN = 32
_MAX_BLOCKS = 16


@dataclass(frozen=True)
class Blocks:
    """How one layer is cut: ``(first_row, end_row, n_inputs)`` per block, in the
    sorted layout (rows are output units, inputs a prefix of the sorted inputs)."""

    parts: tuple[tuple[int, int, int], ...]

    @property
    def dense(self) -> bool:
        return len(self.parts) == 1

    def work(self) -> int:
        """Multiply-adds per row of the batch."""
        return sum((end - first) * width for first, end, width in self.parts)


def seen_prefix(out_degrees: Tensor, in_degrees: Tensor, strict: bool) -> Tensor:
    """For sorted degrees: how many of the (sorted) inputs each output unit sees."""
    side = "left" if strict else "right"
    return torch.searchsorted(in_degrees, out_degrees, side=side)


def plan_blocks(prefix: Tensor, n_inputs: int) -> Blocks:
    """Cut the sorted output units into blocks of least estimated cost.

    ``prefix[j]`` (non-decreasing) is how many inputs output ``j`` sees. Dynamic
    programming over cuts at multiples of ``_GRAIN``: a block costs its rows times
    its widest prefix (plus the overheads above).
    """
    prefix = [int(p) for p in prefix.tolist()]
    n_out = len(prefix)
    grain = max(_GRAIN, -(-n_out // 128 // _GRAIN) * _GRAIN)  # at most ~128 cuts
    cuts = sorted({*range(0, n_out, grain), n_out})
    n_cuts = len(cuts)

    def cost(i: int, j: int) -> float:
        width = prefix[cuts[j] - 1]
        rows = cuts[j] - cuts[i]
        return rows * (width + _COLUMN_OVERHEAD * (width > 0)) + _BLOCK_OVERHEAD

    inf = float("inf")
    # best[b][j]: least cost of the first cuts[j] rows in b blocks.
    best = [[inf] * n_cuts for _ in range(_MAX_BLOCKS + 1)]
    back = [[0] * n_cuts for _ in range(_MAX_BLOCKS + 1)]
    best[0][0] = 0.0
    for b in range(1, _MAX_BLOCKS + 1):
        for j in range(1, n_cuts):
            for i in range(j):
                if best[b - 1][i] == inf:
                    continue
                c = best[b - 1][i] + cost(i, j)
                if c < best[b][j]:
                    best[b][j], back[b][j] = c, i
    n_blocks = min(range(1, _MAX_BLOCKS + 1), key=lambda b: best[b][n_cuts - 1])
    parts, j = [], n_cuts - 1
    for b in range(n_blocks, 0, -1):
        i = back[b][j]
        parts.append((cuts[i], cuts[j], prefix[cuts[j] - 1]))
        j = i
    parts.reverse()
    return Blocks(tuple(parts))


@dataclass(frozen=True)
class Layout:
    """Where a layer's weight lies in the sorted layout: the sorting of its output
    units (``rows``) and of its inputs (``cols``), None where already sorted, the
    inverse sortings that put gradients back, and ``holes``: the rows and columns
    (sorted layout) inside the blocks' rectangles that the mask leaves out, whose
    gradient is zeroed so that the weight's gradient comes back masked."""

    rows: Tensor | None = None
    cols: Tensor | None = None
    inverse_rows: Tensor | None = None
    inverse_cols: Tensor | None = None
    holes: tuple[Tensor, Tensor] | None = None

    @classmethod
    def of(
        cls,
        rows: Tensor | None,
        cols: Tensor | None,
        blocks: Blocks | None = None,
        prefix: Tensor | None = None,
    ) -> Layout:
        """The layout of a layer sorted by ``rows`` and ``cols``; with ``blocks``
        and the sorted outputs' ``prefix`` (:func:`seen_prefix`), its holes."""

        def inverse(order):
            return None if order is None else torch.argsort(order)

        holes = None
        if blocks is not None:
            holes = _holes(blocks, prefix.cpu(), prefix.device)
        return cls(rows, cols, inverse(rows), inverse(cols), holes)


def _holes(blocks: Blocks, prefix: Tensor, device) -> tuple[Tensor, Tensor]:
    """Rows and columns ``(j, i)`` with ``prefix[j] <= i < width`` of the block
    holding output ``j``: inside the products, outside the mask."""
    width = torch.zeros(len(prefix), dtype=torch.long)
    for first, end, w in blocks.parts:
        width[first:end] = w
    count = (width - prefix).clamp_min(0)
    rows = torch.repeat_interleave(torch.arange(len(prefix)), count)
    start = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    cols = prefix[rows] + torch.arange(len(rows)) - start
    return rows.to(device), cols.to(device)


_SORTED = Layout()


def _permute(t: Tensor, rows: Tensor | None, cols: Tensor | None) -> Tensor:
    if rows is not None:
        t = t.index_select(0, rows)
    if cols is not None and t.dim() > 1:
        t = t.index_select(1, cols)
    return t


class _BlockLinear(torch.autograd.Function):
    """``x @ W.T + b`` over degree blocks, forward and backward, for a weight
    given in its own layout: ``W = (weight * mask)`` sorted by ``layout``.

    Sorting inside the function (rather than with tracked ``index_select``) lets
    the backward pass write the weight's gradient once, in the parameter's layout:
    no zero-filled buffer to scatter into and no extra copy per training step.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mask, blocks, layout):
        if mask is not None:
            weight = weight * mask
        weight = _permute(weight, layout.rows, layout.cols)
        n = x.shape[0]
        out = x.new_empty(n, weight.shape[0])
        for first, end, width in blocks.parts:
            target = out[:, first:end]
            if width == 0:
                target.zero_()
            else:
                torch.mm(x[:, :width], weight[first:end, :width].t(), out=target)
        if bias is not None:
            out += _permute(bias, layout.rows, None)
        ctx.blocks, ctx.layout = blocks, layout
        ctx.save_for_backward(x, weight, mask)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mask = ctx.saved_tensors
        blocks, layout = ctx.blocks, ctx.layout
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _grad_input(grad_out, weight, blocks, x.shape)
        if ctx.needs_input_grad[1]:
            # Each block writes its rectangle and zeroes the rest of its rows
            # (cheaper than zeroing the whole matrix first: a wide layer's memset
            # costs about as much as a product at batch 100).
            grad_weight = torch.empty_like(weight)
            for first, end, width in blocks.parts:
                if width:
                    torch.mm(
                        grad_out[:, first:end].t(),
                        x[:, :width],
                        out=grad_weight[first:end, :width],
                    )
                grad_weight[first:end, width:].zero_()
            if layout.holes is not None:
                grad_weight.index_put_(layout.holes, grad_weight.new_zeros(()))
            grad_weight = _permute(
                grad_weight, layout.inverse_rows, layout.inverse_cols
            )
            if mask is not None:
                grad_weight = grad_weight.mul_(mask)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = _permute(grad_out.sum(dim=0), layout.inverse_rows, None)
        return grad_x, grad_weight, grad_bias, None, None, None


def _grad_input(grad_out: Tensor, weight: Tensor, blocks: Blocks, shape) -> Tensor:
    """``grad_out @ weight`` over the blocks. The widest block (the last: prefixes
    grow) writes its columns first, so only the columns no block sees are zeroed,
    not the whole buffer."""
    grad_x = grad_out.new_empty(shape)
    parts = [part for part in blocks.parts if part[2]]
    if not parts:
        return grad_x.zero_()
    first, end, width = max(parts, key=lambda part: part[2])
    torch.mm(grad_out[:, first:end], weight[first:end, :width], out=grad_x[:, :width])
    grad_x[:, width:].zero_()
    for part in parts:
        if part != (first, end, width):
            f, e, w = part
            grad_x[:, :w].addmm_(grad_out[:, f:e], weight[f:e, :w])
    return grad_x


def block_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    blocks: Blocks,
    layout: Layout = _SORTED,
    mask: Tensor | None = None,
):
    """``F.linear`` over the degree blocks of a layer (see module docstring).

    ``x`` is in the sorted layout; ``weight`` (times ``mask``, if given) and
    ``bias`` in the layer's own, sorted by ``layout`` on the way in (their
    gradients come back in their own layout).

    Under ``torch.autocast`` the operands are cast to its dtype first, as
    ``F.linear``'s would be (the casts are tracked, so gradients reach the
    float32 parameters), and the products run on them with autocast off.
    """
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        mask = None if mask is None else mask.to(dtype)
        with torch.autocast(device, enabled=False):
            return _BlockLinear.apply(x, weight, bias, mask, blocks, layout)
    return _BlockLinear.apply(x, weight, bias, mask, blocks, layout)


@dataclass
class BlockPlan:
    """A mask's layers in the degree-sorted layout: the sorting of every layer's
    units (None where already sorted), the inverse sorting of the outputs, and
    each masked layer's blocks and the layout its weight is sorted into (as
    ``MADE.masked_layers``)."""

    orders: list[Tensor | None]
    restore: Tensor | None
    blocks: list[Blocks]
    layouts: list[Layout]
    min_rows: int


def _take(t: Tensor, dim: int, index: Tensor | None) -> Tensor:
    return t if index is None else t.index_select(dim, index)


def _linear(x: Tensor, layer: tuple, blocks: Blocks) -> Tensor:
    """A layer of the sorted layout: ``layer`` is ``(weight, bias, mask, layout)``
    (see ``MADE._sorted_layers``)."""
    weight, bias, mask, layout = layer
    if blocks.dense and mask is None and layout is _SORTED:
        return F.linear(x, weight, bias)
    return block_linear(x, weight, bias, blocks, layout, mask)


class DegreeBlocks:
    """MADE's forward pass over degree blocks (a mixin of :class:`skmade._nn.MADE`):
    the plan of every mask, the layers in the sorted layout and the blocked pass.

    Uses the network's ``_wiring``, ``_degrees``, ``layer_bias``, ``_activate``,
    ``masked_layers``, ``premasked``, ``layers``, ``variable_degrees`` and its
    ``_block_cache`` and ``_sorted_cache`` dictionaries.
    """

    def block_plan(self, k: int) -> BlockPlan | None:
        """Mask ``k``'s layers cut into degree blocks, or None where that does not
        pay (small layers: see ``skmade._blocks``). Cached per mask and device."""
        device = self.variable_degrees.device
        key = (k, device)
        if key in self._block_cache:
            return self._block_cache[key]
        n_degrees = len(self.layers) + 1
        orders = [
            torch.argsort(self._degrees(i)[k], stable=True) for i in range(n_degrees)
        ]
        blocks, prefixes = [], []
        for _, inp, out, strict in self._wiring():
            prefix = seen_prefix(
                self._degrees(out)[k][orders[out]],
                self._degrees(inp)[k][orders[inp]],
                strict,
            )
            prefixes.append(prefix)
            blocks.append(plan_blocks(prefix.cpu(), len(orders[inp])))
        # Layers already sorted need no copy.
        orders = [
            None if torch.equal(o, torch.arange(len(o), device=device)) else o
            for o in orders
        ]
        dense = sum(layer.weight.numel() for layer in self.masked_layers)
        saved = dense - sum(b.work() for b in blocks)
        plan = None
        if saved > self._BLOCK_GAIN * dense:
            last = orders[-1]
            copied = sum(
                layer.weight.numel()
                for layer, inp, out, _ in self._wiring()
                if orders[inp] is not None or orders[out] is not None
            )
            plan = BlockPlan(
                orders=orders,
                restore=None if last is None else torch.argsort(last),
                blocks=blocks,
                # With one mask the products mask the gradients themselves
                # (see mask_grads).
                layouts=[
                    Layout.of(
                        orders[out],
                        orders[inp],
                        *((b, prefix) if self.premasked else ()),
                    )
                    for (_, inp, out, _), b, prefix in zip(
                        self._wiring(), blocks, prefixes, strict=True
                    )
                ],
                # Below this many rows, copying the weights into the sorted layout
                # costs more than the blocks save.
                min_rows=math.ceil(self._COPY_COST * copied / saved),
            )
        self._block_cache[key] = plan
        return plan

    # Whether forward may use degree blocks at all (False: the plain masked path).
    use_blocks = True
    # Degree blocks are used when they skip at least this share of the dense work.
    _BLOCK_GAIN = 0.15
    # Copying a weight into the sorted layout (and its gradient back) costs about as
    # much as this many multiply-adds per element (measured on a 784-2000-784 MADE).
    _COPY_COST = 100
    # Sorted copies of the weights kept for inference (no gradient): elements.
    _SORTED_CACHE_ELEMENTS = 2**26

    def _sorted_layers(
        self, k: int, masks: list[Tensor] | None, plan: BlockPlan, n_rows: int
    ) -> list[tuple] | None:
        """Every masked layer of mask ``k`` for the sorted layout, as ``(weight,
        bias, mask, layout)``, or None when too few rows make the sorting not worth
        it.

        In training, the parameters themselves with their masks and layouts: the
        block products sort them on the way in and their gradients on the way out.
        For inference (eval mode, no gradients) the sorted masked copies are made
        once and kept until the module returns to training mode, loads a state or
        a parameter's version counter moves (an in-place change; fused optimizers
        do not move it, but they step in training mode).
        """
        last = len(self.layers) - 1
        wiring = self._wiring()
        cached = not torch.is_grad_enabled() and not self.training
        if not cached:
            if n_rows < plan.min_rows:
                return None
            return [
                (
                    layer.weight,
                    self.layer_bias(i, k) if i <= last else None,
                    None if masks is None else masks[i],
                    layout,
                )
                for i, ((layer, *_), layout) in enumerate(
                    zip(wiring, plan.layouts, strict=True)
                )
            ]
        stamp = tuple((p.data_ptr(), p._version) for p in self.parameters())
        hit = self._sorted_cache.get(k)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        orders = plan.orders
        layers = []
        for i, (layer, inp, out, _) in enumerate(wiring):
            weight = layer.weight if masks is None else layer.weight * masks[i]
            weight = _take(_take(weight, 0, orders[out]), 1, orders[inp])
            bias = _take(self.layer_bias(i, k), 0, orders[out]) if i <= last else None
            layers.append((weight, bias, None, _SORTED))
        size = sum(w.numel() for w, *_ in layers)
        held = sum(
            w.numel() for _, kept in self._sorted_cache.values() for w, *_ in kept
        )
        if held + size > self._SORTED_CACHE_ELEMENTS:
            self._sorted_cache.clear()
        self._sorted_cache[k] = (stamp, layers)
        return layers

    def _forward_blocks(
        self, x: Tensor, layers: list[tuple], plan: BlockPlan
    ) -> Tensor:
        """:meth:`forward`'s layers in the degree-sorted layout, block by block."""
        x = _take(x, 1, plan.orders[0])
        h = x
        last = len(self.layers) - 1
        for i, (layer, blocks) in enumerate(zip(layers, plan.blocks, strict=True)):
            if i <= last:
                h = _linear(h, layer, blocks)
                h = self._activate(h) if i < last else h
            else:  # direct connections, from the inputs
                h = h + _linear(x, layer, blocks)
        return _take(h, 1, plan.restore)
