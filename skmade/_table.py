"""Table: a family per column, for mixed tables.

Its network has one-hot input blocks for categorical columns and a variable-major
output layout. :func:`codec_family` picks the family of a fitted column codec.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._families import Bernoulli, Categorical, Family, Gaussian, MixtureOfGaussians


def column_family(kind: str, size: int, atoms=None) -> Family:
    """The family of one column: ``size`` is categories or mixture components;
    ``atoms`` a continuous column's atoms, ``(n_atoms, n_columns)`` (see
    :class:`MixtureOfGaussians`)."""
    if kind == "bernoulli":
        return Bernoulli()
    if kind == "categorical":
        return Categorical(size)
    if atoms is not None:
        return MixtureOfGaussians(size, atoms)
    return Gaussian() if size == 1 else MixtureOfGaussians(size)


class Table:
    """A family per column, for mixed tables.

    Columns are grouped by family (and size); each group is evaluated in one batched
    call of its family. The network sees ``input_sizes[d]`` input units per column
    (one-hot for categorical columns) and gives ``output_sizes[d]`` parameters per
    column, variable-major: column ``d`` owns a contiguous block of output units, its
    parameters in the family's order.

    Parameters
    ----------
    kinds : sequence of {'bernoulli', 'categorical', 'gaussian'}
        Family of each column.
    sizes : sequence of int
        Number of categories (categorical) or mixture components (gaussian; 1 for a
        single Gaussian) of each column; ignored for Bernoulli columns.
    atoms : sequence of (ndarray or None), optional
        Per column, a continuous column's atoms in model units (see
        :class:`MixtureOfGaussians`), or None. Columns with as many atoms share a
        group, their atoms stacked.
    """

    name = "table"

    def __init__(self, kinds, sizes, atoms=None) -> None:
        self.kinds = list(kinds)
        self.sizes = [int(s) for s in sizes]
        self.atoms = list(atoms) if atoms is not None else [None] * len(self.kinds)
        self.families = [
            column_family(k, s, None if a is None else np.asarray(a)[:, None])
            for k, s, a in zip(self.kinds, self.sizes, self.atoms, strict=True)
        ]
        self.input_sizes = [f.input_size for f in self.families]
        self.output_sizes = [f.n_params for f in self.families]
        in_starts = np.concatenate([[0], np.cumsum(self.input_sizes)])
        out_starts = np.concatenate([[0], np.cumsum(self.output_sizes)])
        self.in_starts, self.out_starts = in_starts, out_starts
        groups: dict = {}
        for d, (kind, size) in enumerate(zip(self.kinds, self.sizes, strict=True)):
            n_atoms = 0 if self.atoms[d] is None else len(self.atoms[d])
            key = (kind, 1 if kind == "bernoulli" else size, n_atoms)
            groups.setdefault(key, []).append(d)
        self.groups = []
        for (kind, size, n_atoms), columns in groups.items():
            atoms = None
            if n_atoms:
                atoms = np.stack([np.asarray(self.atoms[d]) for d in columns], axis=1)
            family = column_family(kind, size, atoms)
            columns = np.asarray(columns)
            # out_index[p, j]: output unit of parameter p of the group's column j.
            out_index = (
                out_starts[columns][None, :] + np.arange(family.n_params)[:, None]
            )
            self.groups.append(
                (family, torch.from_numpy(columns), torch.from_numpy(out_index))
            )
        # log_prob gathers every group's parameters with one index (one backward
        # scatter, not one per group) and puts the columns back in place with one
        # more: per-group indexing cost more than the network at batch 100.
        self._param_order = torch.cat([idx.reshape(-1) for _, _, idx in self.groups])
        self._params_in_order = bool(
            torch.equal(self._param_order, torch.arange(self._param_order.numel()))
        )
        self._group_spans = []
        start = 0
        for _, columns, out_index in self.groups:
            stop = start + out_index.numel()
            whole = columns.numel() == len(self.kinds)  # one group, columns in order
            self._group_spans.append((start, stop, out_index.shape, whole))
            start = stop
        column_order = torch.cat([columns for _, columns, _ in self.groups])
        self._column_inverse = torch.argsort(column_order)
        self._columns_in_order = bool(
            torch.equal(column_order, torch.arange(len(self.kinds)))
        )
        self._onehot = torch.from_numpy(
            np.array([k == "categorical" for k in self.kinds])
        )
        self._plain_inputs = torch.from_numpy(in_starts[:-1][~self._onehot.numpy()])
        self._plain_columns = torch.from_numpy(np.flatnonzero(~self._onehot.numpy()))
        self._onehot_columns = torch.from_numpy(np.flatnonzero(self._onehot.numpy()))
        self._onehot_starts = torch.from_numpy(in_starts[:-1][self._onehot.numpy()])

    @property
    def n_params(self):
        return None

    def initial_bias(self, Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Output bias, flat ``(n_outputs,)``: each group's independent model."""
        bias = np.zeros(self.out_starts[-1])
        for family, columns, out_index in self.groups:
            group_bias = family.initial_bias(Z[:, columns.numpy()], weights)
            bias[out_index.numpy()] = group_bias
        return bias

    def encode(self, x: Tensor) -> Tensor:
        """Network inputs ``(n, n_inputs)``: values, and one-hot blocks for codes."""
        inputs = x.new_zeros(x.shape[0], int(self.in_starts[-1]))
        device = x.device
        if self._plain_columns.numel():
            inputs[:, self._plain_inputs.to(device)] = x[
                :, self._plain_columns.to(device)
            ]
        if self._onehot_columns.numel():
            codes = x[:, self._onehot_columns.to(device)].long()
            inputs.scatter_(1, codes + self._onehot_starts.to(device), 1.0)
        return inputs

    def log_prob(
        self, params: Tensor, x: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``log p(x_d | x_<d)`` per column ``(n, D)`` from flat outputs."""
        device = x.device
        gathered = params
        if not self._params_in_order:
            gathered = params[:, self._param_order.to(device)]
        parts = []
        for (family, columns, _), (start, stop, shape, whole) in zip(
            self.groups, self._group_spans, strict=True
        ):
            group_params = gathered[:, start:stop].reshape(-1, *shape)
            group_x = x if whole else x[:, columns.to(device)]
            parts.append(family.log_prob(group_params, group_x, dtype))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if not self._columns_in_order:
            out = out[:, self._column_inverse.to(device)]
        return out.to(dtype or params.dtype)

    def noise(self, shape: tuple[int, int], generator: torch.Generator) -> Tensor:
        """Uniforms, turned into standard normals for single-Gaussian columns."""
        u = torch.rand(shape, generator=generator)
        for d, family in enumerate(self.families):
            if isinstance(family, Gaussian):
                u[:, d] = torch.special.ndtri(u[:, d].clamp(1e-7, 1 - 1e-7))
        return u

    def draw(self, params: Tensor, noise: Tensor) -> Tensor:
        """Values of every column from flat outputs ``(n, n_outputs)`` and noise
        ``(n, D)``: each group drawn by its family in one call."""
        out = noise.new_empty(noise.shape)
        for family, columns, out_index in self.groups:
            columns = columns.to(noise.device)
            group_params = params[:, out_index.to(noise.device)]
            out[:, columns] = family.draw(group_params, noise[:, columns])
        return out

    def expectation(self, params: Tensor) -> Tensor:
        """Every column's expectation (see :class:`Family`), flat like ``params``."""
        out = torch.zeros_like(params)
        for family, _, out_index in self.groups:
            out_index = out_index.to(params.device)
            out[:, out_index] = family.expectation(params[:, out_index])
        return out

    def point(self, expected: Tensor) -> Tensor:
        """Every column's mean or mode from flat expectations ``(n, n_outputs)``."""
        out = expected.new_empty(expected.shape[0], len(self.kinds))
        for family, columns, out_index in self.groups:
            columns = columns.to(expected.device)
            out[:, columns] = family.point(expected[:, out_index.to(expected.device)])
        return out

    def draw_variable(self, d: int, params: Tensor, noise: Tensor) -> Tensor:
        """Values of column ``d`` from its parameters ``(w, n)`` and noise ``(n,)``."""
        return self.families[d].draw(params[None], noise[None])[0]

    def encode_variable(self, d: int, values: Tensor) -> Tensor:
        """Network inputs ``(input_size, n)`` of column ``d`` for values ``(n,)``."""
        if self.kinds[d] == "categorical":
            return F.one_hot(values.long(), self.sizes[d]).T.to(values.dtype)
        return values[None]


def codec_family(columns, n_components: int) -> Family:
    """The output family of a fitted column codec: one family for Bernoulli or
    Gaussian tables (a mixture of ``n_components`` Gaussians where that is above
    one), otherwise a :class:`Table` with each column's own family (categorical
    columns their categories, continuous ones ``n_components`` components and
    their atoms). A Gaussian table with atoms is a Table: atoms differ by column."""
    atoms = getattr(columns, "atoms", None)
    if columns.distribution == "bernoulli":
        return Bernoulli()
    if columns.distribution == "gaussian" and atoms is None:
        return Gaussian() if n_components == 1 else MixtureOfGaussians(n_components)
    sizes = [
        len(values) if values is not None else n_components
        for values in columns.code_values
    ]
    return Table(list(columns.kinds), sizes, atoms)
