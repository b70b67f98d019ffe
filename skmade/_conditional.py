"""Missing values and conditional queries of MADEDensity.

Completions (the mixture over orderings that put the observed entries first),
conditional log-likelihoods and conditional draws, for ``allow_missing``, the
``given=`` of :meth:`~skmade.MADEDensity.sample` and :class:`~skmade.MADEImputer`.
"""

from __future__ import annotations

import numpy as np
import torch

from ._base import row_blocks
from ._table import Table

# Orderings whose mixture answers a completion (MADEImputer's conditional means).
_COMPLETION_ORDERINGS = 16


class ConditionalMixin:
    """Completion and conditioning for :class:`~skmade.MADEDensity` (see the module)."""

    def _complete_for_start(self, Z: np.ndarray) -> np.ndarray:
        """Z with missing entries filled for the starting biases only: each column's
        most frequent value (discrete columns) or median (continuous ones)."""
        missing = np.isnan(Z)
        if not missing.any():
            return Z
        Z = Z.copy()
        for j, kind in enumerate(self.column_distributions_):
            observed = Z[~missing[:, j], j]
            if observed.size == 0:
                fill = 0.0
            elif kind == "gaussian":
                fill = float(np.median(observed))
            else:
                values, counts = np.unique(observed, return_counts=True)
                fill = float(values[np.argmax(counts)])
            Z[missing[:, j], j] = fill
        return Z

    # ------------------------------------------------------------------ any order

    def _batch_log_prob(self, module, family, x, k, weights, generator):
        if not self.allow_missing:
            return super()._batch_log_prob(module, family, x, k, weights, generator)
        # A fresh random ordering per row, observed entries first; the loss is the
        # log-likelihood of the observed entries (their marginal under that order).
        missing = torch.isnan(x)
        x = x.masked_fill(missing, 0.0)
        keys = torch.rand(x.shape, generator=generator).to(x.device) + missing
        positions = keys.argsort(dim=1).argsort(dim=1) + 1
        params = module.forward_rows(family.encode(x), k, positions)
        return family.log_prob(params, x).masked_fill(missing, 0.0)

    def _start_log_prob(self, module, family, x):
        if not self.allow_missing:
            return super()._start_log_prob(module, family, x)
        return self._per_mask_log_prob(module, x, 1)[0]

    @staticmethod
    def _observed_first(module, k: int, missing: torch.Tensor) -> torch.Tensor:
        """Positions ``(n, D)`` of mask ``k``'s ordering rearranged per row so that
        the observed variables come first, each group in the mask's order."""
        n_features = missing.shape[1]
        keys = module.variable_degrees[k][None, :] + n_features * missing.long()
        return keys.argsort(dim=1).argsort(dim=1) + 1

    def _draw_given(self, module, Z: np.ndarray, rng, device) -> torch.Tensor:
        """Model values with Z's missing entries drawn from their conditional."""
        family = self._family()
        n_eval = self._n_eval_masks()
        n_rows, n_features = Z.shape
        # The mask of each row, drawn from its posterior given the observed entries.
        totals = np.empty((n_eval, n_rows))
        for start, x, n in row_blocks(Z, device):
            per_mask = self._per_mask_log_prob(module, x, n_eval, per_row=True)
            totals[:, start : start + n] = per_mask[:, :n].cpu().numpy()
        posterior = np.exp(totals - totals.max(axis=0))
        cumulative = np.cumsum(posterior / posterior.sum(axis=0), axis=0)
        uniforms = rng.random_sample(n_rows)
        mask_of_row = np.minimum((cumulative < uniforms).sum(axis=0), n_eval - 1)
        noise = family.noise((n_rows, n_features), self._torch_generator(rng))
        noise = noise.to(device)
        missing = torch.as_tensor(np.isnan(Z), device=device)
        x = torch.as_tensor(np.nan_to_num(Z), dtype=torch.float32, device=device)
        for k in np.unique(mask_of_row):
            rows = torch.as_tensor(np.flatnonzero(mask_of_row == k), device=device)
            positions = self._observed_first(module, int(k), missing[rows])
            variable_at = positions.argsort(dim=1)  # the variable at each position
            n_observed = (~missing[rows]).sum(dim=1)
            for i in range(int(n_observed.min()), n_features):
                active = n_observed <= i  # rows whose i-th variable is missing
                if not active.any():
                    continue
                active_rows = rows[active]
                params = module.forward_rows(
                    family.encode(x[active_rows]), int(k), positions[active]
                )
                variables = variable_at[active, i]
                x[active_rows, variables] = self._draw_variables(
                    family, params, variables, noise[active_rows]
                )
        return x

    @staticmethod
    def _draw_variables(family, params, variables, noise) -> torch.Tensor:
        """Row ``n``'s draw of variable ``variables[n]`` from the network outputs."""
        noise = noise.gather(1, variables[:, None])[:, 0]
        if not isinstance(family, Table):
            index = variables[:, None, None].expand(-1, params.shape[1], 1)
            return family.draw(params.gather(2, index)[:, :, 0], noise)
        values = torch.empty_like(noise)
        for d in variables.unique().tolist():
            rows = variables == d
            block = params[rows, family.out_starts[d] : family.out_starts[d + 1]].T
            values[rows] = family.draw_variable(d, block, noise[rows])
        return values

    @torch.no_grad()
    def _complete(self, X: np.ndarray) -> np.ndarray:
        """Numeric rows with every missing entry set to its conditional mean or mode
        given the row's observed entries.

        The conditional of one missing variable given the observed ones is one
        output of the network when the row's ordering puts the observed variables
        first and every missing variable right after them (all at the same
        position: each sees the observed ones only), so one pass gives them all.
        The answer is the mixture over ``_COMPLETION_ORDERINGS`` such orderings
        (the ``n_eval_masks`` masks, each with random orders of the observed
        variables), each weighted by its likelihood of the observed entries: the
        mean, or the mode, of the mixture's conditional. Deterministic.
        """
        Z, impossible = self._columns_.scoring_values(X, "error")
        if impossible is not None:
            raise ValueError(
                "X holds continuous values more than 1e15 standard deviations from "
                "the training mean: the model cannot condition on them."
            )
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        family = self._family()
        n_eval = self._n_eval_masks()
        per_mask = -(-_COMPLETION_ORDERINGS // n_eval)
        generator = torch.Generator().manual_seed(0)
        filled = np.empty(Z.shape)
        for start, x, n in row_blocks(Z, device):
            missing = torch.isnan(x)
            x = x.masked_fill(missing, 0.0)
            inputs = family.encode(x)
            n_observed = (~missing).sum(dim=1, keepdim=True)
            log_weights, expected = [], []
            for k in range(n_eval):
                for r in range(per_mask):
                    if r == 0:  # the mask's own order of the observed variables
                        positions = self._observed_first(module, k, missing)
                    else:  # one random order for all rows: a row's answer does
                        # not depend on the rows beside it (blocks, dask chunks)
                        keys = torch.rand(1, x.shape[1], generator=generator)
                        positions = (keys.to(device) + missing).argsort(1).argsort(1)
                        positions = positions + 1
                    positions = torch.where(missing, n_observed + 1, positions)
                    params = module.forward_rows(inputs, k, positions)
                    log_prob = family.log_prob(params, x, dtype=torch.float64)
                    log_weights.append(log_prob.masked_fill(missing, 0.0).sum(dim=1))
                    expected.append(family.expectation(params).double())
            weights = torch.softmax(torch.stack(log_weights), dim=0)
            mixed = (
                weights.view(*weights.shape, *[1] * (expected[0].dim() - 1))
                * torch.stack(expected)
            ).sum(dim=0)
            filled[start : start + n] = family.point(mixed)[:n].cpu().numpy()
        filled = self._columns_.from_internal(filled)
        observed = ~np.isnan(X)
        filled[observed] = X[observed]
        return filled

    @torch.no_grad()
    def _conditional_log_likelihood(
        self, X, missing: np.ndarray, unknown: str = "error"
    ) -> np.ndarray:
        """``log p(x_M | x_O)`` of complete rows X, M the entries where ``missing``.

        Under the mixture that scores rows with missing entries (each mask rearranged
        to put the observed entries first): ``log sum_k p_k(x) - log sum_k
        p_k(x_O)``, in the user's units (the standardization's Jacobian of the
        missing continuous entries included). 0 for a row with nothing missing.
        With ``unknown='ignore'``, rows with values the model gives no probability
        (a category never seen in training) get ``-inf`` instead of an error.
        """
        X = self._read_input(X)
        Z, impossible = self._columns_.scoring_values(X, unknown)
        if np.isnan(Z).any():
            raise ValueError("X must be complete: NaN marks nothing here.")
        module = self.module_
        module.eval()
        family = self._family()
        device = next(module.parameters()).device
        n_eval = self._n_eval_masks()
        out = np.empty(Z.shape[0])
        holes = np.where(missing, np.nan, 0.0)
        for (start, x, n), (_, hole, _) in zip(
            row_blocks(Z, device), row_blocks(holes, device), strict=True
        ):
            miss = torch.isnan(hole)
            inputs = family.encode(x)
            joint, observed = [], []
            for k in range(n_eval):
                positions = self._observed_first(module, k, miss)
                params = module.forward_rows(inputs, k, positions)
                log_prob = family.log_prob(params, x, dtype=torch.float64)
                joint.append(log_prob.sum(dim=1))
                observed.append(log_prob.masked_fill(miss, 0.0).sum(dim=1))
            value = torch.logsumexp(torch.stack(joint), 0) - torch.logsumexp(
                torch.stack(observed), 0
            )
            out[start : start + n] = value[:n].cpu().numpy()
        jacobian = self._columns_.feature_log_jacobian()
        if jacobian is not None:
            out += np.asarray(missing, dtype=float) @ jacobian
        if impossible is not None:
            out[impossible.any(axis=1)] = -np.inf
        return out
