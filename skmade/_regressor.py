"""MADERegressor: conditional densities ``p(y | X)`` with the scikit-learn API.

The model is one MADE over the columns ``(X, y)`` whose orderings put every feature
before every target, and whose hidden units all have degrees of at least the number
of features: every hidden unit sees every feature, and the outputs of target ``y_j``
see the features and the targets before it. Only the targets' conditionals enter the
likelihood, so the network's outputs are exactly the autoregressive factors of
``p(y | x) = prod_j p(y_j | x, y_<j)``: normalized for every ``x``, multi-modal with
mixtures of Gaussians, and joint over several targets of any column type. With
direct connections the Gaussian start is the linear-Gaussian regression of ``y`` on
``x`` (and on the earlier targets), computed in closed form.

The joint model is a :class:`~skmade.MADEDensity` with a few hooks changed
(:class:`~skmade._conditional_model.ConditionalMADE`), so the training recipe, the
column codec, the transaction and persistence are MADEDensity's own; this module
reads ``X`` and ``y`` into one table (:mod:`skmade._xy`) and answers the regression
questions (means, quantiles, intervals, draws, class probabilities) from the
targets' conditionals.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _num_samples,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._columns import _is_frame
from ._conditional_model import ConditionalMADE, mixture_quantiles
from ._params import TRAINING_CONSTRAINTS, count
from ._xy import joint_table, placeholder_targets, read_targets

# predict with several targets averages this many draws per row (a fixed seed, so
# that predictions are deterministic); quantiles of several targets use more.
_MEAN_DRAWS = 256
_QUANTILE_DRAWS = 2000


class MADERegressor(RegressorMixin, BaseEstimator):
    """Probabilistic regression: the full conditional density ``p(y | X)``.

    A MADE whose features enter every hidden unit and whose targets are its
    autoregressive variables, so that ``p(y | x)`` is exact and normalized for every
    ``x``: a mixture of Gaussians per continuous target (heteroscedastic and
    multi-modal), a categorical or Bernoulli distribution per discrete one, joint
    over several targets. It is a regressor in scikit-learn's sense
    (:class:`~sklearn.base.RegressorMixin`, ``predict`` gives the conditional mean),
    and answers what point regressors cannot: :meth:`score_samples` gives
    ``log p(y | x)`` per row, :meth:`predict_quantiles` and
    :meth:`predict_interval` give exact conditional quantiles, :meth:`sample`
    draws ``y`` given ``x``.

    :meth:`score` is the mean conditional log-likelihood, a proper scoring rule, so
    that :class:`~sklearn.model_selection.GridSearchCV` selects the best
    distribution, not the best mean; pass ``scoring="r2"`` for the R² of
    :meth:`predict`.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100, 100)
        Widths of the hidden layers. The regression defaults (two layers,
        ``learning_rate_init=3e-3``, ``n_iter_no_change=30``, ``dropout=0.1`` and
        the training length below) were chosen on validation rows of the UCI
        regression tables (``benchmarks/regression.py``); MADEDensity's one-layer
        recipe underfit there.

    distribution : 'auto' or list of str, default='auto'
        The family of each target: ``'gaussian'`` (a mixture of ``n_components``
        Gaussians), ``'categorical'`` or ``'bernoulli'``, or ``'auto'``:
        categorical for pandas categorical, object or string targets, Gaussian for
        numbers (as scikit-learn regressors treat numeric targets). A list gives
        one entry per target column. Features are standardized, and one-hot coded
        where they are pandas categorical or string columns.

    n_components : int, default=5
        Gaussians in each continuous target's conditional mixture (1: a Gaussian
        with a mean and a scale that depend on ``x``).

    max_categories : int, default=20
        Largest number of categories a categorical column may have.

    handle_unknown : {'error', 'ignore'}, default='error'
        A category not seen in fit (a feature's or a target's): raise, or give
        the row ``-inf`` in :meth:`score_samples`.

    n_masks : int, default=1
        Masks trained with shared weights; inference mixes them
        (``log mean_k p_k(y | x)``, each ``p_k`` normalized).

    order_agnostic : bool, default=False
        With several masks and targets, give each mask its own ordering of the
        targets (the features always come first).

    direct_connections : bool or 'auto', default='auto'
        Linear connections from the inputs to the outputs; they hold the
        linear-Gaussian regression the fit starts from. ``'auto'``: on unless a
        column is categorical.

    dropout : float, default=0.1
        Dropout rate of the hidden units during training. 0.1 was chosen on
        validation rows of the UCI tables among 0, 0.1 and 0.2 (and against more
        masks or a larger L2): without it the long fits of small tables are
        overconfident (90% intervals covering 80%; validation NLL yacht 0.07 ->
        -0.05, concrete 3.07 -> 2.84, energy 0.40 -> 0.18 with it).

    max_iter, batch_size, learning_rate, learning_rate_init, alpha, \
early_stopping, validation_fraction, n_iter_no_change, tol, random_state, \
verbose, warm_start, device
        The training recipe of :class:`~skmade.MADEDensity` (see there): Adam with
        an adaptive rate, an L2 penalty ``alpha`` per row of data, early stopping
        on held-out rows. Regression tables are often small, so two things differ:
        ``batch_size='auto'`` is 32 rows up to 3,200 training rows, growing to 100
        at 10,000; and patience is counted in Adam steps as well as epochs: the
        rate is halved only after at least 500 steps without progress, and early
        stopping waits ``n_iter_no_change`` epochs and at least 3,000 steps. On
        the UCI tables this took validation NLL from 1.51 to 0.07 (yacht) and
        0.86 to 0.40 (energy).

    Attributes
    ----------
    model_ : MADEDensity
        The fitted joint model of ``(X, y)`` (its likelihood is that of the
        targets given the features).

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when X was a DataFrame with string column names.

    n_targets_ : int
        Number of target columns.

    target_distributions_ : ndarray of str
        Family of each target.

    classes_ : ndarray
        Values of the target, when it is a single discrete column.

    n_iter_ : int
        Epochs run.

    Examples
    --------
    >>> import numpy as np
    >>> from skmade import MADERegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(500, 1))
    >>> y = np.sin(2 * X[:, 0]) + (0.1 + 0.2 * np.abs(X[:, 0])) * rng.randn(500)
    >>> model = MADERegressor(random_state=0).fit(X, y)
    >>> model.predict_interval(X[:2], coverage=0.9).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        "distribution": [StrOptions({"auto"}), "array-like"],
        "n_components": [count(1)],
        "max_categories": [count(2)],
        "handle_unknown": [StrOptions({"error", "ignore"})],
        "n_masks": [count(1)],
        "order_agnostic": ["boolean"],
        "direct_connections": ["boolean", StrOptions({"auto"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        hidden_layer_sizes=(100, 100),
        distribution="auto",
        n_components=5,
        max_categories=20,
        handle_unknown="error",
        n_masks=1,
        order_agnostic=False,
        direct_connections="auto",
        dropout=0.1,
        max_iter=1000,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init=3e-3,
        alpha=1.0,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=30,
        tol=1e-4,
        random_state=None,
        verbose=False,
        warm_start=False,
        device="auto",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.distribution = distribution
        self.n_components = n_components
        self.max_categories = max_categories
        self.handle_unknown = handle_unknown
        self.n_masks = n_masks
        self.order_agnostic = order_agnostic
        self.direct_connections = direct_connections
        self.dropout = dropout
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ input

    def _read_targets(self, y, fitting: bool):
        Y, one_d = read_targets(y, type(self).__name__)
        if fitting:
            self._targets_1d = one_d
        elif Y.shape[1] != self.n_targets_:
            raise ValueError(
                f"y has {Y.shape[1]} target columns, but this {type(self).__name__} "
                f"was fitted with {self.n_targets_}."
            )
        return Y

    def _joint(self, X, Y, fitting: bool):
        """One table: the features, then the targets (a DataFrame when either
        has categorical or string columns, or when fit saw one)."""
        X_frame = _is_frame(X)
        if not X_frame:
            X = check_array(X, dtype=np.float64)
        validate_data(self, X, skip_check_array=True, reset=fitting)
        check_consistent_length(X, Y)
        if fitting:
            self._joint_is_frame = X_frame or _is_frame(Y)
        return joint_table(X, Y, self._joint_is_frame)

    def _features(self, X) -> np.ndarray:
        """Model values of the query rows (targets at a placeholder)."""
        check_is_fitted(self)
        n = _num_samples(X)
        placeholder = placeholder_targets(
            self.model_._columns_, self.n_features_in_, self._joint_is_frame, n
        )
        joint = self._joint(X, placeholder, fitting=False)
        Z, _ = self.model_._scoring_input(joint)
        return Z

    # ------------------------------------------------------------------ fitting

    def _target_spec(self, n_targets: int) -> list:
        if isinstance(self.distribution, str):
            return [self.distribution] * n_targets
        spec = list(np.asarray(self.distribution, dtype=object).ravel())
        if len(spec) != n_targets:
            raise ValueError(
                f"distribution has {len(spec)} entries but y has {n_targets} "
                "columns; give one per target column, or a single string."
            )
        return spec

    def _orderings(self, n_features: int, n_targets: int) -> np.ndarray:
        rng = check_random_state(self.random_state)
        orderings = np.empty((self.n_masks, n_features + n_targets), dtype=np.int64)
        for k in range(self.n_masks):
            targets = np.arange(n_targets)
            if self.order_agnostic and k > 0:
                targets = rng.permutation(n_targets)
            orderings[k] = np.concatenate([np.arange(n_features), n_features + targets])
        return orderings

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit ``p(y | X)`` by maximum conditional likelihood.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features; DataFrame categorical or string columns are one-hot coded.

        y : array-like, Series or DataFrame of shape (n_samples,) or \
                (n_samples, n_targets)
            Targets (no missing values).

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the log-likelihood.

        Returns
        -------
        self : object
            The fitted regressor.
        """
        snapshot = dict(self.__dict__)
        try:
            return self._fit(X, y, sample_weight)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    def _fit(self, X, y, sample_weight):
        Y = self._read_targets(y, fitting=True)
        joint = self._joint(X, Y, fitting=True)
        p, q = self.n_features_in_, Y.shape[1]
        spec = self._target_spec(q)
        continuing = self.warm_start and hasattr(self, "model_")
        if continuing:
            model = self.model_
            if model.n_context_ != p or len(model.target_distribution_) != q:
                raise ValueError(
                    "warm_start=True continues training the fitted model, but X or "
                    "y has a different number of columns. Set warm_start=False."
                )
            model.set_params(**self._model_params(p, q), warm_start=True)
        else:
            model = ConditionalMADE(**self._model_params(p, q))
            model.n_context_ = p
            model.target_distribution_ = spec
        model.fit(joint, sample_weight=sample_weight)
        self.model_ = model
        self.n_targets_ = q
        kinds = np.asarray(model.column_distributions_[p:])
        self.target_distributions_ = kinds
        if q == 1 and kinds[0] != "gaussian":
            self.classes_ = self._target_values(0)
        elif hasattr(self, "classes_"):
            del self.classes_
        self.n_iter_ = model.n_iter_
        return self

    def _model_params(self, p: int, q: int) -> dict:
        params = {
            name: getattr(self, name)
            for name in (
                "hidden_layer_sizes",
                "n_components",
                "max_categories",
                "handle_unknown",
                "n_masks",
                "direct_connections",
                "dropout",
                "max_iter",
                "batch_size",
                "learning_rate",
                "learning_rate_init",
                "alpha",
                "early_stopping",
                "validation_fraction",
                "n_iter_no_change",
                "tol",
                "random_state",
                "verbose",
                "device",
            )
        }
        return dict(params, ordering=self._orderings(p, q), distribution="auto")

    def _target_values(self, j: int) -> np.ndarray:
        """The values of discrete target ``j`` in code order (categories for frame
        columns)."""
        codec = self.model_._columns_
        d = self.n_features_in_ + j
        if d in codec.frame_categories:
            return np.asarray(codec.frame_categories[d], dtype=object)
        if codec.code_values[d] is not None:
            return np.asarray(codec.code_values[d])
        return np.array([0.0, 1.0])  # Bernoulli

    # ------------------------------------------------------------------ likelihood

    def score_samples(self, X, y):
        """Conditional log-density ``log p(y | x)`` of each row, in nats.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            A log-density in the units of y for continuous targets (a
            log-probability for discrete ones); ``-inf`` where the model gives
            probability zero (an unknown category under
            ``handle_unknown='ignore'``).
        """
        check_is_fitted(self)
        Y = self._read_targets(y, fitting=False)
        return self.model_.score_samples(self._joint(X, Y, fitting=False))

    def score(self, X, y, sample_weight=None):
        """Mean conditional log-likelihood of ``y`` given ``X`` (higher is better).

        A proper scoring rule, unlike scikit-learn regressors' R²: use
        ``scoring="r2"`` in model selection for the R² of :meth:`predict`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        scores = self.score_samples(X, y)
        return float(np.average(scores, weights=sample_weight))

    # ------------------------------------------------------------------ conditionals

    def _check_single(self, what: str, continuous: bool) -> None:
        check_is_fitted(self)
        kinds = self.target_distributions_
        if continuous and not np.all(kinds == "gaussian"):
            raise ValueError(
                f"{what} needs continuous targets; this model's targets are "
                f"{list(kinds)}. Use predict_proba or sample for discrete ones."
            )
        if not continuous and (self.n_targets_ != 1 or kinds[0] == "gaussian"):
            raise ValueError(
                f"{what} needs a single discrete target (categorical or Bernoulli); "
                f"this model's targets are {list(kinds)}."
            )

    def _one_discrete_target(self) -> bool:
        kinds = getattr(self, "target_distributions_", None)
        return kinds is not None and len(kinds) == 1 and kinds[0] != "gaussian"

    @available_if(_one_discrete_target)
    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of the classes of a single discrete target.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        self._check_single("predict_proba", continuous=False)
        _column_family, blocks, _ = self.model_.first_target(self._features(X))
        if self.target_distributions_[0] == "bernoulli":
            p1 = torch.stack([torch.sigmoid(b[:, 0].double()) for b in blocks]).mean(0)
            return torch.stack([1 - p1, p1], dim=1).numpy()
        probs = torch.stack([torch.softmax(b.double(), dim=1) for b in blocks])
        return probs.mean(dim=0).numpy()

    def predict(self, X) -> np.ndarray:
        """Conditional mean of each continuous target (mode of discrete ones).

        With one target, exact (the mixture's mean, or the most probable class);
        with several, the mean (or most frequent value) of 256 draws per row from a
        fixed seed, so that predictions are deterministic.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        check_is_fitted(self)
        kinds = self.target_distributions_
        if self.n_targets_ == 1 and kinds[0] != "gaussian":
            proba = self.predict_proba(X)
            return self.classes_[proba.argmax(axis=1)]
        Z = self._features(X)
        if self.n_targets_ == 1 and self.model_.first_target_shared():
            weights, means, _ = self.model_.continuous_mixture(Z)
            return self._shape((weights * means).sum(axis=1)[:, None])
        draws = self.model_.draw_targets(Z, _MEAN_DRAWS, check_random_state(0))
        out = np.empty((Z.shape[0], self.n_targets_), dtype=object)
        for j, kind in enumerate(kinds):
            column = draws[:, :, j]
            if kind == "gaussian":
                out[:, j] = column.astype(np.float64).mean(axis=1)
            else:
                for i, row in enumerate(column):
                    values, counts = np.unique(row, return_counts=True)
                    out[i, j] = values[np.argmax(counts)]
        if np.all(kinds == "gaussian"):
            out = out.astype(np.float64)
        return self._shape(out)

    def _shape(self, Y: np.ndarray) -> np.ndarray:
        return Y[:, 0] if self._targets_1d else Y

    def predict_quantiles(self, X, quantiles=(0.05, 0.5, 0.95)) -> np.ndarray:
        """Conditional quantiles of continuous targets.

        Exact for one target (the mixture's CDF, inverted by bisection to float64
        precision); from 2,000 draws per row for several.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        quantiles : float or array-like of floats in (0, 1), \
                default=(0.05, 0.5, 0.95)

        Returns
        -------
        y_quantiles : ndarray of shape (n_samples, n_quantiles) for one target, \
                (n_samples, n_targets, n_quantiles) for several
        """
        self._check_single("predict_quantiles", continuous=True)
        levels = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
        if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
            raise ValueError(
                "quantiles must be numbers strictly between 0 and 1; got "
                f"{quantiles!r}."
            )
        Z = self._features(X)
        if self.n_targets_ > 1 or not self.model_.first_target_shared():
            draws = self.model_.draw_targets(Z, _QUANTILE_DRAWS, check_random_state(0))
            out = np.quantile(draws.astype(np.float64), levels, axis=1)  # (L, n, q)
            out = np.moveaxis(out, 0, -1)
            return out[:, 0] if self._targets_1d else out
        weights, means, scales = self.model_.continuous_mixture(Z)
        return mixture_quantiles(weights, means, scales, levels)

    def predict_interval(self, X, coverage=0.9) -> np.ndarray:
        """Central conditional interval of each continuous target.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        coverage : float in (0, 1), default=0.9
            Probability of the interval under the model: its ends are the
            ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles.

        Returns
        -------
        interval : ndarray of shape (n_samples, 2) for one target, \
                (n_samples, n_targets, 2) for several
            Lower and upper ends.
        """
        if not isinstance(coverage, Real) or not 0 < coverage < 1:
            raise ValueError(f"coverage must be a number in (0, 1); got {coverage!r}.")
        return self.predict_quantiles(X, [(1 - coverage) / 2, (1 + coverage) / 2])

    def sample(self, X, n_draws=1, random_state=None) -> np.ndarray:
        """Draw targets from ``p(y | x)`` for each row of X (jointly over targets).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        n_draws : int, default=1
            Draws per row.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.

        Returns
        -------
        y : ndarray of shape (n_samples, n_draws) for one target, \
                (n_samples, n_draws, n_targets) for several
            Values in the units of y (categories for categorical targets).
        """
        check_is_fitted(self)
        if (
            isinstance(n_draws, bool)
            or not isinstance(n_draws, Integral)
            or n_draws < 1
        ):
            raise ValueError(f"n_draws must be a positive integer; got {n_draws!r}.")
        draws = self.model_.draw_targets(
            self._features(X), n_draws, check_random_state(random_state)
        )
        if np.all(self.target_distributions_ != "categorical") or not any(
            self.n_features_in_ + j in self.model_._columns_.frame_categories
            for j in range(self.n_targets_)
        ):
            draws = draws.astype(np.float64)
        return draws[:, :, 0] if self._targets_1d else draws
