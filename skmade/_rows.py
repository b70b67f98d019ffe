"""MADE's forward pass with a different ordering in every row.

What missing values (the observed entries first, their marginal) and order-agnostic
training need: the hidden layers keep a mask's degrees, while the connections from
the inputs and to the outputs follow each row's own ordering. A mixin of
:class:`skmade._nn.MADE`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class RowOrderings:
    """:meth:`forward_rows` for :class:`skmade._nn.MADE`.

    Uses the network's ``layers``, ``direct``, ``visibility``, ``gaussian``,
    ``in_variable``, ``out_variable``, ``n_params``, ``n_features``, ``masks``,
    ``_degrees``, ``_activate`` and ``_autocast``.
    """

    # Row-dependent masks are materialized per row: at most this many elements at a
    # time (a block of rows is processed at once).
    _ROW_MASK_ELEMENTS = 2**23

    def forward_rows(self, x: Tensor, k: int, positions: Tensor) -> Tensor:
        """Parameters of every conditional with a different ordering in every row.

        ``positions[n, d]`` is the position (1 to D) of variable ``d`` in row ``n``'s
        ordering. The hidden layers keep mask ``k``'s degrees; the connections from
        the inputs (a hidden unit of degree ``m`` sees the row's first ``m``
        variables) and to the outputs (variable ``d`` sees hidden units of degree
        below its position, and, with direct connections, the variables before it)
        follow the row's ordering. Each row is then an exact autoregressive model
        in its own ordering. Same output layout as :meth:`forward`.
        """
        widest = max(
            [layer.weight.numel() for layer in self.layers]
            + ([self.direct.weight.numel()] if self.direct is not None else [])
        )
        block = max(1, self._ROW_MASK_ELEMENTS // max(widest, 1))
        x = self.clip_inputs(x)
        out = []
        with self._autocast(x):
            for start in range(0, x.shape[0], block):
                out.append(
                    self._forward_rows(
                        x[start : start + block], k, positions[start : start + block]
                    )
                )
        h = (torch.cat(out) if len(out) > 1 else out[0]).to(x.dtype)
        if self.n_params is None:
            return h
        return h.view(x.shape[0], self.n_params, self.n_features)

    def _forward_rows(self, x: Tensor, k: int, positions: Tensor) -> Tensor:
        in_position = positions[:, self.in_variable]  # (n, n_inputs)
        out_position = positions[:, self.out_variable]  # (n, n_outputs)
        last = len(self.layers) - 1
        masks = self.masks(k)
        h = x
        for i, layer in enumerate(self.layers):
            if i == 0 and i == last:  # no hidden layer: inputs straight to outputs
                row_mask = out_position[:, :, None] > in_position[:, None, :]
            elif i == 0:
                h = self._inputs_to_rows(
                    layer,
                    self._degrees(1)[k],
                    x,
                    in_position,
                    positions,
                    self.visibility,
                )
                h = self._activate(h) if i < last else h
                continue
            elif i == last:
                h = self._rows_to_outputs(
                    layer, self._degrees(last)[k], h, out_position
                )
                continue
            else:
                h = self._activate(F.linear(h, layer.weight * masks[i], layer.bias))
                continue
            weight = layer.weight * row_mask.to(layer.weight.dtype)
            h = torch.bmm(weight, h[:, :, None])[:, :, 0] + layer.bias
            h = self._activate(h) if i < last else h
        if self.direct is not None:
            row_mask = out_position[:, :, None] > in_position[:, None, :]
            weight = self.direct.weight * row_mask.to(self.direct.weight.dtype)
            h = h + torch.bmm(weight, x[:, :, None])[:, :, 0]
        if self.gaussian is not None:
            h = h + self.gaussian.rows(x, positions)
        return h

    @staticmethod
    def _inputs_to_rows(layer, degrees, x, in_position, positions, visibility):
        """The first hidden layer when each row has its own ordering.

        A hidden unit of degree ``m`` sees the row's first ``m`` variables: for each
        distinct degree, the inputs are masked per row (a mask of the inputs' size,
        not of the layer's) and multiplied by the weights of that degree's units.
        """
        levels, group = torch.unique(degrees, return_inverse=True)
        visible = in_position[:, None, :] <= levels[None, :, None]  # (n, Q, inputs)
        units, parts = [], []
        for q in range(len(levels)):
            members = (group == q).nonzero()[:, 0]
            units.append(members)
            inputs = x * visible[:, q].to(x.dtype)
            part = F.linear(inputs, layer.weight[members])
            if visibility is not None:
                seen = (positions <= levels[q]).to(x.dtype)  # (n, D)
                part = part + F.linear(seen, visibility[members])
            parts.append(part)
        order = torch.argsort(torch.cat(units))
        return torch.cat(parts, dim=1)[:, order] + layer.bias

    @staticmethod
    def _rows_to_outputs(layer, degrees, h, out_position):
        """The output layer when each row has its own ordering.

        Output ``o`` of row ``n`` sees the hidden units of degree below its position.
        Grouping the hidden units by degree, ``G[n, o, q]`` is the contribution of
        the group of the ``q``-th smallest degree (one small product per group,
        together the cost of one dense product); summed cumulatively over the
        groups, the sum each output needs is read at the number of groups below its
        position. No per-row mask of the layer's size is materialized.
        """
        levels, group = torch.unique(degrees, return_inverse=True)
        parts = [
            F.linear(h[:, group == q], layer.weight[:, group == q])
            for q in range(len(levels))
        ]
        cumulative = torch.stack(parts, dim=2).cumsum(dim=2)  # (n, O, Q)
        cumulative = F.pad(cumulative, (1, 0))  # no group below the first degree
        seen = torch.searchsorted(levels, out_position.contiguous(), right=False)
        return cumulative.gather(2, seen[:, :, None])[:, :, 0] + layer.bias
