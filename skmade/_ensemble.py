"""MaskEnsembleMixin: inference over a MADE's mixture of masks.

A model trained with several masks (connectivity- and order-agnostic training) is
the mixture ``log mean_k p_k(x)`` at inference, never an average of logits or of
per-dimension probabilities. This mixin computes each mask's conditionals of a block
of model values (missing entries marginalized by putting the observed ones first),
mixes them by log-mean-exp, explains a row's score per feature by each mask's
posterior responsibility, and draws rows from the mixture. It needs the estimator's
``_family()``, ``module_``, ``_columns_``, ``_scoring_input`` and ``n_eval_masks``
(and :class:`~skmade._conditional.ConditionalMixin`'s ``_observed_first``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._base import row_blocks
from ._dask import lazy_rows
from ._sampling import sample_incremental

# Early stopping monitors the mixture of at most this many masks: scoring all of a
# large ensemble after every epoch would cost more than the epoch's training.
_VALIDATION_MASKS = 8


class MaskEnsembleMixin:
    """Per-mask conditionals, their mixture, explanations and draws (see module)."""

    def _n_eval_masks(self) -> int:
        """Masks averaged at inference; ``n_eval_masks`` may change after fit, within
        the masks that were trained."""
        trained = self.module_.n_masks
        if self.n_eval_masks is None:
            return trained
        if self.n_eval_masks > trained:
            raise ValueError(
                f"n_eval_masks={self.n_eval_masks}, but this model was trained with "
                f"{trained} mask(s); inference can only average trained masks. Set "
                f"n_eval_masks to at most {trained} (or None for all), or refit with "
                "more n_masks."
            )
        return self.n_eval_masks

    def _per_mask_log_prob(
        self, module, x, n_masks: int, per_row: bool = False
    ) -> torch.Tensor:
        """``log p_k(x_d | x_<d)`` of a block under the first masks: ``(K, n, D)``,
        or with ``per_row`` each row's sum over ``d``, ``(K, n)`` (summed mask by
        mask: no ``(K, n, D)`` table for a large ensemble).

        The network runs in float32; the family's last elementwise kernels run in
        float64. In float32 the SIMD body and the scalar tail of those kernels differ
        by an ulp, which made a row's score depend on its position in X; in float64
        that is far below any tolerance.
        """
        family = self._family()
        missing = torch.isnan(x)
        incomplete = missing.any(dim=1)

        scored = self._scored_columns()

        def finish(log_prob):
            log_prob = log_prob[:, scored]
            return log_prob.sum(dim=1) if per_row else log_prob

        if not incomplete.any():
            inputs = family.encode(x)
            return torch.stack(
                [
                    finish(family.log_prob(module(inputs, k), x, dtype=torch.float64))
                    for k in range(n_masks)
                ]
            )
        # Rows with missing entries: the observed entries' conditionals under each
        # mask with its ordering rearranged to put them first (their marginal).
        x = x.masked_fill(missing, 0.0)
        inputs = family.encode(x)
        rows = incomplete.nonzero()[:, 0]
        out = []
        for k in range(n_masks):
            log_prob = family.log_prob(module(inputs, k), x, dtype=torch.float64)
            positions = self._observed_first(module, k, missing[rows])
            params = module.forward_rows(inputs[rows], k, positions)
            log_prob[rows] = family.log_prob(params, x[rows], dtype=torch.float64)
            out.append(finish(log_prob.masked_fill(missing, 0.0)))
        return torch.stack(out)

    def _block_log_likelihood(self, module, x, n_masks: int | None = None):
        """The mask mixture's log-density of a block of model values.

        ``n_masks`` limits the mixture to the first masks (default: the
        ``n_eval_masks`` of inference).
        """
        n_eval = self._n_eval_masks() if n_masks is None else n_masks
        per_mask = self._per_mask_log_prob(module, x, n_eval, per_row=True)
        return torch.logsumexp(per_mask, dim=0) - math.log(n_eval)

    def _validation_log_likelihood(self, Z: np.ndarray) -> np.ndarray:
        n_masks = min(self._n_eval_masks(), _VALIDATION_MASKS)
        return self._log_likelihood(Z, n_masks=n_masks)

    @torch.no_grad()
    def _mask_conditionals(self, X) -> np.ndarray:
        """Every mask's conditionals ``log p_k(x_d | x_<d)`` of X: ``(K, n, D)``.

        In the units of X (the Jacobian of each feature included), ``-inf`` at
        entries the model gives no probability and NaN at missing entries. What
        :class:`MADEOutlierDetector` calibrates; a row's mask-``k`` entries sum to
        ``log p_k(x)``.
        """
        Z, impossible = self._scoring_input(X)
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        n_eval = self._n_eval_masks()
        out = np.empty((n_eval, *Z.shape), dtype=np.float64)
        for start, x, n in row_blocks(Z, device):
            per_mask = self._per_mask_log_prob(module, x, n_eval)[:, :n]
            out[:, start : start + n] = per_mask.cpu().numpy()
        log_jacobian = self._columns_.feature_log_jacobian()
        if log_jacobian is not None:
            out += log_jacobian
        if impossible is not None:
            out[:, impossible] = -np.inf
        out[:, np.isnan(Z)] = np.nan
        return out

    @lazy_rows(lambda estimator: estimator.n_features_in_)
    @torch.no_grad()
    def score_features(self, X):
        """Per-feature contributions to each row's log-density, in nats.

        For one mask these are the autoregressive conditionals
        ``log p(x_d | x_<d)`` in that mask's ordering (plus, for Gaussian data, the
        feature's own ``-log scale_[d]``), and a row's contributions sum to its
        :meth:`score_samples`. A low value means the feature is unlikely given the
        features before it: the place to look when a row is anomalous.

        For an ensemble of ``K`` masks, each mask's conditionals are weighted by the
        mask's posterior responsibility for the row, ``w_k = p_k(x) / sum_j p_j(x)``
        (the masks that explain the row best count most). The weighted conditionals
        sum to ``sum_k w_k log p_k(x)``, which exceeds ``log p(x)`` by
        ``log K - H(w)`` (between 0 and ``log K``); that difference is subtracted
        evenly from every feature of the row, so that rows still sum to
        :meth:`score_samples` and the ranking of features within a row is unchanged.

        For continuous data the contributions are log-densities in each feature's
        units, so they compare across rows of one feature; to compare features with
        each other, subtract each feature's typical contribution (as
        :meth:`MADEOutlierDetector.score_features` does).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain.

        With ``allow_missing=True`` a missing entry (NaN) contributes 0: the row's
        contributions are those of its observed features, summing to its marginal
        log-likelihood.

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
            Contribution of each feature (in the column order of X). A dask array
            X gives a lazy dask array, as in :meth:`score_samples`.
        """
        Z, impossible = self._scoring_input(X)
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        n_eval = self._n_eval_masks()
        out = np.empty(Z.shape, dtype=np.float64)
        for start, x, n in row_blocks(Z, device):
            per_mask = self._per_mask_log_prob(module, x, n_eval)[:, :n]
            observed = ~torch.isnan(x[:n])
            n_observed = observed.sum(dim=1).clamp(min=1)
            totals = per_mask.sum(dim=2)
            responsibility = torch.softmax(totals, dim=0)
            weighted = (responsibility[:, :, None] * per_mask).sum(dim=0)
            log_density = torch.logsumexp(totals, dim=0) - math.log(n_eval)
            correction = (log_density - weighted.sum(dim=1)) / n_observed
            weighted += correction[:, None] * observed
            out[start : start + n] = weighted.cpu().numpy()
        log_jacobian = self._columns_.feature_log_jacobian()
        if log_jacobian is not None:
            out += np.where(np.isnan(Z), 0.0, log_jacobian)
        if impossible is not None:
            out[impossible] = -np.inf
        return out

    def _draw(self, module, n_samples, rng, device):
        family = self._family()
        mask_of_row = rng.randint(self._n_eval_masks(), size=n_samples)
        noise = family.noise((n_samples, module.n_features), self._torch_generator(rng))
        noise = noise.to(device)
        masks_used = np.unique(mask_of_row)
        if masks_used.size == 1:  # one batch: no gathering and scattering of rows
            return sample_incremental(module, family, int(masks_used[0]), noise)
        Z = torch.empty_like(noise)
        for k in masks_used:
            rows = torch.from_numpy(np.flatnonzero(mask_of_row == k)).to(device)
            Z[rows] = sample_incremental(module, family, int(k), noise[rows])
        return Z
