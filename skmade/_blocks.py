"""Masked layers as a few dense products over degree blocks.

With the units of two layers sorted by degree, a MADE weight mask is a staircase:
output unit ``j`` sees a prefix of the inputs, and the prefix grows with ``j``. Cut the
outputs into ``B`` contiguous blocks; block ``b`` needs only the prefix its last unit
sees, so the layer is ``B`` products ``x[:, :p_b] @ W[rows_b, :p_b].T`` that together
skip most of the zero upper triangle: about ``(B + 1) / (2 B)`` of the dense work for
a uniform staircase. The weights inside a block's rectangle but outside the mask must
be zero (or be zeroed by the caller), so the result equals the masked product up to
the order of floating-point sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


class _BlockLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` computed over degree blocks, forward and backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, blocks):
        n = x.shape[0]
        out = x.new_empty(n, weight.shape[0])
        for first, end, width in blocks.parts:
            target = out[:, first:end]
            if width == 0:
                target.zero_()
            else:
                torch.mm(x[:, :width], weight[first:end, :width].t(), out=target)
        if bias is not None:
            out += bias
        ctx.blocks = blocks
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        blocks = ctx.blocks
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.zeros_like(x)
            for first, end, width in blocks.parts:
                if width:
                    grad_x[:, :width].addmm_(
                        grad_out[:, first:end], weight[first:end, :width]
                    )
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
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(dim=0)
        return grad_x, grad_weight, grad_bias, None


def block_linear(x: Tensor, weight: Tensor, bias: Tensor | None, blocks: Blocks):
    """``F.linear`` over the degree blocks of a sorted layer (see module docstring).

    Under ``torch.autocast`` the operands are cast to its dtype first, as
    ``F.linear``'s would be (the casts are tracked, so gradients reach the
    float32 parameters), and the products run on them with autocast off.
    """
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            return _BlockLinear.apply(x, weight, bias, blocks)
    return _BlockLinear.apply(x, weight, bias, blocks)
