"""The training loop of the torch densities and what it needs.

:func:`train` runs the epochs of one fit (Adam, the learning-rate schedule, early
stopping on held-out rows, the check against the start, divergence); the helpers
rescale row weights and set the L2 penalty's factor.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight

from ._nn import zero_vanishing
from ._utils import TrainingLog, display_name

# The 'adaptive' schedule: the rate is multiplied by _LR_FACTOR after _LR_PATIENCE
# epochs without progress (MLPClassifier divides by 5 after 2 epochs).
_LR_FACTOR = 0.5
_LR_PATIENCE = 2
# batch_size='auto': smaller batches were slightly better on every table measured
# (benchmarks/tabular.py) at about the same fit time, since fewer epochs are needed.
AUTO_BATCH = 100
# Divergence without early stopping: the best epoch's loss is above the starting
# loss by its own magnitude plus this many nats per row. Scored in blocks of rows.
_DIVERGED_NATS = 10.0
_START_LOSS_BATCH = 4096
# Weights below skmade._nn.VANISHING are zeroed every this many steps on a CPU
# (see zero_vanishing): a sweep costs about one step of a 784-2000-784 MADE.
_SWEEP_STEPS = 50

# Largest L2 factor per unit of row weight: Adam squares gradients in float32.
_MAX_L2_SCALE = 1e12


def check_weights(sample_weight, X) -> tuple[np.ndarray, int]:
    """Validated row weights, rescaled by a power of two into ``[0, 1)``.

    Returns the rescaled weights and the exponent ``e`` of the factor: the user's
    weights are ``weights * 2**e``. The rescaling is exact and keeps weights near the
    float64 limits (1e308, 1e-320) from overflowing or underflowing the sums that
    normalize them; only the L2 penalty (see :func:`l2_scale`) needs ``e``.
    """
    weights = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    top = weights.max() if weights.size else 0.0
    if weights.size and not top > 0:  # scikit-learn < 1.7 lets all-zero weights pass
        raise ValueError(
            "sample_weight must contain at least one non-zero number: every row "
            "has weight zero."
        )
    exponent = 0
    if top > 0:
        exponent = int(np.frexp(top)[1])
        weights = np.ldexp(weights, -exponent)
    return weights, exponent


def l2_scale(alpha: float, weights: np.ndarray, exponent: int) -> float:
    """Factor of the squared weights in the per-unit-weight training loss.

    The loss is the weighted mean negative log-likelihood plus
    ``0.5 * alpha * ||W||^2 / sum(sample_weight)``: the MAP objective when row
    weights count as repetitions of rows (scikit-learn's convention), so
    multiplying every weight by ``c`` acts as dividing ``alpha`` by ``c``.
    ``weights * 2**exponent`` are the user's training weights.
    """
    if not weights.sum() > 0:
        raise ValueError(
            "Every training row has zero sample_weight once the validation rows "
            "are held out. Give more rows a positive weight, or set "
            "early_stopping=False."
        )
    if alpha == 0:
        return 0.0
    scaled = 0.5 * alpha / weights.sum()
    if math.log2(scaled) - exponent > math.log2(_MAX_L2_SCALE):
        total = f"2**{math.log2(weights.sum()) + exponent:.1f}"
        raise ValueError(
            f"sample_weight sums to {total} over the training rows, so the L2 "
            f"penalty 0.5 * alpha / sum(sample_weight) is beyond {_MAX_L2_SCALE:g} "
            "per unit of weight and would swamp the data in float32 training. "
            "Weights count as repetitions of rows: rescale sample_weight (for "
            "example to sum to the number of rows) or lower alpha."
        )
    scale = math.ldexp(scaled, -exponent)  # underflows quietly to 0.0
    # Below float32's smallest normal number the term is lost in the gradients.
    return scale if scale >= np.finfo(np.float32).tiny else 0.0


def user_total(total: float, exponent: int) -> float:
    """Rescaled weights' sum in the user's units (infinite beyond float64)."""
    with np.errstate(over="ignore"):  # 1e308-weights: an infinite count
        return float(np.ldexp(total, exponent))


def mean_score(log_likelihoods: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean; validation rows that all weigh zero get a plain mean."""
    weights = weights if weights.sum() > 0 else None
    return float(np.average(log_likelihoods, weights=weights))


def clear_gain(differences: np.ndarray, weights: np.ndarray) -> bool:
    """Whether per-row log-likelihood gains show a real improvement.

    A one-sided paired t-test at 97.5% over the validation rows (with Kish's
    effective number of rows under weights): early stopping picks the best of many
    epochs, so on a handful of validation rows a trained model "wins" by chance
    while it is far worse on new rows (a flow fitted to 8 rows: -5e7 nats). One row
    never shows a gain; an infinite gain or loss decides alone.
    """
    if not weights.sum() > 0:
        weights = np.ones_like(weights)
    differences = np.where(np.isnan(differences), 0.0, differences)  # -inf - -inf
    if np.isinf(differences).any():
        return bool(np.average(differences, weights=weights) > 0)
    w = weights / weights.sum()
    mean = float(w @ differences)
    n_effective = 1.0 / float(w @ w)
    if n_effective < 2 or mean <= 0:
        return False
    variance = float(w @ (differences - mean) ** 2) * n_effective / (n_effective - 1)
    standard_error = math.sqrt(variance / n_effective)
    return mean > stats.t.ppf(0.975, n_effective - 1) * standard_error


# Frames of these packages lie between a user's call and a warning raised in training
# (fit, scikit-learn's fit wrapper, meta-estimators, searches).
_INTERNAL = tuple(
    f"{Path(file).parent}{os.sep}" for file in (__file__, sklearn.__file__)
)


def caller_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` in the calling function that names the
    first frame outside skmade and scikit-learn: the user's line."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


def _optimizer(estimator, module, device, incremental):
    """Adam at ``learning_rate_init``; ``partial_fit`` keeps the one it had."""
    optimizer = getattr(estimator, "_optimizer", None) if incremental else None
    if optimizer is None or optimizer.param_groups[0]["params"][0] is not next(
        module.parameters()
    ):
        # The fused kernel makes one pass over each parameter: on a CPU it steps a
        # 784-4000-784 MADE ten times faster than the default (foreach) one, which
        # otherwise costs more than the forward and backward passes at batch 100.
        optimizer = torch.optim.Adam(
            module.parameters(),
            lr=estimator.learning_rate_init,
            fused=device.type in ("cpu", "cuda"),
        )
    for group in optimizer.param_groups:
        group["lr"] = estimator.learning_rate_init
    estimator._optimizer = optimizer
    return optimizer


def _mean_penalty(module) -> float:
    """The L2 term averaged over the masks (it changes slowly: once per epoch)."""
    return sum(module.penalty(k).item() for k in range(module.n_masks)) / module.n_masks


@torch.no_grad()
def _start_loss(estimator, module, family, start_rows, penalty_scale, device):
    """The loss per row of the untrained module, against which divergence is
    judged when there is no validation score to fall back on."""
    module.eval()
    nll = torch.zeros((), device=device, dtype=torch.float64)
    for x, w in start_rows.in_order(_START_LOSS_BATCH):
        log_prob = estimator._start_log_prob(module, family, x)
        nll -= (w.double() * log_prob.double().sum(dim=1)).sum()
    return nll.item() / start_rows.n_rows + penalty_scale * _mean_penalty(module)


def _epoch(estimator, module, family, rows, batch_size, generator, optimizer, scale):
    """One pass of Adam steps over ``rows``, a mask per step; the mean loss."""
    module.train()
    device = next(module.parameters()).device
    # Weights decaying towards zero become slow subnormal floats on a CPU.
    sweep = device.type == "cpu"
    total = torch.zeros((), device=device)
    for x, w in rows.batches(batch_size, generator):
        k = estimator.n_steps_ % module.n_masks
        log_prob = estimator._batch_log_prob(module, family, x, k, w, generator)
        loss = -(w * log_prob.sum(dim=1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        module.mask_grads(k, scale)
        optimizer.step()
        estimator.n_steps_ += 1
        if sweep and estimator.n_steps_ % _SWEEP_STEPS == 0:
            zero_vanishing(optimizer)
        total += loss.detach() * x.shape[0]
    estimator.n_iter_ += 1
    loss_value = total.item() / rows.n_rows
    if scale > 0:
        loss_value += scale * _mean_penalty(module)
    if not np.isfinite(loss_value):
        raise FloatingPointError(
            f"The training loss became {loss_value} at epoch {estimator.n_iter_}. "
            "Lower learning_rate_init, or check X for extreme values."
        )
    return loss_value


def train(
    estimator,
    module,
    family,
    rows,
    Z_val,
    weights_val,
    generator,
    incremental,
    penalty_scale,
    start_rows=None,
):
    """Train ``module`` on ``rows`` (:class:`~skmade._stream.InMemoryRows` or
    :class:`~skmade._stream.StreamedRows`) with ``estimator``'s training parameters.

    Updates the estimator's training state (``n_iter_``, ``n_steps_``,
    ``loss_curve_``, ``learning_rate_curve_``, ``validation_scores_``,
    ``best_validation_score_``, ``best_loss_``) and leaves the module at its best
    validation epoch (or at the start, where the validation rows cannot tell them
    apart). ``start_rows`` (default: ``rows``) give the loss of the start, against
    which divergence is judged.
    """
    device = next(module.parameters()).device
    if hasattr(module, "set_dropout"):  # hidden-unit dropout, where offered
        module.set_dropout(getattr(estimator, "dropout", 0.0), generator)
    if hasattr(module, "set_precision"):  # mixed-precision training, where offered
        mixed = getattr(estimator, "mixed_precision", False)
        module.set_precision(torch.bfloat16 if mixed else None)
    batch_size = estimator.batch_size
    if batch_size == "auto":
        batch_size = estimator._auto_batch_size(rows.n_rows)
    batch_size = min(batch_size, rows.n_rows)
    # On a small table an epoch is a few steps: the estimator may count patience
    # in steps too, so that the schedule and early stopping wait long enough.
    steps_per_epoch = max(1, math.ceil(rows.n_rows / batch_size))
    lr_steps, stop_steps = estimator._patience_steps
    lr_patience = max(_LR_PATIENCE, math.ceil(lr_steps / steps_per_epoch))
    stop_patience = max(
        estimator.n_iter_no_change, math.ceil(stop_steps / steps_per_epoch)
    )
    start_rows = rows if start_rows is None else start_rows
    optimizer = _optimizer(estimator, module, device, incremental)
    early_stopping = Z_val.shape[0] > 0 and not incremental
    scheduler = None
    if estimator.learning_rate == "adaptive" and not incremental:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=_LR_FACTOR,
            patience=lr_patience,
            threshold=estimator.tol,
            threshold_mode="abs",
        )
    # early_stopping='auto' keeps training only where held-out rows show that it
    # helps; a table too small to hold any out (two rows) keeps the start.
    unchecked = estimator.early_stopping == "auto" and Z_val.shape[0] == 0
    n_epochs = 1 if incremental else 0 if unchecked else estimator.max_iter
    start_loss = None
    if not early_stopping and not incremental and n_epochs:
        # Without a validation score to fall back on, a run whose loss ends far
        # above where it started has diverged (learning rate far too high) even
        # when the loss stays finite.
        start_loss = _start_loss(
            estimator, module, family, start_rows, penalty_scale, device
        )
    best_state = initial = best_rows = None
    if early_stopping:
        # The starting point competes too: a closed-form start (the Gaussian of
        # MADEDensity's direct path) can beat every epoch on a small table.
        scores = estimator._validation_log_likelihood(Z_val)
        score = mean_score(scores, weights_val)
        initial = (copy.deepcopy(module.state_dict()), scores, score)
        if score > estimator.best_validation_score_:
            estimator.best_validation_score_ = score
            best_state = initial[0]

    no_improvement = 0
    converged = False
    log = TrainingLog(estimator.verbose, n_epochs, display_name(estimator))
    with log:
        for _ in range(n_epochs):
            loss_value = _epoch(
                estimator,
                module,
                family,
                rows,
                batch_size,
                generator,
                optimizer,
                penalty_scale,
            )
            estimator.loss_curve_.append(loss_value)
            learning_rate = optimizer.param_groups[0]["lr"]
            estimator.learning_rate_curve_.append(learning_rate)
            score = None
            if early_stopping:
                scores = estimator._validation_log_likelihood(Z_val)
                score = mean_score(scores, weights_val)
                estimator.validation_scores_.append(score)
                improved = score >= estimator.best_validation_score_ + estimator.tol
                if score > estimator.best_validation_score_:
                    estimator.best_validation_score_ = score
                    best_state = copy.deepcopy(module.state_dict())
                    best_rows = scores
            else:
                improved = loss_value <= estimator.best_loss_ - estimator.tol
            no_improvement = 0 if improved else no_improvement + 1
            estimator.best_loss_ = min(estimator.best_loss_, loss_value)
            if scheduler is not None:
                scheduler.step(score if early_stopping else -loss_value)
            log.epoch(estimator.n_iter_, loss_value, learning_rate, score)
            if no_improvement > stop_patience:
                converged = True
                break

        if best_rows is not None and not clear_gain(
            best_rows - initial[1], weights_val
        ):
            # The validation rows cannot tell the trained model from the start
            # (a few rows, where the best of many epochs wins by chance): keep
            # the start.
            best_state, estimator.best_validation_score_ = initial[0], initial[2]
            log.message(
                "Training did not clearly beat the start on the validation rows: "
                "keeping the start."
            )
    if best_state is not None:
        module.load_state_dict(best_state)
    stopped_early = converged or incremental or not n_epochs
    _check_outcome(estimator, start_loss, stopped_early)


def _check_outcome(estimator, start_loss, stopped_early: bool) -> None:
    """Divergence raises; stopping at ``max_iter`` warns."""
    name = display_name(estimator)
    if start_loss is not None and (
        estimator.best_loss_ > start_loss + abs(start_loss) + _DIVERGED_NATS
    ):
        raise FloatingPointError(
            f"Training diverged: the loss rose from {start_loss:.4g} nats per row "
            f"at the start to {estimator.best_loss_:.4g} at best. Lower "
            f"learning_rate_init (now {estimator.learning_rate_init}), or check X "
            "for extreme values."
        )
    if not stopped_early:
        warnings.warn(
            f"{name} stopped at max_iter={estimator.max_iter} epochs before "
            "converging. Raise max_iter.",
            ConvergenceWarning,
            stacklevel=caller_stacklevel(),
        )
