"""ConditionalMADE: the joint MADE of (features, targets) behind MADERegressor.

The orderings put every feature before every target and every hidden unit has a
degree of at least the number of features ``p``: each hidden unit sees every
feature, and the outputs of target ``y_j`` see the features and the targets before
it. Only the targets' conditionals make up the likelihood (the features are
conditioned on, never modelled), so the model's log-density of a row is exactly
``log p(y | x) = sum_j log p(y_j | x, y_<j)``, mixed over masks by log-mean-exp.
Everything else (the codec, the training recipe, the Gaussian start, which here is
the linear-Gaussian regression of each target on the features and the earlier
targets, the transaction, persistence) is :class:`~skmade.MADEDensity`'s.
"""

from __future__ import annotations

import numpy as np
import torch

from ._base import SCORE_BLOCK, row_blocks
from ._columns import infer_kinds
from ._density import MADEDensity
from ._families import Gaussian
from ._table import Table

# Bisection steps of the exact mixture quantile: 2**-80 of the bracket.
_BISECTION_STEPS = 80


def column_block(family, params: torch.Tensor, d: int):
    """The family of column ``d`` and its parameters ``(n, n_params)``."""
    if isinstance(family, Table):
        start, stop = family.out_starts[d], family.out_starts[d + 1]
        return family.families[d], params[:, start:stop]
    return family, params[:, :, d]


def _mixture_of(column_family, block: torch.Tensor):
    """Log-weights, means and scales ``(n, C)`` of a continuous column's conditional."""
    block = block.double()
    if isinstance(column_family, Gaussian):
        mean, log_scale = Gaussian.mean_and_log_scale(block)
        return torch.zeros_like(mean)[:, None], mean[:, None], log_scale.exp()[:, None]
    logits, means, log_scales = column_family.split(block)
    return torch.log_softmax(logits, dim=1), means, log_scales.exp()


def mixture_quantiles(weights, means, scales, levels) -> np.ndarray:
    """Quantiles ``(n, L)`` of per-row Gaussian mixtures ``(n, C)`` at ``levels``,
    by bisection of the mixture's CDF to float64 precision."""
    low = np.repeat((means - 40 * scales).min(axis=1)[:, None], levels.size, axis=1)
    high = np.repeat((means + 40 * scales).max(axis=1)[:, None], levels.size, axis=1)
    means, scales, weights = means[:, None, :], scales[:, None, :], weights[:, None, :]
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        z = torch.from_numpy((middle[:, :, None] - means) / scales)
        below = (weights * torch.special.ndtr(z).numpy()).sum(axis=2) < levels
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    return 0.5 * (low + high)


class ConditionalMADE(MADEDensity):
    """A MADEDensity of ``(X, y)`` whose likelihood is that of ``y`` given ``X``.

    ``n_context_`` (the number of feature columns, which come first) and
    ``target_distribution_`` (one entry per target) are set before ``fit``; the
    ``ordering`` puts the features first.
    """

    _display_name = "MADERegressor"
    # Regression tables are often small (hundreds of rows: an epoch of 100-row
    # batches is a few Adam steps). Chosen on validation rows of the UCI tables
    # (benchmarks/regression.py): MADEDensity's 32-row batches up to 3,200 rows,
    # and patience of at least 500 steps for the schedule and 3,000 for early
    # stopping.
    _patience_steps = (500, 3000)
    # The regressor's defaults were chosen with the direct path (UCI tables).
    _compares_direct_path = False

    def _scored_columns(self) -> slice:
        return slice(self.n_context_, None)

    def _lowest_hidden_degree(self) -> int:
        return max(self.n_context_, 1)

    def _column_kinds(self, X, frame_categories) -> list[str]:
        """Features: categorical where the frame says so, continuous otherwise (a
        feature is conditioned on, never modelled, so integer features keep their
        order). Targets: ``'auto'`` is categorical for categorical or string
        columns and a mixture of Gaussians for numbers."""
        p = self.n_context_
        spec = ["auto" if j in frame_categories else "gaussian" for j in range(p)]
        for j, kind in enumerate(self.target_distribution_, start=p):
            numeric_auto = kind == "auto" and j not in frame_categories
            spec.append("gaussian" if numeric_auto else kind)
        return infer_kinds(X, spec, self.max_categories, frame_categories)

    def first_target_shared(self) -> bool:
        """Whether every mask puts the same target first."""
        firsts = self.orderings_[: self._n_eval_masks(), self.n_context_]
        return bool(np.all(firsts == firsts[0]))

    @torch.no_grad()
    def first_target(self, Z: np.ndarray):
        """``(column family, [parameters (n, n_params) per mask], column)`` of the
        first target's conditional: it sees only the features, so one pass gives
        its exact distribution (every mask must put the same target first)."""
        module = self.module_
        module.eval()
        family = self._family()
        device = next(module.parameters()).device
        n_eval = self._n_eval_masks()
        d = int(self.orderings_[0][self.n_context_])
        blocks = [[] for _ in range(n_eval)]
        column_family = None
        for _, x, n in row_blocks(Z, device):
            inputs = family.encode(x)
            for k in range(n_eval):
                column_family, block = column_block(family, module(inputs, k), d)
                blocks[k].append(block[:n].cpu())
        return column_family, [torch.cat(b) for b in blocks], d

    def continuous_mixture(self, Z: np.ndarray):
        """Weights, means and scales ``(n, K * C)`` of the first (continuous)
        target's conditional mixture over masks and components, in y's units."""
        column_family, blocks, d = self.first_target(Z)
        parts = [_mixture_of(column_family, block) for block in blocks]
        log_w = torch.cat([w for w, _, _ in parts], dim=1) - np.log(len(parts))
        means = torch.cat([m for _, m, _ in parts], dim=1).numpy()
        scales = torch.cat([s for _, _, s in parts], dim=1).numpy()
        mean, scale = self._columns_.mean[d], self._columns_.scale[d]
        return log_w.exp().numpy(), means * scale + mean, scales * scale

    @torch.no_grad()
    def draw_targets(self, Z: np.ndarray, n_draws: int, rng) -> np.ndarray:
        """``(n, n_draws, n_targets)`` draws of the targets given Z's features: a
        mask per draw (uniform: the mixture that score_samples evaluates), then the
        targets one by one in that mask's ordering, one network pass each. Values
        in the user's units (categories for frame categorical targets)."""
        module = self.module_
        module.eval()
        family = self._family()
        device = next(module.parameters()).device
        p = self.n_context_
        rows = np.repeat(Z, n_draws, axis=0)
        mask_of_row = rng.randint(self._n_eval_masks(), size=rows.shape[0])
        noise = family.noise(rows.shape, self._torch_generator(rng))
        x = torch.as_tensor(rows, dtype=torch.float32)
        step = 64 * SCORE_BLOCK
        for k in np.unique(mask_of_row):
            chosen = np.flatnonzero(mask_of_row == k)
            for start in range(0, chosen.size, step):
                index = torch.from_numpy(chosen[start : start + step])
                block, block_noise = x[index].to(device), noise[index].to(device)
                for d in self.orderings_[k][p:]:
                    params = module(family.encode(block), int(k))
                    variables = torch.full(
                        (block.shape[0],), int(d), dtype=torch.long, device=device
                    )
                    block[:, d] = self._draw_variables(
                        family, params, variables, block_noise
                    )
                x[index] = block.cpu()
        codec = self._columns_
        values = codec.from_internal(x.double().numpy())[:, p:]
        n_targets = values.shape[1]
        out = values.astype(object) if codec.frame_categories else values
        for j in range(n_targets):
            if p + j in codec.frame_categories:
                categories = np.asarray(codec.frame_categories[p + j], dtype=object)
                out[:, j] = categories[values[:, j].astype(np.int64)]
        return out.reshape(Z.shape[0], n_draws, n_targets)
