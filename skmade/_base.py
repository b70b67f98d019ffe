"""The template of the torch density estimators: the fit transaction, scoring,
sampling and pickling.

:class:`TorchDensity` owns what the estimators share; a subclass supplies its
network and output family through a few hooks, as scikit-learn's
``mixture/_base.py`` does for its mixtures. Fit input (arrays, frames, dask) is read
and checked in :mod:`skmade._input`, the epochs run in :mod:`skmade._training`, and
the shared parameters are declared in :mod:`skmade._params`.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._columns import ColumnCodec
from ._dask import is_dask_collection, lazy_rows
from ._flows import MAF
from ._input import fit_source
from ._nn import MADE
from ._stream import as_float32_tensor
from ._training import AUTO_BATCH, train
from ._utils import display_name, restore_on_error

# Scoring runs the network on blocks of exactly this many rows (the last one padded
# with zeros): a float32 GEMM's rounding depends on the number of rows it multiplies,
# so without fixed blocks a row's score would change, by an ulp, with the rows
# scored beside it.
SCORE_BLOCK = 1024
# score_samples checks and converts large inputs in slices of this many rows (a
# multiple of SCORE_BLOCK, so that slicing changes no score).
SCORE_SLICE = 64 * SCORE_BLOCK


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
                f"{display_name(self)} does not model. {hint}"
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
                f"{display_name(self)} has no attribute {name!r} before fit; call "
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
                    f"{display_name(self)}, but {name} changed from {old!r} to "
                    f"{new!r}. Set warm_start=False to fit a new model."
                )

    def _fit_model(self, X, sample_weight, incremental):
        return self._start_and_train(
            fit_source(self, X, sample_weight, incremental), incremental
        )

    def _start_and_train(self, source, incremental):
        """Build the network (unless continuing) and train it on ``source``'s rows
        (see :class:`~skmade._input.FitSource`)."""
        (Z, weights), (Z_val, weights_val) = source.start, source.validation
        if source.continuing:
            module = self.module_.to(source.device)
        else:
            self._columns_ = source.codec
            self._reset_training_state(Z_val.shape[0] > 0)
            module = self._build_module(
                Z, weights, Z_val, weights_val, source.n_rows, source.hidden, source.rng
            ).to(source.device)
        if Z_val.shape[0] and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        self.module_ = module
        train(
            self,
            module,
            self._family(),
            source.rows,
            Z_val,
            weights_val,
            self._torch_generator(source.rng),
            incremental,
            source.penalty_scale,
            start_rows=source.start_rows,
        )
        self._after_training(module, Z, weights)
        module.eval()
        return self

    def _batch_log_prob(self, module, family, x, k, weights, generator):
        """Per-dimension log-likelihood terms of a training batch under mask ``k``.

        A hook for modules whose training forward pass depends on the batch's row
        weights (batch normalization) or draws from the training's ``generator``
        (an ordering per row).
        """
        log_prob = family.log_prob(module(family.encode(x), k), x)
        return log_prob[:, self._scored_columns()]

    def _start_log_prob(self, module, family, x):
        """Per-dimension log-likelihood terms of the untrained model (eval mode)."""
        log_prob = family.log_prob(module(family.encode(x), 0), x)
        return log_prob[:, self._scored_columns()]

    def _scored_columns(self) -> slice:
        """The model values whose conditionals make up the log-likelihood: all of
        them, or a conditional model's targets (its features are only conditioned
        on)."""
        return slice(None)

    # Patience in Adam steps, below which the learning-rate schedule and early
    # stopping do not act however many epochs pass: ``(schedule, stopping)``.
    _patience_steps = (0, 0)

    def _auto_batch_size(self, n_rows: int) -> int:
        """The minibatch of ``batch_size='auto'`` for ``n_rows`` training rows."""
        return AUTO_BATCH

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
        scored = self._scored_columns()
        jacobian = self._columns_.feature_log_jacobian()
        if jacobian is None:
            return out
        jacobian, missing = jacobian[scored], np.isnan(Z[:, scored])
        if missing.any():  # the Jacobian of the observed entries only
            return out + np.where(missing, 0.0, jacobian).sum(axis=1)
        return out + float(jacobian.sum())

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
