"""The template of the torch density estimators: fitting, training, scoring, sampling.

:class:`TorchDensity` owns everything the estimators share (input validation, the
validation split, the transactional fit, the training loop, chunked scoring, the
sampling prologue, pickling); a subclass supplies its network and output family
through a few hooks, as scikit-learn's ``mixture/_base.py`` does for its mixtures.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy import stats
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._columns import (
    ColumnCodec,
    ColumnSummary,
    check_frame_columns,
    frame_to_numeric,
)
from ._dask import frame_codes, is_dask_collection, is_dask_frame, lazy_rows
from ._flows import MAF
from ._nn import MADE, zero_vanishing
from ._stream import (
    InMemoryRows,
    RowStream,
    StreamedRows,
    as_float32_tensor,
    survey,
)
from ._utils import TrainingLog, restore_on_error


def _resolve_device(device) -> torch.device:
    """The torch device of the ``device`` parameter: ``'auto'`` (CUDA when available,
    else the CPU), any torch device string (``'cpu'``, ``'cuda'``, ``'cuda:1'``,
    ``'mps'``) or a :class:`torch.device`, checked to be usable here."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"device={device!r} is not a torch device. Use 'auto', 'cpu', 'cuda', "
            f"'cuda:1', 'mps' or a torch.device ({error})."
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but torch.cuda.is_available() is "
                "False. Use device='cpu' or device='auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible (indices "
                f"0 to {torch.cuda.device_count() - 1})."
            )
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device={device!r} was requested but "
                "torch.backends.mps.is_available() is False. Use device='cpu' or "
                "device='auto'."
            )
    elif resolved.type != "cpu":
        try:
            torch.empty(0, device=resolved)
        except (RuntimeError, AssertionError) as error:
            raise ValueError(
                f"device={device!r} cannot hold tensors here ({error}). Use "
                "device='cpu' or device='auto'."
            ) from None
    return resolved


# Scoring runs the network on blocks of exactly this many rows (the last one padded
# with zeros): a float32 GEMM's rounding depends on the number of rows it multiplies,
# so without fixed blocks a row's score would change, by an ulp, with the rows
# scored beside it.
SCORE_BLOCK = 256
# score_samples checks and converts large inputs in slices of this many rows (a
# multiple of SCORE_BLOCK, so that slicing changes no score).
SCORE_SLICE = 256 * SCORE_BLOCK


def row_blocks(Z: np.ndarray, device: torch.device, block: int = SCORE_BLOCK):
    """``(start, x, n)`` for each block of Z: float32 rows padded to ``block`` rows.

    ``x[:n]`` are rows ``start:start + n`` of Z; the padding rows are zeros.
    """
    for start in range(0, Z.shape[0], block):
        rows = Z[start : start + block]
        n = rows.shape[0]
        x = as_float32_tensor(rows, device)
        if n < block:
            x = torch.cat([x, x.new_zeros(block - n, x.shape[1])])
        yield start, x, n


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


def _user_total(total: float, exponent: int) -> float:
    """Rescaled weights' sum in the user's units (infinite beyond float64)."""
    with np.errstate(over="ignore"):  # 1e308-weights: an infinite count
        return float(np.ldexp(total, exponent))


def _mean_score(log_likelihoods: np.ndarray, weights: np.ndarray) -> float:
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


# Parameters every torch density shares, with the same meaning.

# Frames of these packages lie between a user's call and a warning raised in training
# (fit, scikit-learn's fit wrapper, meta-estimators, searches).
_INTERNAL = tuple(
    f"{Path(file).parent}{os.sep}" for file in (__file__, sklearn.__file__)
)


def _caller_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` in the calling function that names the
    first frame outside skmade and scikit-learn: the user's line."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


class _Count(Interval):
    """An integer range that refuses booleans (``True`` is an ``int`` in Python)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool | np.bool_) and super().is_satisfied_by(val)


def count(low: int) -> Interval:
    """The constraint of a count parameter: an integer of at least ``low``."""
    return _Count(Integral, low, None, closed="left")


TRAINING_CONSTRAINTS: dict = {
    "hidden_layer_sizes": ["array-like", count(1)],
    "max_iter": [count(1)],
    "batch_size": [StrOptions({"auto"}), count(1)],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "adaptive"})],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [count(1)],
    "tol": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "device": [str, torch.device],
}


# The 'adaptive' schedule: the rate is multiplied by _LR_FACTOR after _LR_PATIENCE
# epochs without progress (MLPClassifier divides by 5 after 2 epochs).
_LR_FACTOR = 0.5
_LR_PATIENCE = 2
# batch_size='auto': smaller batches were slightly better on every table measured
# (benchmarks/tabular.py) at about the same fit time, since fewer epochs are needed.
_AUTO_BATCH = 100
# Divergence without early stopping: the best epoch's loss is above the starting
# loss by its own magnitude plus this many nats per row. Scored in blocks of rows.
_DIVERGED_NATS = 10.0
_START_LOSS_BATCH = 4096
# Weights below skmade._nn.VANISHING are zeroed every this many steps on a CPU
# (see zero_vanishing): a sweep costs about one step of a 784-2000-784 MADE.
_SWEEP_STEPS = 50


class TorchDensity(DensityMixin, BaseEstimator, metaclass=ABCMeta):
    """Template: a torch density fitted by mini-batch maximum likelihood.

    The template owns :meth:`fit` and :meth:`partial_fit` (validation before any
    work, the column codec, the validation split, the transactional swap, the
    training loop with early stopping), :meth:`score_samples` and :meth:`score`
    (scoring in fixed blocks of rows, impossible values at ``-inf``) and the
    prologue and epilogue of :meth:`sample`. A subclass provides its parameters and
    these hooks:

    - ``_structure()``: the parameters that fix the network (a warm start must
      keep them);
    - ``_column_kinds(X, frame_categories)``: the family of every column, or a
      clear error for columns the estimator cannot model;
    - ``_build_module(Z, weights, Z_val, weights_val, n_rows, hidden, rng)``: a new
      network for model values ``Z`` (it may set fitted attributes such as
      ``orderings_``); it must have ``n_masks``, ``mask_grads``, ``penalty`` and
      ``to_arrays``;
    - ``_family()``: the output family the training loop uses (``encode`` and
      ``log_prob``);
    - ``_block_log_likelihood(module, x, **options)``: the log-density of a block of
      model values, float64, before the codec's log-Jacobian;
    - ``_draw(module, n_samples, rng, device)``: model values drawn exactly;

    and may override ``_check_parameters(n_features)`` (checks that need X's
    shape), ``_unknown_policy()``, ``_fit_columns``, ``_batch_log_prob`` and
    ``_after_training``. The training parameters (``max_iter``, ``batch_size``,
    ``learning_rate_init``, ``alpha``, ``early_stopping``, ``n_iter_no_change``,
    ``tol``, ``verbose``) have the same names and meanings in every subclass.
    """

    # ------------------------------------------------------------------ hooks

    @abstractmethod
    def _structure(self) -> dict:
        """See the class docstring."""

    @abstractmethod
    def _column_kinds(self, X: np.ndarray, frame_categories: dict) -> list[str]:
        """See the class docstring."""

    @abstractmethod
    def _build_module(self, Z, weights, Z_val, weights_val, n_rows, hidden, rng):
        """See the class docstring."""

    @abstractmethod
    def _family(self):
        """See the class docstring."""

    @abstractmethod
    def _block_log_likelihood(self, module, x: torch.Tensor, **options):
        """See the class docstring."""

    @abstractmethod
    def _draw(self, module, n_samples: int, rng, device) -> torch.Tensor:
        """See the class docstring."""

    def _check_parameters(self, n_features: int) -> None:
        """Checks of parameters against X's shape, before any work."""

    def _unknown_policy(self) -> str:
        """What scoring does with values the model gives no probability."""
        return "error"

    def _allows_missing(self) -> bool:
        """Whether X may hold missing entries (NaN) when fitting and scoring."""
        return False

    def _validated(self, X, *, reset: bool, block=False, **options) -> np.ndarray:
        """``validate_data`` that lets NaN through only where the model allows it,
        with an error that says how to get there otherwise.

        ``block=True``: one block of rows of a stream, whose columns were checked
        once for the whole stream (no name check; it may hold no rows)."""
        check = dict(dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")
        if block:
            X = check_array(X, ensure_min_samples=0, **check, **options)
        else:
            X = validate_data(self, X, reset=reset, **check, **options)
        if not self._allows_missing() and np.isnan(X).any():
            hint = (
                "Set allow_missing=True to train on and score rows with missing "
                "entries (their marginal likelihood), or impute them first "
                "(skmade.MADEImputer)."
                if "allow_missing" in self.get_params()
                else "Impute or drop them first."
            )
            raise ValueError(
                f"Input X contains NaN (missing values), which this "
                f"{type(self).__name__} does not model. {hint}"
            )
        return X

    def _fit_columns(self, X, weights, kinds, frame_categories) -> ColumnCodec:
        return ColumnCodec.fit(X, weights, kinds, frame_categories)

    def _after_training(self, module, Z: np.ndarray, weights: np.ndarray) -> None:
        """Work on the trained network before it is put in eval mode."""

    # ------------------------------------------------------------------ fitted state

    def _fitted_columns(self, name: str) -> ColumnCodec:
        """The column codec, for a fitted attribute that reads it."""
        try:
            return self.__dict__["_columns_"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} before fit; call "
                "fit first."
            ) from None

    @property
    def mean_(self):
        """Per-feature mean used to standardize continuous columns (or None)."""
        return self._fitted_columns("mean_").mean

    @property
    def scale_(self):
        """Per-feature standard deviation used to standardize (or None)."""
        return self._fitted_columns("scale_").scale

    @staticmethod
    def _torch_generator(rng) -> torch.Generator:
        seed = int(rng.randint(np.iinfo(np.int32).max))
        return torch.Generator().manual_seed(seed)

    def _train(
        self,
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
        :class:`~skmade._stream.StreamedRows`); ``start_rows`` (default: ``rows``)
        give the loss of the start, against which divergence is judged."""
        device = next(module.parameters()).device
        if hasattr(module, "set_dropout"):  # hidden-unit dropout, where offered
            module.set_dropout(getattr(self, "dropout", 0.0), generator)
        if hasattr(module, "set_precision"):  # mixed-precision training, where offered
            mixed = getattr(self, "mixed_precision", False)
            module.set_precision(torch.bfloat16 if mixed else None)
        n_train = rows.n_rows
        batch_size = _AUTO_BATCH if self.batch_size == "auto" else self.batch_size
        batch_size = min(batch_size, n_train)
        start_rows = rows if start_rows is None else start_rows
        optimizer = getattr(self, "_optimizer", None) if incremental else None
        if optimizer is None or optimizer.param_groups[0]["params"][0] is not next(
            module.parameters()
        ):
            # The fused kernel makes one pass over each parameter: on a CPU it
            # steps a 784-4000-784 MADE ten times faster than the default
            # (foreach) one, which otherwise costs more than the forward and
            # backward passes at batch 100.
            optimizer = torch.optim.Adam(
                module.parameters(),
                lr=self.learning_rate_init,
                fused=device.type in ("cpu", "cuda"),
            )
        for group in optimizer.param_groups:
            group["lr"] = self.learning_rate_init
        self._optimizer = optimizer
        early_stopping = Z_val.shape[0] > 0 and not incremental
        scheduler = None
        if self.learning_rate == "adaptive" and not incremental:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="max",
                factor=_LR_FACTOR,
                patience=_LR_PATIENCE,
                threshold=self.tol,
                threshold_mode="abs",
            )
        n_masks = module.n_masks
        # Weights decaying towards zero become slow subnormal floats on a CPU.
        sweep = device.type == "cpu"
        best_state = None
        # early_stopping='auto' keeps training only where held-out rows show that it
        # helps; a table too small to hold any out (two rows) keeps the start.
        unchecked = self.early_stopping == "auto" and Z_val.shape[0] == 0
        n_epochs = 1 if incremental else 0 if unchecked else self.max_iter
        no_improvement = 0
        converged = False
        start_loss = None
        if not early_stopping and not incremental and n_epochs:
            # Without a validation score to fall back on, a run whose loss ends far
            # above where it started has diverged (learning rate far too high) even
            # when the loss stays finite.
            with torch.no_grad():
                module.eval()
                nll = torch.zeros((), device=device, dtype=torch.float64)
                for x, w in start_rows.in_order(_START_LOSS_BATCH):
                    log_prob = self._start_log_prob(module, family, x)
                    nll -= (w.double() * log_prob.double().sum(dim=1)).sum()
                penalty = sum(module.penalty(k).item() for k in range(n_masks))
                start_loss = nll.item() / start_rows.n_rows
                start_loss += penalty_scale * penalty / n_masks
        initial = best_rows = None
        if early_stopping:
            # The starting point competes too: a closed-form start (the Gaussian of
            # MADEDensity's direct path) can beat every epoch on a small table.
            scores = self._validation_log_likelihood(Z_val)
            score = _mean_score(scores, weights_val)
            initial = (copy.deepcopy(module.state_dict()), scores, score)
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                best_state = initial[0]

        log = TrainingLog(self.verbose, n_epochs, type(self).__name__)
        with log:
            for _ in range(n_epochs):
                module.train()
                total = torch.zeros((), device=device)
                for x, w in rows.batches(batch_size, generator):
                    k = self.n_steps_ % n_masks
                    log_prob = self._batch_log_prob(
                        module, family, x, k, w, generator
                    ).sum(dim=1)
                    loss = -(w * log_prob).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    module.mask_grads(k, penalty_scale)
                    optimizer.step()
                    self.n_steps_ += 1
                    if sweep and self.n_steps_ % _SWEEP_STEPS == 0:
                        zero_vanishing(optimizer)
                    total += loss.detach() * x.shape[0]
                self.n_iter_ += 1
                loss_value = total.item() / n_train
                if penalty_scale > 0:
                    # The L2 term changes slowly: evaluate it once per epoch, averaged
                    # over the masks, rather than at every step.
                    penalty = sum(module.penalty(k).item() for k in range(n_masks))
                    loss_value += penalty_scale * penalty / n_masks
                if not np.isfinite(loss_value):
                    raise FloatingPointError(
                        f"The training loss became {loss_value} at epoch "
                        f"{self.n_iter_}. Lower learning_rate_init, or check X for "
                        "extreme values."
                    )
                self.loss_curve_.append(loss_value)
                learning_rate = optimizer.param_groups[0]["lr"]
                self.learning_rate_curve_.append(learning_rate)
                score = None

                if early_stopping:
                    scores = self._validation_log_likelihood(Z_val)
                    score = _mean_score(scores, weights_val)
                    self.validation_scores_.append(score)
                    if score < self.best_validation_score_ + self.tol:
                        no_improvement += 1
                    else:
                        no_improvement = 0
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best_state = copy.deepcopy(module.state_dict())
                        best_rows = scores
                else:
                    if loss_value > self.best_loss_ - self.tol:
                        no_improvement += 1
                    else:
                        no_improvement = 0
                self.best_loss_ = min(self.best_loss_, loss_value)
                if scheduler is not None:
                    scheduler.step(score if early_stopping else -loss_value)
                log.epoch(self.n_iter_, loss_value, learning_rate, score)
                if no_improvement > self.n_iter_no_change:
                    converged = True
                    break

            if best_rows is not None and not clear_gain(
                best_rows - initial[1], weights_val
            ):
                # The validation rows cannot tell the trained model from the start
                # (a few rows, where the best of many epochs wins by chance): keep
                # the start.
                best_state, self.best_validation_score_ = initial[0], initial[2]
                log.message(
                    "Training did not clearly beat the start on the validation rows: "
                    "keeping the start."
                )
        if best_state is not None:
            module.load_state_dict(best_state)
        if start_loss is not None and (
            self.best_loss_ > start_loss + abs(start_loss) + _DIVERGED_NATS
        ):
            raise FloatingPointError(
                f"Training diverged: the loss rose from {start_loss:.4g} nats per row "
                f"at the start to {self.best_loss_:.4g} at best. Lower "
                f"learning_rate_init (now {self.learning_rate_init}), or check X for "
                "extreme values."
            )
        if not converged and not incremental and n_epochs:
            warnings.warn(
                f"{type(self).__name__} stopped at max_iter={self.max_iter} epochs "
                "before converging. Raise max_iter.",
                ConvergenceWarning,
                stacklevel=_caller_stacklevel(),
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model to X by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (see the estimator's families for the values it takes).

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the log-likelihood.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train for one epoch over X, continuing from the current state.

        The first call initializes the model from X (standardization, masks,
        weights) as :meth:`fit` would; later calls keep the network, the optimizer's
        state and the shuffling stream. ``early_stopping`` is not applied: call
        :meth:`score` on your own validation data between calls, and change
        ``learning_rate_init`` with :meth:`set_params` between calls for a schedule
        (the optimizer picks up the new rate).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data for this epoch.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the log-likelihood.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, sample_weight, incremental=True)

    def _hidden_sizes(self) -> tuple[int, ...]:
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if sizes.size == 0:
            return ()
        if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.number):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers; got "
                f"{self.hidden_layer_sizes!r}."
            )
        if np.any(sizes != np.round(sizes)) or np.any(sizes < 1):
            raise ValueError(
                "hidden_layer_sizes must contain positive integers; got "
                f"{self.hidden_layer_sizes!r}."
            )
        return tuple(int(s) for s in sizes)

    def _n_validation(self, n_samples: int, incremental: bool) -> int:
        """Rows held out for early stopping (none for ``partial_fit``).

        ``early_stopping='auto'`` holds rows out whenever the split leaves at least
        one for validation and two for training.
        """
        if not self.early_stopping or incremental:
            return 0
        n_validation = max(1, math.floor(self.validation_fraction * n_samples))
        feasible = n_validation >= 1 and n_samples - n_validation >= 2
        if self.early_stopping == "auto":
            return n_validation if feasible else 0
        if not feasible:
            raise ValueError(
                f"early_stopping=True with validation_fraction="
                f"{self.validation_fraction} splits {n_samples} rows into "
                f"{n_samples - n_validation} for training and {n_validation} for "
                "validation; at least 2 and 1 are needed. Provide more rows, "
                "change validation_fraction or set early_stopping=False."
            )
        return n_validation

    def _fit_rng(self, incremental: bool, continuing: bool):
        """The random stream of this fit; ``partial_fit`` calls share one."""
        if not incremental:
            return check_random_state(self.random_state)
        if not continuing or not hasattr(self, "_incremental_rng"):
            self._incremental_rng = check_random_state(self.random_state)
        return self._incremental_rng

    def _fit(self, X, sample_weight, incremental):
        """Fit as one transaction: any exception (bad input, divergence, an
        interrupt) leaves the estimator exactly as it was, and a fresh one unfitted."""
        continuing = (self.warm_start or incremental) and hasattr(self, "module_")
        with restore_on_error(self, deep=continuing):
            return self._fit_model(X, sample_weight, incremental)

    def _check_unchanged_structure(self) -> None:
        for name, new in self._structure().items():
            old = self._fitted_structure[name]
            if old != new:
                raise ValueError(
                    f"warm_start=True continues training the fitted "
                    f"{type(self).__name__}, but {name} changed from {old!r} to "
                    f"{new!r}. Set warm_start=False to fit a new model."
                )

    def _check_fit_input(self, X, sample_weight, incremental):
        """Validate everything before any work; returns what training needs."""
        continuing = (self.warm_start or incremental) and hasattr(self, "module_")
        if continuing:
            self._check_unchanged_structure()
        hidden = self._hidden_sizes()
        allow_missing = self._allows_missing()
        if continuing:
            codec = self._columns_
            frame_categories = codec.frame_categories
            X = codec.read_frame(
                X,
                getattr(self, "feature_names_in_", None),
                allow_missing=allow_missing,
            )
        else:
            X, frame_categories = frame_to_numeric(X, allow_missing=allow_missing)
        X = self._validated(X, ensure_min_samples=2, reset=not continuing)
        weights, weight_exponent = check_weights(sample_weight, X)
        if continuing:
            codec.check_values(X)
            kinds = list(codec.kinds)
        else:
            kinds = self._column_kinds(X, frame_categories)
        self._check_parameters(X.shape[1])
        return {
            "X": X,
            "weights": weights,
            "weight_exponent": weight_exponent,
            "hidden": hidden,
            "kinds": kinds,
            "frame_categories": frame_categories,
            "n_validation": self._n_validation(X.shape[0], incremental),
            "device": _resolve_device(self.device),
            "continuing": continuing,
        }

    def _fit_model(self, X, sample_weight, incremental):
        if is_dask_collection(X):
            return self._fit_stream(X, sample_weight, incremental)
        checked = self._check_fit_input(X, sample_weight, incremental)
        continuing, n_validation = checked["continuing"], checked["n_validation"]
        device = checked["device"]
        rng = self._fit_rng(incremental, continuing)
        X, weights, X_val, weights_val = self._split(
            checked["X"], checked["weights"], n_validation, rng
        )
        penalty_scale = l2_scale(self.alpha, weights, checked["weight_exponent"])
        if continuing:
            codec = self._columns_
        else:
            codec = self._fit_columns(
                X, weights, checked["kinds"], checked["frame_categories"]
            )
        Z, Z_val = codec.to_internal(X), codec.to_internal(X_val)
        return self._start_and_train(
            codec,
            InMemoryRows(Z, weights, device),
            (Z, weights),
            (Z_val, weights_val),
            _user_total(weights.sum(), checked["weight_exponent"]),
            rng,
            penalty_scale,
            incremental=incremental,
            continuing=continuing,
            hidden=checked["hidden"],
            device=device,
        )

    def _start_and_train(
        self,
        codec,
        rows,
        start,
        validation,
        n_rows,
        rng,
        penalty_scale,
        *,
        incremental,
        continuing,
        hidden,
        device,
    ):
        """Build the network (unless continuing) and train it on ``rows``.

        ``start`` are the rows (model values, weights) that the data-dependent start
        and :meth:`_after_training` read, ``validation`` the held-out rows, and
        ``n_rows`` the training weights' total in the user's units.
        """
        (Z, weights), (Z_val, weights_val) = start, validation
        if continuing:
            module = self.module_.to(device)
        else:
            self._columns_ = codec
            self._reset_training_state(Z_val.shape[0] > 0)
            module = self._build_module(
                Z, weights, Z_val, weights_val, n_rows, hidden, rng
            ).to(device)
        if Z_val.shape[0] and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        self.module_ = module
        self._train(
            module,
            self._family(),
            rows,
            Z_val,
            weights_val,
            self._torch_generator(rng),
            incremental,
            penalty_scale,
            start_rows=InMemoryRows(Z, weights, device)
            if isinstance(rows, StreamedRows)
            else rows,
        )
        self._after_training(module, Z, weights)
        module.eval()
        return self

    def _fit_stream(self, X, sample_weight, incremental):
        """Fit on a dask array block by block (see :mod:`skmade._stream`): a first
        pass checks every block and gathers the column state and the validation
        and start rows; the epochs read the blocks again."""
        continuing = (self.warm_start or incremental) and hasattr(self, "module_")
        if continuing:
            self._check_unchanged_structure()
        hidden = self._hidden_sizes()
        name = type(self).__name__
        codec = self._columns_ if continuing else None
        frame_categories, names = {}, None
        if is_dask_frame(X):  # categorical columns as codes, rows counted
            if continuing:
                check_frame_columns(X._meta, getattr(self, "feature_names_in_", None))
            X, sample_weight, frame_categories, names = frame_codes(
                X,
                sample_weight,
                codec.frame_categories if continuing else None,
                self._allows_missing(),
                name,
            )

        def check(block):
            block = self._validated(block, reset=False, block=True)
            if codec is not None:
                codec.check_values(block)
            return block

        stream = RowStream(X, sample_weight, check, name)
        if stream.n_rows < 2:
            raise ValueError(
                f"Found array with {stream.n_rows} sample(s) while a minimum of 2 "
                f"is required by {name}."
            )
        if continuing and stream.n_features != self.n_features_in_:
            raise ValueError(
                f"X has {stream.n_features} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )
        self._check_parameters(stream.n_features)
        n_validation = self._n_validation(stream.n_rows, incremental)
        device = _resolve_device(self.device)
        exponent = 0
        if stream.weights is not None:
            top = stream.weights.max()
            top = float(top.compute() if hasattr(top, "compute") else top)
            if top == 0:
                raise ValueError(
                    "sample_weight must contain at least one non-zero number: "
                    "every row has weight zero."
                )
            if np.isfinite(top) and top > 0:
                exponent = int(np.frexp(top)[1])

        def weigh(block, w):
            if w is None:
                return np.full(block.shape[0], np.ldexp(1.0, -exponent))
            w = _check_sample_weight(
                w, block, dtype=np.float64, ensure_non_negative=True
            )
            return np.ldexp(w, -exponent)

        if not continuing:
            self.n_features_in_ = stream.n_features
            self.__dict__.pop("feature_names_in_", None)
            if names is not None:
                self.feature_names_in_ = names
        rng = self._fit_rng(incremental, continuing)
        summary = ColumnSummary(stream.n_features)
        held, seeds, (X_val, w_val), (X_start, w_start), total = survey(
            stream, summary, n_validation, weigh, rng
        )
        penalty_scale = l2_scale(self.alpha, np.array([total]), exponent)
        if not continuing:
            kinds = self._column_kinds(summary, frame_categories)
            codec = self._fit_columns(summary, None, kinds, frame_categories)
        Z_val, Z_start = codec.to_internal(X_val), codec.to_internal(X_start)
        return self._start_and_train(
            codec,
            StreamedRows(stream, held, seeds, codec.to_internal, weigh, total, device),
            (Z_start, w_start),
            (Z_val, w_val),
            _user_total(total, exponent),
            rng,
            penalty_scale,
            incremental=incremental,
            continuing=continuing,
            hidden=hidden,
            device=device,
        )

    def _batch_log_prob(self, module, family, x, k, weights, generator):
        """Per-dimension log-likelihood terms of a training batch under mask ``k``.

        A hook for modules whose training forward pass depends on the batch's row
        weights (batch normalization) or draws from the training's ``generator``
        (an ordering per row).
        """
        return family.log_prob(module(family.encode(x), k), x)

    def _start_log_prob(self, module, family, x):
        """Per-dimension log-likelihood terms of the untrained model (eval mode)."""
        return family.log_prob(module(family.encode(x), 0), x)

    @staticmethod
    def _split(X, weights, n_validation, rng):
        """``(X, weights, X_val, weights_val)`` with ``n_validation`` rows held out.

        Draws from ``rng`` only when rows are held out, so that without a split the
        model does not depend on the number of rows (weighted and repeated rows fit
        the same network).
        """
        if not n_validation:
            return X, weights, X[:0], weights[:0]
        permutation = rng.permutation(X.shape[0])
        validation_rows = permutation[:n_validation]
        train_rows = np.sort(permutation[n_validation:])
        return (
            X[train_rows],
            weights[train_rows],
            X[validation_rows],
            weights[validation_rows],
        )

    def _reset_training_state(self, early_stopping: bool) -> None:
        self._fitted_structure = self._structure()
        self.loss_curve_ = []
        self.learning_rate_curve_ = []
        self.validation_scores_ = [] if early_stopping else None
        self.best_validation_score_ = -np.inf if early_stopping else None
        self.best_loss_ = np.inf
        self.n_iter_ = 0
        self.n_steps_ = 0

    @staticmethod
    def _check_n_samples(n_samples) -> None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
            raise ValueError(
                f"n_samples must be a positive integer; got {n_samples!r}."
            )
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples}.")

    def _validation_log_likelihood(self, Z: np.ndarray) -> np.ndarray:
        """Log-likelihoods that early stopping monitors (the model's, by default)."""
        return self._log_likelihood(Z)

    # ------------------------------------------------------------------ inference

    def _scoring_input(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """Model values of X and the ``(n, D)`` mask of impossible entries (or None);
        see :meth:`ColumnCodec.scoring_values`."""
        X = self._read_input(X)
        return self._columns_.scoring_values(X, self._unknown_policy())

    def _read_input(self, X) -> np.ndarray:
        """X as validated numbers in the user's units (frame categories as codes)."""
        check_is_fitted(self)
        X = self._columns_.read_frame(
            X,
            getattr(self, "feature_names_in_", None),
            self._unknown_policy(),
            self._allows_missing(),
        )
        return self._validated(X, reset=False)

    @torch.no_grad()
    def _log_likelihood(self, Z: np.ndarray, **options) -> np.ndarray:
        """Log-density of model values, in the units of X, in fixed row blocks."""
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        out = np.empty(Z.shape[0], dtype=np.float64)
        for start, x, n in row_blocks(Z, device):
            log_density = self._block_log_likelihood(module, x, **options)
            out[start : start + n] = log_density[:n].cpu().numpy()
        missing = np.isnan(Z)
        if missing.any():  # the Jacobian of the observed entries only
            jacobian = self._columns_.feature_log_jacobian()
            if jacobian is None:
                return out
            return out + np.where(missing, 0.0, jacobian).sum(axis=1)
        return out + self._columns_.log_jacobian()

    @lazy_rows()
    def score_samples(self, X):
        """Log-density of each row under the model, in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate. A dask array stays lazy (see Returns).

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(x)`` of each row: a log-probability for discrete data, a
            log-density in the units of X for continuous data. Rows the model gives
            probability zero get ``-inf``. For a dask array X, a dask array with
            X's row chunks, computed block by block where the blocks live (the
            fitted model enters the task graph once).
        """
        X = self._read_input(X)
        log_density = np.empty(X.shape[0], dtype=np.float64)
        # Slices of whole score blocks: the same values as one pass, with the
        # checks and conversions of a slice in cache and no table-sized copies.
        for start in range(0, X.shape[0], SCORE_SLICE):
            rows = X[start : start + SCORE_SLICE]
            Z, impossible = self._columns_.scoring_values(rows, self._unknown_policy())
            scores = self._log_likelihood(Z)
            if impossible is not None:
                scores[impossible.any(axis=1)] = -np.inf
            log_density[start : start + rows.shape[0]] = scores
        return log_density

    @torch.no_grad()
    def sample(self, n_samples=1, random_state=None):
        """Draw rows exactly from the fitted density.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seeds the draw. ``None`` uses numpy's global random state, as
            :meth:`sklearn.neighbors.KernelDensity.sample` does.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            The drawn rows, in the units of the training data.
        """
        check_is_fitted(self)
        self._check_n_samples(n_samples)
        rng = check_random_state(random_state)
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        Z = self._draw(module, n_samples, rng, device)
        X = self._columns_.from_internal(Z.cpu().double().numpy())
        return self._columns_.output(X, getattr(self, "feature_names_in_", None))

    def score(self, X, y=None):
        """Mean log-likelihood of the rows of X.

        This is the mean, as in :class:`~sklearn.mixture.GaussianMixture`, not the
        sum returned by :class:`~sklearn.neighbors.KernelDensity`, so that scores of
        data sets of different sizes compare.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples` over the rows of X (for a dask array,
            computed blockwise: only the mean comes back).
        """
        scores = self.score_samples(X)
        if is_dask_collection(scores):
            return float(scores.mean().compute())
        return float(np.mean(scores))

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        """The state without torch objects: the network as numpy arrays.

        Pickle, joblib and ``skops.io`` all save this; a loaded model sits on the
        CPU. The optimizer's state refers to the live parameters, so a loaded
        model's next ``partial_fit`` starts a fresh optimizer.
        """
        state = dict(super().__getstate__())  # may be the live __dict__: copy
        state.pop("_optimizer", None)
        module = state.get("module_")
        if module is not None:
            state["module_"] = {"type": type(module).__name__, **module.to_arrays()}
        return state

    def __setstate__(self, state):
        state = dict(state)
        arrays = state.get("module_")
        if isinstance(arrays, dict):
            arrays = dict(arrays)
            module_class = {"MADE": MADE, "MAF": MAF}[arrays.pop("type")]
            state["module_"] = module_class.from_arrays(arrays).eval()
        super().__setstate__(state)
