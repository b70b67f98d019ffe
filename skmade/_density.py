"""MADEDensity: a MADE density estimator with the scikit-learn API."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from ._base import (
    TRAINING_CONSTRAINTS,
    TorchDensity,
    _resolve_device,
    beyond_range,
    check_weights,
    count,
    l2_scale,
    row_blocks,
    standardization,
)
from ._columns import (
    check_frame_columns,
    check_values,
    frame_to_numeric,
    infer_kinds,
)
from ._families import (
    Bernoulli,
    Gaussian,
    MixtureOfGaussians,
    Table,
    gaussian_log_likelihood,
    linear_gaussian,
)
from ._masks import check_ordering, make_degrees, make_orderings
from ._nn import MADE
from ._sampling import sample_incremental

# Early stopping monitors the mixture of at most this many masks: scoring all of a
# large ensemble after every epoch would cost more than the epoch's training.
_VALIDATION_MASKS = 8
# The Gaussian start: ridge on the standardized covariance's diagonal, and the factor
# on the hidden path's output weights.
_START_RIDGE = 1e-3
_START_HIDDEN_SCALE = 0.1


def _integer_range(values: np.ndarray, max_categories: int) -> np.ndarray:
    """Categories of a numeric column: every integer between its extremes.

    A value that training rows happen to skip (an 11 between 10 and 12) is then a
    category with its own, small, probability rather than an unknown one. Kept to
    the values seen when they are not integers, not exactly representable (beyond
    2**53, where ``x + 1 == x``) or the range is wider than ``max_categories``.
    """
    exact = values.size and np.abs(values).max() < 2.0**53
    if exact and np.all(values == np.round(values)):
        low, high = values[0], values[-1]
        if high - low + 1 <= max(max_categories, values.size):
            return np.arange(low, high + 1, dtype=values.dtype)
    return values


class MADEDensity(TorchDensity):
    """Density estimation with MADE, a masked autoregressive neural network.

    MADE (Germain et al., 2015) masks the weights of a feed-forward network so that
    the output for variable ``d`` depends only on the variables before ``d`` in an
    ordering. The outputs are then the conditionals ``p(x_d | x_<d)`` of an
    autoregressive model, and their product is an exactly normalized joint density,
    computed for a whole row in one forward pass.

    Several masks (connectivity-agnostic training) and, with ``order_agnostic=True``,
    several orderings share one set of weights; training cycles through them, one per
    mini-batch. At inference the masks form a mixture: the log-density is
    ``logsumexp_k log p_k(x) - log K`` over the first ``n_eval_masks`` masks, a proper
    normalized density.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of shape (n_layers,), default=(500,)
        Width of each hidden layer (an int means one layer). ``()`` gives a network
        without hidden layers: a logistic (or linear-Gaussian) autoregressive model.
        One wide layer (the MADE paper's choice) beat 100 units and two layers of
        500 on every binary table of ``benchmarks/tabular.py``; the L2 prior and
        early stopping keep it from overfitting small tables.

    distribution : {'auto', 'bernoulli', 'categorical', 'gaussian'} or array-like \
            of such strings, default='auto'
        Family of the conditionals, for all columns or one entry per column (mixed
        tables). ``'bernoulli'`` needs binary (0/1) values. ``'categorical'`` models a
        column's distinct values (its *categories*) with a softmax; the network sees
        them one-hot. ``'gaussian'`` models continuous values with a Gaussian, or a
        mixture of ``n_components`` Gaussians, per conditional (continuous columns
        are standardized inside, and the log-Jacobian is added back so that densities
        are in the units of X). ``'auto'`` picks per column: ``'bernoulli'`` for 0/1
        columns, ``'categorical'`` for pandas categorical, object or string columns
        and for integer-valued columns with at most ``max_categories`` distinct
        values, ``'gaussian'`` otherwise.

        The log-likelihood of a row is the sum of its conditionals, each in its
        column's units: log-probability mass for discrete columns, log-density for
        continuous ones.

    n_components : int, default=5
        Number of Gaussian components of each continuous conditional; 1 is a single
        Gaussian. Mixtures capture skewed, multimodal and heteroscedastic
        conditionals that one Gaussian cannot.

    max_categories : int, default=20
        With ``distribution='auto'``, integer-valued columns with at most this many
        distinct values (and not only 0 and 1) are categorical.

    handle_unknown : {'error', 'ignore'}, default='error'
        What scoring does with a value the model gives no probability (a category
        not seen during fit, a value other than 0 and 1 in a Bernoulli column):
        raise a ValueError, or (``'ignore'``) give the row probability zero:
        :meth:`score_samples` returns ``-inf`` and :meth:`score_features` puts
        ``-inf`` at that feature (the other features are scored as if it held its
        first category, or 0). Useful for outlier detection, where unseen values are
        the point. Whatever this setting, a continuous value more than ``1e15``
        standard deviations from the training mean scores ``-inf`` the same way: its
        density is below anything float64 can hold, and the network's float32
        arithmetic would overflow on it.

    ordering : {'natural', 'random'} or array-like of shape (n_features,), \
            default='random'
        Order of the variables for the first mask: ``'natural'`` is column order,
        ``'random'`` a random permutation (drawn from ``random_state``), or give a
        permutation of ``range(n_features)``. On images the column order is a poor
        one (the first pixels are blank borders): on 1,000 binarized MNIST digits a
        random ordering scores 120.7 nats against 139.0 for the natural one.

    n_masks : int, default=1
        Number of connectivity masks trained with shared weights (cycled, one per
        mini-batch). Each mask draws its own hidden-unit degrees.

    order_agnostic : bool, default=False
        If True, every mask after the first also draws its own random ordering.

    direct_connections : bool or 'auto', default='auto'
        Add masked direct connections from the inputs to the outputs (as in the MADE
        paper): each conditional also gets a linear term in all the variables before
        it. ``'auto'`` adds them unless a column is categorical. With one shared
        ordering, continuous columns then start training at the full-covariance
        Gaussian of the data (fitted in closed form, held by the direct path): a
        small table begins from the model that a one-component GaussianMixture would
        give, and early stopping keeps it unless training improves on it. The direct
        path also helped on every binary table of ``benchmarks/tabular.py``; for
        categorical columns it links every one-hot input to every output unit, which
        doubled the fit time on scikit-learn's digits as integers for no gain.
        Sampling takes one step per variable instead of one per distinct hidden
        degree.

    n_eval_masks : int, default=None
        Number of masks (the first ones) averaged, as a mixture, by
        :meth:`score_samples`, :meth:`score` and :meth:`sample`. ``None`` uses all
        ``n_masks``. Must not exceed ``n_masks``.

    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data). Early stopping
        usually ends training long before: small tables need many cheap epochs.

    batch_size : int or 'auto', default='auto'
        Mini-batch size; ``'auto'`` is ``min(100, n_samples)``.

    learning_rate : {'constant', 'adaptive'}, default='adaptive'
        Learning-rate schedule (the names of
        :class:`~sklearn.neural_network.MLPClassifier`). ``'constant'`` keeps
        ``learning_rate_init``. ``'adaptive'`` halves the rate each time the
        monitored score (the validation log-likelihood with early stopping, else the
        training loss) has not improved by ``tol`` for 2 epochs
        (:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`). The rates used are in
        :attr:`learning_rate_curve_`.

    learning_rate_init : float, default=1e-3
        Initial learning rate of the Adam optimizer.

    alpha : float, default=1.0
        Strength of the L2 penalty. The training objective is the mean negative
        log-likelihood plus ``0.5 * alpha * ||W||^2 / n_samples``, where ``W`` are the
        weights in use under the current mask: ``alpha`` is the precision of a
        Gaussian prior on the weights, so the penalty fades as the data grows. With
        ``sample_weight``, ``n_samples`` is the sum of the weights (a weight counts
        as that many repeated rows, scikit-learn's convention).

    early_stopping : bool or 'auto', default='auto'
        Hold out ``validation_fraction`` of the data (at least one row), score it
        after every epoch and stop when its log-likelihood has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the best weights are restored, and
        the starting point competes: the trained model is kept only if its gain
        over the start on the validation rows passes a one-sided paired t-test at
        97.5% (on a handful of rows the best of many epochs wins by chance). With
        ``True`` the split must leave two training rows; ``'auto'`` splits whenever
        it can and keeps the start on a two-row table. With several masks the monitored
        score is the mixture of the first ``min(n_eval_masks, 8)`` masks, so that a
        large ensemble does not pay for scoring every mask after every epoch.

    validation_fraction : float, default=0.1
        Fraction of the training rows held out for early stopping.

    n_iter_no_change : int, default=10
        Number of epochs without improvement by at least ``tol`` before stopping.

    tol : float, default=1e-4
        Improvement (in nats per row) of the training loss, or of the validation
        log-likelihood with ``early_stopping``, that counts as progress.

    random_state : int, RandomState instance or None, default=None
        Seeds the orderings, the hidden degrees, the initial weights, the validation
        split and the shuffling. An int gives the same model on every call. No global
        random state (numpy's or torch's) is read or changed.

    verbose : bool, default=False
        Print the loss after every epoch.

    warm_start : bool, default=False
        If True, a second :meth:`fit` continues training the fitted network (same
        architecture, masks and standardization) instead of starting anew.

    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Where the network trains and scores. ``'auto'`` uses CUDA when available.
        Pickles always hold CPU tensors, so a model fitted on a GPU loads anywhere.

    Attributes
    ----------
    distribution_ : str
        The family used: ``'bernoulli'``, ``'categorical'`` or ``'gaussian'`` when
        all columns share it, ``'mixed'`` otherwise.

    column_distributions_ : ndarray of shape (n_features,)
        Family of each column.

    categories_ : list of length n_features
        For categorical columns, the categories in code order (an ndarray); None for
        the other columns. For a numeric column of integers these are all the
        integers from its smallest to its largest value (when there are at most
        ``max_categories`` of them), so that a value between two seen ones is not
        unknown. Values outside them get a clear error at scoring time.

    module_ : torch.nn.Module
        The fitted network (in eval mode).

    orderings_ : ndarray of shape (n_masks, n_features)
        ``orderings_[k, i]`` is the feature modelled ``i``-th by mask ``k``.

    mean_ : ndarray of shape (n_features,) or None
        Per-feature mean used to standardize continuous columns (0 for discrete
        columns); None when no column is continuous.

    scale_ : ndarray of shape (n_features,) or None
        Per-feature standard deviation used to standardize continuous columns (1 for
        discrete columns and constant ones); None when no column is continuous.

    loss_curve_ : list of float
        Training objective after each epoch: the mean negative log-likelihood per row
        over the epoch's mini-batches plus the L2 term at the end of the epoch.

    learning_rate_curve_ : list of float
        Learning rate used in each epoch.

    best_loss_ : float
        Lowest training objective reached.

    validation_scores_ : list of float or None
        Mean validation log-likelihood after each epoch (``early_stopping`` only).

    best_validation_score_ : float or None
        Best validation log-likelihood (``early_stopping`` only), of the epochs and of
        the starting point; the model keeps the weights that reached it.

    n_iter_ : int
        Number of epochs run.

    n_steps_ : int
        Number of optimizer steps (mini-batches) taken; step ``t`` used mask
        ``t % n_masks``.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :term:`fit`. Defined only when `X` has feature
        names that are all strings.

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture model.

    Notes
    -----
    Hidden degrees are drawn uniformly in ``[min degree of the previous layer, D-1]``.
    When a hidden layer is narrower than the number of features, some degrees are
    missing and some outputs see no hidden unit: they keep their bias and model their
    variable with an unconditional distribution. The first variable of every ordering
    is always modelled that way. The density stays exactly normalized.

    Weights that no mask uses are set to exactly zero and never change; the L2 penalty
    applies only to weights in use. This keeps denormal floats, which slow CPU
    arithmetic several-fold, out of the network.

    References
    ----------
    M. Germain, K. Gregor, I. Murray, H. Larochelle. "MADE: Masked Autoencoder for
    Distribution Estimation." ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skmade import MADEDensity
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(200, 6) < 0.3).astype(float)
    >>> est = MADEDensity(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    >>> est.fit(X).distribution_
    'bernoulli'
    >>> est.score_samples(X[:3]).shape
    (3,)
    >>> est.sample(4, random_state=0).shape
    (4, 6)
    """

    _parameter_constraints: dict = {
        "distribution": [
            StrOptions({"auto", "bernoulli", "categorical", "gaussian"}),
            "array-like",
        ],
        "n_components": [count(1)],
        "max_categories": [count(2)],
        "handle_unknown": [StrOptions({"error", "ignore"})],
        "ordering": [StrOptions({"natural", "random"}), "array-like"],
        "n_masks": [count(1)],
        "order_agnostic": ["boolean"],
        "direct_connections": ["boolean", StrOptions({"auto"})],
        "n_eval_masks": [count(1), None],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        hidden_layer_sizes=(500,),
        distribution="auto",
        n_components=5,
        max_categories=20,
        handle_unknown="error",
        ordering="random",
        n_masks=1,
        order_agnostic=False,
        direct_connections="auto",
        n_eval_masks=None,
        max_iter=1000,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init=1e-3,
        alpha=1.0,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
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
        self.ordering = ordering
        self.n_masks = n_masks
        self.order_agnostic = order_agnostic
        self.direct_connections = direct_connections
        self.n_eval_masks = n_eval_masks
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

    # ------------------------------------------------------------------ validation

    def _structure(self) -> dict:
        """The parameters that fix the network; warm starts must keep them."""
        ordering = self.ordering
        if not isinstance(ordering, str):
            ordering = tuple(np.asarray(ordering).tolist())
        distribution = self.distribution
        if not isinstance(distribution, str):
            distribution = tuple(np.asarray(distribution, dtype=object).tolist())
        return {
            "hidden_layer_sizes": self._hidden_sizes(),
            "distribution": distribution,
            "n_components": self.n_components,
            "max_categories": self.max_categories,
            "ordering": ordering,
            "n_masks": self.n_masks,
            "order_agnostic": self.order_agnostic,
            "direct_connections": self.direct_connections,
        }

    def _check_fit_input(self, X, sample_weight, incremental):
        """Validate everything before any work; returns what training needs."""
        continuing = (self.warm_start or incremental) and hasattr(self, "module_")
        if continuing:
            changed = {
                name: (old, new)
                for (name, old), new in zip(
                    self._fitted_structure.items(),
                    self._structure().values(),
                    strict=True,
                )
                if old != new
            }
            if changed:
                name, (old, new) = next(iter(changed.items()))
                raise ValueError(
                    f"warm_start=True continues training the fitted network, but "
                    f"{name} changed from {old!r} to {new!r}. Set warm_start=False "
                    "to fit a new model."
                )
        hidden = self._hidden_sizes()
        if continuing:
            check_frame_columns(X, getattr(self, "feature_names_in_", None))
        X, frame_categories = frame_to_numeric(
            X, self._frame_categories_ if continuing else None
        )
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            reset=not continuing,
        )
        n_samples, n_features = X.shape
        weights, weight_exponent = check_weights(sample_weight, X)

        if continuing:
            kinds = list(self.column_distributions_)
            check_values(X, kinds, self._code_values_, self.distribution_)
        else:
            kinds = infer_kinds(
                X, self.distribution, self.max_categories, frame_categories
            )
        if not isinstance(self.ordering, str):
            check_ordering(self.ordering, n_features)
        if self.n_eval_masks is not None and self.n_eval_masks > self.n_masks:
            raise ValueError(
                f"n_eval_masks={self.n_eval_masks} is larger than n_masks="
                f"{self.n_masks}; inference can only average masks that were trained."
            )

        n_validation = self._n_validation(n_samples, incremental)
        device = _resolve_device(self.device)
        return (
            X,
            (weights, weight_exponent),
            hidden,
            kinds,
            frame_categories,
            n_validation,
            device,
            continuing,
        )

    # ------------------------------------------------------------------ fitting

    def _fit_model(self, X, sample_weight, incremental):
        checked = self._check_fit_input(X, sample_weight, incremental)
        X, (weights, weight_exponent), hidden, kinds, frame_categories = checked[:5]
        n_validation, device, continuing = checked[5:]

        rng = self._fit_rng(incremental, continuing)
        n_features = X.shape[1]
        X, weights, X_val, weights_val = self._split(X, weights, n_validation, rng)
        penalty_scale = l2_scale(self.alpha, weights, weight_exponent)
        if not continuing:
            self._set_columns(X, weights, kinds, frame_categories)
        family = self._family(self.n_components)

        Z, Z_val = self._to_internal(X), self._to_internal(X_val)
        if continuing:
            module = self.module_.to(device)
        else:
            orderings = make_orderings(
                self.ordering, n_features, self.n_masks, self.order_agnostic, rng
            )
            degrees = make_degrees(orderings, hidden, rng)
            layout = {}
            if isinstance(family, Table):
                layout = dict(
                    input_sizes=family.input_sizes, output_sizes=family.output_sizes
                )
            module = MADE(
                [torch.from_numpy(d) for d in degrees],
                family.n_params,
                direct=self._direct(kinds),
                **layout,
            )
            module.reset_parameters(self._torch_generator(rng))
            with torch.no_grad():
                bias = family.initial_bias(Z, weights)
                module.layers[-1].bias.copy_(torch.as_tensor(bias.reshape(-1)))
            with np.errstate(over="ignore"):  # 1e308-weights: an infinite count
                n_rows = float(np.ldexp(weights.sum(), weight_exponent))
            self._linear_gaussian_start(
                module, family, Z, weights, n_rows, Z_val, weights_val
            )
            module = module.to(device)
            self.orderings_ = orderings
            self._reset_training_state(n_validation > 0)
        if n_validation and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        self.module_ = module
        generator = self._torch_generator(rng)
        self._train(
            module,
            family,
            Z,
            weights,
            Z_val,
            weights_val,
            generator,
            incremental,
            penalty_scale,
        )
        module.eval()
        return self

    def _linear_gaussian_start(
        self, module, family, Z, weights, n_rows, Z_val, weights_val
    ) -> None:
        """Start the continuous conditionals at the full-covariance Gaussian.

        With direct connections and one shared ordering, the direct path can hold the
        Gaussian's conditionals exactly: a linear mean in the earlier continuous
        columns and a constant scale (computed in closed form by
        :func:`linear_gaussian`). Mixture components start around that mean (spread
        by half a residual scale, their own scales shrunk so that the mixture keeps
        its variance) and the hidden path's output weights start small, so training
        begins from the model that GaussianMixture with one component would fit.
        """
        orderings = module.orderings.numpy()
        kinds = np.asarray(self.column_distributions_)
        if module.direct is None or not (orderings == orderings[0]).all():
            return
        order = np.array([d for d in orderings[0] if kinds[d] == "gaussian"])
        if order.size == 0:
            return
        # Two candidates: the sample covariance, and the same shrunk as OAS does
        # (safe on fewer rows than columns, harmful on strongly collinear ones).
        # The validation rows choose; without any, the shrunk one is the safe one.
        start = linear_gaussian(Z, weights, order, _START_RIDGE, n_rows)
        if Z_val.shape[0] and start is not None:
            plain = linear_gaussian(Z, weights, order, _START_RIDGE)
            if plain is not None:
                scores = [
                    np.average(
                        gaussian_log_likelihood(candidate, Z_val[:, order]),
                        weights=weights_val if weights_val.sum() > 0 else None,
                    )
                    for candidate in (start, plain)
                ]
                if scores[1] > scores[0]:
                    start = plain
        if start is None:  # no finite covariance (extreme values): keep the default
            return
        coef, intercept, scale = start
        n_features = Z.shape[1]
        if isinstance(family, Table):
            families = family.families
            in_units = family.in_starts[order]
            out_starts = family.out_starts
            stride = 1
        else:
            families = [family] * n_features
            in_units = order
            out_starts = np.arange(n_features)
            stride = n_features
        direct, output = module.direct.weight, module.layers[-1]
        with torch.no_grad():
            for i, d in enumerate(order):
                C = getattr(families[d], "n_components", 1)
                first_mean, first_raw = (0, 1) if C == 1 else (C, 2 * C)
                spread = np.arange(C) - (C - 1) / 2
                if C > 1:  # in residual scales; variance 0.25
                    spread = 0.5 * spread / spread.std()
                log_scale = np.log(scale[i] * np.sqrt(1.0 - spread.var()))
                raw = Gaussian.raw_log_scale(log_scale)
                units = out_starts[d] + stride * np.arange(families[d].n_params)
                output.weight[units] *= _START_HIDDEN_SCALE
                direct[units] = 0.0
                for c in range(C):
                    mean_unit = units[first_mean + c]
                    direct[mean_unit, in_units[:i]] = torch.as_tensor(
                        coef[i, :i], dtype=direct.dtype
                    )
                    output.bias[mean_unit] = float(intercept[i] + scale[i] * spread[c])
                    output.bias[units[first_raw + c]] = float(raw)
                    if C > 1:
                        output.bias[units[c]] = 0.0

    def _direct(self, kinds) -> bool:
        if self.direct_connections == "auto":
            return "categorical" not in kinds
        return self.direct_connections

    # ------------------------------------------------------------------ inference

    def _set_columns(self, X, weights, kinds, frame_categories) -> None:
        """Fitted column state: families, categories, standardization."""
        kinds_array = np.asarray(kinds)
        shared = np.unique(kinds_array)
        self.distribution_ = str(shared[0]) if shared.size == 1 else "mixed"
        self.column_distributions_ = kinds_array.astype(object)
        self._frame_categories_ = frame_categories
        self.categories_, self._code_values_ = [], []
        for j, kind in enumerate(kinds):
            if kind != "categorical":
                self.categories_.append(None)
                self._code_values_.append(None)
            elif j in frame_categories:  # X holds the codes already
                self.categories_.append(frame_categories[j])
                self._code_values_.append(np.arange(len(frame_categories[j])))
            else:
                values = _integer_range(np.unique(X[:, j]), self.max_categories)
                self.categories_.append(values)
                self._code_values_.append(values)
        continuous = kinds_array == "gaussian"
        if continuous.any():
            mean, scale = standardization(X, weights)
            self.mean_ = np.where(continuous, mean, 0.0)
            self.scale_ = np.where(continuous, scale, 1.0)
        else:
            self.mean_ = self.scale_ = None

    def _family(self, n_components=None):
        """The output family of the fitted columns.

        ``n_components`` defaults to the value the network was fitted with, so that
        ``set_params`` after ``fit`` cannot change the meaning of its outputs.
        """
        if n_components is None:
            n_components = self._fitted_structure["n_components"]
        kinds = list(self.column_distributions_)
        if self.distribution_ == "bernoulli":
            return Bernoulli
        if self.distribution_ == "gaussian":
            if n_components == 1:
                return Gaussian
            return MixtureOfGaussians(n_components)
        sizes = [
            len(values) if values is not None else n_components
            for values in self._code_values_
        ]
        return Table(kinds, sizes)

    def _to_internal(self, X: np.ndarray) -> np.ndarray:
        """Model values: codes for categorical columns, standardized continuous.

        Values that are not categories (unknown ones) get code 0.
        """
        if self.mean_ is not None:
            X = (X - self.mean_) / self.scale_
        if any(values is not None for values in self._code_values_):
            X = np.array(X, dtype=np.float64)
            for j, values in enumerate(self._code_values_):
                if values is not None:
                    codes = np.searchsorted(values, X[:, j]).clip(0, len(values) - 1)
                    X[:, j] = np.where(values[codes] == X[:, j], codes, 0)
        return X

    def _from_internal(self, Z: np.ndarray) -> np.ndarray:
        X = Z if self.mean_ is None else Z * self.scale_ + self.mean_
        for j, values in enumerate(self._code_values_):
            if values is not None:
                X[:, j] = values[Z[:, j].astype(np.int64)]
        return X

    def _log_jacobian(self) -> float:
        if self.scale_ is not None:
            return -float(np.sum(np.log(self.scale_)))
        return 0.0

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

    @torch.no_grad()
    def _log_likelihood(self, Z: np.ndarray, n_masks: int | None = None) -> np.ndarray:
        """Ensemble log-density of standardized rows, in the units of X.

        ``n_masks`` limits the mixture to the first masks (default: the
        ``n_eval_masks`` of inference).
        """
        module = self.module_
        module.eval()
        family = self._family()
        device = next(module.parameters()).device
        n_eval = self._n_eval_masks() if n_masks is None else n_masks
        out = np.empty(Z.shape[0], dtype=np.float64)
        for start, x, n in row_blocks(Z, device):
            # The network runs in float32; the family's last elementwise kernels run
            # in float64. In float32 the SIMD body and the scalar tail of those
            # kernels differ by an ulp, which made a row's score depend on its
            # position in X; in float64 that is far below any tolerance.
            per_mask = torch.stack(
                [
                    family.log_prob(
                        module(family.encode(x), k), x, dtype=torch.float64
                    ).sum(dim=1)
                    for k in range(n_eval)
                ]
            )
            log_density = torch.logsumexp(per_mask, dim=0) - math.log(n_eval)
            out[start : start + n] = log_density[:n].cpu().numpy()
        return out + self._log_jacobian()

    def _validation_log_likelihood(self, Z: np.ndarray) -> np.ndarray:
        return self._log_likelihood(Z, min(self._n_eval_masks(), _VALIDATION_MASKS))

    def _check_X(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated X and the mask of unknown categories (or None)."""
        check_is_fitted(self)
        check_frame_columns(X, getattr(self, "feature_names_in_", None))
        X, _ = frame_to_numeric(X, self._frame_categories_, self.handle_unknown)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        unknown = check_values(
            X,
            self.column_distributions_,
            self._code_values_,
            self.distribution_,
            self.handle_unknown,
        )
        return X, unknown

    def _scoring_input(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """Model values of X and the ``(n, D)`` mask of impossible entries (or None).

        Impossible: unknown values (``handle_unknown='ignore'``) and continuous values
        too extreme for the network (:func:`beyond_range`); they are replaced by 0 so
        that the network computes finite values for the rest of the row.
        """
        X, impossible = self._check_X(X)
        Z = self._to_internal(X)
        if self.mean_ is not None:
            extreme = beyond_range(Z)
            extreme &= np.asarray(self.column_distributions_ == "gaussian")[None, :]
            if extreme.any():
                impossible = extreme if impossible is None else impossible | extreme
        if impossible is not None:
            Z = np.where(impossible, 0.0, Z)
        return Z, impossible

    def score_samples(self, X):
        """Log-density of each row under the model, in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(x)`` of each row: a log-probability for binary data, a
            log-density in the units of X for continuous data.
        """
        Z, impossible = self._scoring_input(X)
        log_density = self._log_likelihood(Z)
        if impossible is not None:
            log_density[impossible.any(axis=1)] = -np.inf
        return log_density

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

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
            Contribution of each feature (in the column order of X).
        """
        Z, impossible = self._scoring_input(X)
        module = self.module_
        module.eval()
        family = self._family()
        device = next(module.parameters()).device
        n_eval = self._n_eval_masks()
        n_features = Z.shape[1]
        out = np.empty(Z.shape, dtype=np.float64)
        for start, x, n in row_blocks(Z, device):
            per_mask = torch.stack(
                [
                    family.log_prob(
                        module(family.encode(x), k), x, dtype=torch.float64
                    )[:n]
                    for k in range(n_eval)
                ]
            )  # (K, n, D)
            totals = per_mask.sum(dim=2)
            responsibility = torch.softmax(totals, dim=0)
            weighted = (responsibility[:, :, None] * per_mask).sum(dim=0)
            log_density = torch.logsumexp(totals, dim=0) - math.log(n_eval)
            weighted += ((log_density - weighted.sum(dim=1)) / n_features)[:, None]
            out[start : start + n] = weighted.cpu().numpy()
        if self.scale_ is not None:
            out -= np.log(self.scale_)
        if impossible is not None:
            out[impossible] = -np.inf
        return out

    @torch.no_grad()
    def sample(self, n_samples=1, random_state=None):
        """Draw rows exactly from the fitted density.

        Each row picks one of the ``n_eval_masks`` masks uniformly (the mixture that
        :meth:`score_samples` evaluates), then draws its variables one by one in that
        mask's ordering. Rows are drawn in batches per mask, and incrementally: every
        hidden unit is computed once, as soon as the variables it depends on are
        drawn, so a batch costs about one forward pass plus ``n_features`` small
        steps rather than ``n_features`` full passes.

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
            The drawn rows, in the units of the training data (categorical columns
            hold their categories). A DataFrame with the training frame's columns and
            categorical dtypes when the model was fitted on a DataFrame with
            categorical, object or string columns.
        """
        check_is_fitted(self)
        self._check_n_samples(n_samples)
        rng = check_random_state(random_state)
        module = self.module_
        module.eval()
        family = self._family()
        device = next(module.parameters()).device
        mask_of_row = rng.randint(self._n_eval_masks(), size=n_samples)
        noise = family.noise((n_samples, module.n_features), self._torch_generator(rng))
        noise = noise.to(device)
        masks_used = np.unique(mask_of_row)
        if masks_used.size == 1:  # one batch: no gathering and scattering of rows
            Z = sample_incremental(module, family, int(masks_used[0]), noise)
        else:
            Z = torch.empty_like(noise)
            for k in masks_used:
                rows = torch.from_numpy(np.flatnonzero(mask_of_row == k)).to(device)
                Z[rows] = sample_incremental(module, family, int(k), noise[rows])
        X = self._from_internal(Z.cpu().double().numpy())
        if self._frame_categories_:
            return self._as_frame(X)
        return X

    def _as_frame(self, X: np.ndarray):
        """Samples as a DataFrame with the training frame's categorical columns."""
        import pandas as pd

        frame = pd.DataFrame(X, columns=self.feature_names_in_)
        for j, categories in self._frame_categories_.items():
            frame[frame.columns[j]] = pd.Categorical.from_codes(
                X[:, j].astype(np.int64), categories=list(categories)
            )
        return frame
