"""MADEDensity: a MADE density estimator with the scikit-learn API."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import TorchDensity
from ._columns import ColumnCodec, infer_kinds
from ._conditional import ConditionalMixin
from ._ensemble import MaskEnsembleMixin
from ._masks import check_orderings, make_degrees, make_orderings
from ._nn import MADE
from ._params import TRAINING_CONSTRAINTS, count
from ._start import GaussianStartMixin
from ._stream import StreamedRows
from ._table import Table, codec_family
from ._training import AUTO_BATCH, clear_gain

# Continuous inputs are clipped to the training range widened by this fraction of
# its width on each side. Chosen on validation rows (benchmarks/tabular.py's
# breast cancer, ADBench development sets glass, stamps, wdbc, vertebral): 0 broke
# the linear extrapolation of nearly collinear columns (breast cancer 13.8 -> 26.8
# nats), 1 let a glass outlier through; 0.5 beat no clipping on breast cancer,
# glass and stamps, tied on vertebral and cost 0.2 nats on wdbc.
_INPUT_MARGIN = 0.5


class MADEDensity(
    ConditionalMixin, MaskEnsembleMixin, GaussianStartMixin, TorchDensity
):
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

    atoms : 'auto' or bool, default='auto'
        Whether continuous columns get atoms: values that many rows repeat exactly
        (at least 5 rows and 1 % of the training weight; at most 32 per column, the
        heaviest), such as a zero that stands for "none" or the readings of a coarse
        instrument. Each atom is a mixture component of its own, fixed at the value
        with the smallest scale a component may have (a standard deviation of
        ``exp(-7) ~ 0.0009`` times the column's), whose weight the network learns
        per conditional: the conditional is then a mixture of a continuous density
        and point masses spread over that width, still a normalized density on the
        real line. Its value at an atom is the atom's probability times
        ``1 / (sqrt(2 pi) 0.0009 scale)`` (plus the continuous part), so that
        log-likelihoods of rows on atoms compare as those of a mixed measure do. A
        column measured on a continuous scale has none and is unchanged.
        ``'auto'`` and True find atoms on the rows of a fit of in-memory data (the
        first batch for :meth:`partial_fit`); False never uses them. Where atoms
        are found the network has an output block per column, as for mixed tables.

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

    ordering : {'natural', 'random'} or array-like of shape (n_features,) or \
            (n_masks, n_features), default='random'
        Order of the variables for the first mask: ``'natural'`` is column order,
        ``'random'`` a random permutation (drawn from ``random_state``), or give a
        permutation of ``range(n_features)``; a 2-D array gives every mask its own
        ordering (one permutation per row; ``order_agnostic`` is then ignored). On
        images the column order is a poor one (the first pixels are blank borders):
        on 1,000 binarized MNIST digits a random ordering scores 120.7 nats against
        139.0 for the natural one.

    n_masks : int, default=1
        Number of connectivity masks trained with shared weights (cycled, one per
        mini-batch). Each mask draws its own hidden-unit degrees.

    order_agnostic : bool, default=False
        If True, every mask after the first also draws its own random ordering.

    direct_connections : bool or 'auto', default='auto'
        Add masked direct connections from the inputs to the outputs (as in the MADE
        paper): each conditional also gets a linear term in all the variables before
        it. ``'auto'`` adds them unless a column is categorical; where a column is
        continuous, the rows are held out for early stopping and the masks share
        one ordering, ``'auto'`` trains both ways (from the same random state) and
        keeps the network without the direct path where its validation
        log-likelihood is clearly better (a one-sided paired t-test at 97.5% over
        the validation rows; about twice the fit time): on the tabular benchmark
        the Gaussian start wins on small tables (wine, diabetes, vowels), the plain
        network where columns pile rows on repeated values (pendigits, cardio, UCI
        concrete). With one shared ordering, continuous columns then start
        training at the full-covariance Gaussian of the data (fitted in closed
        form, held by the direct path): a small table begins from the model that a
        one-component GaussianMixture would give, and early stopping keeps it
        unless training improves on it. The direct
        path also helped on every binary table of ``benchmarks/tabular.py``; for
        categorical columns it links every one-hot input to every output unit, which
        doubled the fit time on scikit-learn's digits as integers for no gain.
        Sampling takes one step per variable instead of one per distinct hidden
        degree.

    n_eval_masks : int, default=None
        Number of masks (the first ones) averaged, as a mixture, by
        :meth:`score_samples`, :meth:`score` and :meth:`sample`. ``None`` uses all
        ``n_masks``. Must not exceed ``n_masks``.

    allow_missing : bool, default=False
        Train for, and answer, queries about any subset of the columns. Rows may then
        hold missing entries (NaN) in :meth:`fit`, :meth:`score_samples`,
        :meth:`score` and :meth:`score_features`, and :meth:`sample` can complete
        given rows (``given=``). Training draws a fresh random ordering for every
        row, with the row's observed entries first, and maximizes the likelihood of
        the observed entries (order-agnostic training, Uria et al. 2014); the hidden
        layers keep each mask's degrees, the connections from the inputs and to the
        outputs follow the row's ordering. A row with missing entries is scored by
        the exact marginal likelihood of its observed entries under each
        evaluation mask with its ordering rearranged to put the observed entries
        first (keeping their relative order), and the masks' marginals are mixed as
        for complete rows. Different orderings are different models, which agree
        only as well as training made them agree. A full-covariance Gaussian
        fitted by EM (on the incomplete rows) to the continuous and binary columns,
        and to the one-hot indicators of the categorical columns it predicts on
        validation rows (2 to 128 dimensions), gives each of their conditionals its
        exact value for the row's ordering, and the network learns the offsets
        from it; each
        first-layer unit also sees which variables the ordering shows it. Costs
        more per epoch than a fixed ordering (masks, and a Cholesky factor of the
        Gaussian, per row).

    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data). Early stopping
        usually ends training long before: small tables need many cheap epochs.

    batch_size : int or 'auto', default='auto'
        Mini-batch size. ``'auto'`` is 32 rows up to 3,200 training rows, then
        ``n_samples // 100``, at most 100 (from 10,000 rows on): on a small table
        an epoch of 100-row batches is a handful of Adam steps.

    learning_rate : {'constant', 'adaptive'}, default='adaptive'
        Learning-rate schedule (the names of
        :class:`~sklearn.neural_network.MLPClassifier`). ``'constant'`` keeps
        ``learning_rate_init``. ``'adaptive'`` halves the rate each time the
        monitored score (the validation log-likelihood with early stopping, else the
        training loss) has not improved by ``tol`` for 2 epochs and at least 200
        Adam steps (:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`). The
        rates used are in ``learning_rate_curve_``.

    learning_rate_init : float, default=1e-3
        Initial learning rate of the Adam optimizer.

    alpha : float, default=1.0
        Strength of the L2 penalty. The training objective is the mean negative
        log-likelihood plus ``0.5 * alpha * ||W||^2 / n_samples``, where ``W`` are the
        weights in use under the current mask: ``alpha`` is the precision of a
        Gaussian prior on the weights, so the penalty fades as the data grows. With
        ``sample_weight``, ``n_samples`` is the sum of the weights (a weight counts
        as that many repeated rows, scikit-learn's convention).

    dropout : float, default=0.1
        Probability of zeroing each hidden unit's output at each training step
        (inverted dropout: the kept units are scaled up, so nothing changes at
        inference). A regularizer on top of ``alpha``; scores and samples never
        drop units. Must be in ``[0, 1)``; ``0`` turns it off.

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
        Number of epochs without improvement by at least ``tol`` before stopping,
        and at least 1,000 Adam steps: a small table's epoch is a few steps.

    tol : float, default=1e-4
        Improvement (in nats per row) of the training loss, or of the validation
        log-likelihood with ``early_stopping``, that counts as progress.

    random_state : int, RandomState instance or None, default=None
        Seeds the orderings, the hidden degrees, the initial weights, the validation
        split and the shuffling. An int gives the same model on every call. No global
        random state (numpy's or torch's) is read or changed.

    verbose : bool or int, default=False
        Print one line per epoch: the training loss, the validation log-likelihood
        (with early stopping), the learning rate and the time since training began.
        When `tqdm <https://tqdm.github.io>`__ is installed (optional), the lines are
        written above a progress bar over ``max_iter`` epochs.

    warm_start : bool, default=False
        If True, a second :meth:`fit` continues training the fitted network (same
        architecture, masks and standardization) instead of starting anew.

    device : str or torch.device, default='auto'
        Where the network trains and scores: ``'auto'`` (CUDA when available, else
        the CPU), any torch device string (``'cpu'``, ``'cuda'``, ``'cuda:1'``,
        ``'mps'``) or a :class:`torch.device`. An unusable device raises in
        :meth:`fit`, before any work.
        Pickles always hold CPU tensors, so a model fitted on a GPU loads anywhere.

    mixed_precision : bool, default=False
        Train with the network's products in bfloat16 (``torch.autocast``) while
        the weights, their gradients and the optimizer stay in float32. Several
        times faster per epoch on hardware with bfloat16 units (CPUs with AMX or
        AVX-512 BF16, recent GPUs) and slower elsewhere; each step's rounding
        (about 3 significant digits) can cost a little likelihood. Scores,
        validation scores and samples are always computed in float32, so the
        density stays exactly normalized.

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

    direct_connections_ : bool
        Whether the network has the direct path (``direct_connections``, resolved
        or chosen on the validation rows where it is ``'auto'``).

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
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X` has feature
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

    The network sees each continuous column clipped to the range of the training
    rows widened by half its width on each side (``module_.input_bounds()``): a row
    far outside it is scored by every later conditional as if that column were at
    the edge, while the column's own conditional scores the value itself. Every
    conditional is still a normalized distribution of its own variable, so the
    density stays exact, but an outlier in one column can no longer drive the
    network's outputs (means and scales of the later columns) beyond anything it
    was trained on. On the normal rows of ADBench's stamps (185 training rows) the
    same weights score held-out rows at 8.5 nats per row with the clipping and
    12.8 without.

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
        "atoms": [StrOptions({"auto"}), "boolean"],
        "max_categories": [count(2)],
        "handle_unknown": [StrOptions({"error", "ignore"})],
        "ordering": [StrOptions({"natural", "random"}), "array-like"],
        "n_masks": [count(1)],
        "order_agnostic": ["boolean"],
        "direct_connections": ["boolean", StrOptions({"auto"})],
        "n_eval_masks": [count(1), None],
        "allow_missing": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "mixed_precision": ["boolean"],
        **TRAINING_CONSTRAINTS,
    }

    # Small tables (hundreds of rows) are the common case and an epoch of 100-row
    # batches is a few Adam steps there. Chosen on validation rows of the tabular
    # benchmark and the ADBench development sets (normal rows): 32-row batches up to
    # 3,200 rows, and patience of at least 200 steps for the schedule and 1,000 for
    # early stopping (longer waits found the same best epoch). From 10,000 rows on
    # an epoch is at least 100 steps and nothing changes.
    _patience_steps = (200, 1000)

    def _auto_batch_size(self, n_rows: int) -> int:
        return min(AUTO_BATCH, max(32, n_rows // 100))

    def __init__(
        self,
        *,
        hidden_layer_sizes=(500,),
        distribution="auto",
        n_components=5,
        atoms="auto",
        max_categories=20,
        handle_unknown="error",
        ordering="random",
        n_masks=1,
        order_agnostic=False,
        direct_connections="auto",
        n_eval_masks=None,
        allow_missing=False,
        max_iter=1000,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init=1e-3,
        alpha=1.0,
        dropout=0.1,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        random_state=None,
        verbose=False,
        warm_start=False,
        device="auto",
        mixed_precision=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.distribution = distribution
        self.n_components = n_components
        self.atoms = atoms
        self.max_categories = max_categories
        self.handle_unknown = handle_unknown
        self.ordering = ordering
        self.n_masks = n_masks
        self.order_agnostic = order_agnostic
        self.direct_connections = direct_connections
        self.n_eval_masks = n_eval_masks
        self.allow_missing = allow_missing
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.mixed_precision = mixed_precision

    # ------------------------------------------------------------------ validation

    def _structure(self) -> dict:
        """The parameters that fix the network; warm starts must keep them."""
        ordering = self.ordering
        if not isinstance(ordering, str):
            ordering = np.asarray(ordering)
            ordering = (
                tuple(map(tuple, ordering.tolist()))
                if ordering.ndim == 2
                else tuple(ordering.tolist())
            )
        distribution = self.distribution
        if not isinstance(distribution, str):
            distribution = tuple(np.asarray(distribution, dtype=object).tolist())
        return {
            "hidden_layer_sizes": self._hidden_sizes(),
            "distribution": distribution,
            "n_components": self.n_components,
            "atoms": self.atoms,
            "max_categories": self.max_categories,
            "ordering": ordering,
            "n_masks": self.n_masks,
            "order_agnostic": self.order_agnostic,
            "direct_connections": self.direct_connections,
            "allow_missing": self.allow_missing,
        }

    def _column_kinds(self, X, frame_categories) -> list[str]:
        return infer_kinds(X, self.distribution, self.max_categories, frame_categories)

    def _fit_columns(self, X, weights, kinds, frame_categories) -> ColumnCodec:
        codec = ColumnCodec.fit(
            X, weights, kinds, frame_categories, self.max_categories
        )
        if self.atoms and isinstance(X, np.ndarray):
            codec.find_atoms(X, weights)
        return codec

    def _check_parameters(self, n_features: int) -> None:
        if not isinstance(self.ordering, str):
            check_orderings(self.ordering, n_features, self.n_masks)
        if self.n_eval_masks is not None and self.n_eval_masks > self.n_masks:
            raise ValueError(
                f"n_eval_masks={self.n_eval_masks} is larger than n_masks="
                f"{self.n_masks}; inference can only average masks that were trained."
            )

    def _unknown_policy(self) -> str:
        return self.handle_unknown

    def _allows_missing(self) -> bool:
        return bool(self.allow_missing)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = bool(self.allow_missing)
        return tags

    # ------------------------------------------------------------------ fitting

    def _build_module(self, Z, weights, Z_val, weights_val, n_rows, hidden, rng):
        """A MADE with fresh masks, its output bias at the independent model and,
        where it can, its direct path at the data's Gaussian."""
        n_features = Z.shape[1]
        family = self._family()
        orderings = make_orderings(
            self.ordering, n_features, self.n_masks, self.order_agnostic, rng
        )
        degrees = make_degrees(orderings, hidden, rng, self._lowest_hidden_degree())
        layout = {}
        if isinstance(family, Table):
            layout = dict(
                input_sizes=family.input_sizes, output_sizes=family.output_sizes
            )
        module = MADE(
            [torch.from_numpy(d) for d in degrees],
            family.n_params,
            direct=self.direct_connections_,
            any_order=self.allow_missing,
            **layout,
        )
        module.reset_parameters(self._torch_generator(rng))
        self._bound_inputs(module, family, ((Z, weights), (Z_val, weights_val)))
        with torch.no_grad():
            bias = family.initial_bias(self._complete_for_start(Z), weights)
            module.layers[-1].bias.copy_(torch.as_tensor(bias.reshape(-1)))
        if self.allow_missing:  # an ordering per row: a Gaussian for any ordering
            self._gaussian_base(module, family, Z, weights, Z_val, weights_val, rng)
        else:
            self._linear_gaussian_start(
                module, family, Z, weights, n_rows, Z_val, weights_val
            )
        self.orderings_ = orderings
        return module

    def _bound_inputs(self, module, family, parts) -> None:
        """Clip the network's continuous inputs to the range of the fit's rows
        (``parts``: ``(Z, weights)`` pairs), widened by half its width each side.

        A context far outside the training range (an outlier in an earlier
        column) would otherwise push the network's outputs, scales included, far
        beyond anything it was trained on: on small tables a single such row could
        cost thousands of nats. Each conditional stays a normalized distribution
        of its own value, which is still scored as it is.
        """
        kinds = np.asarray(self.column_distributions_)
        continuous = np.flatnonzero(kinds == "gaussian")
        # Rows of weight zero are not in the data (as with repeated rows).
        parts = [P[w > 0][:, continuous] for P, w in parts if (w > 0).any()]
        if not continuous.size or not parts:
            return
        with warnings.catch_warnings():  # an all-missing column stays unbounded
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanmin([np.nanmin(P, axis=0) for P in parts], axis=0)
            high = np.nanmax([np.nanmax(P, axis=0) for P in parts], axis=0)
        units = continuous
        if isinstance(family, Table):  # one-hot blocks shift the input units
            units = family.in_starts[continuous]
        width = high - low
        low, high = low - _INPUT_MARGIN * width, high + _INPUT_MARGIN * width
        n_inputs = module.layers[0].in_features
        bounds = np.full((2, n_inputs), np.inf)
        bounds[0] = -np.inf
        bounds[0, units] = np.where(np.isnan(low), -np.inf, low)
        bounds[1, units] = np.where(np.isnan(high), np.inf, high)
        dtype = module.layers[0].weight.dtype
        module.set_input_bounds(*torch.as_tensor(bounds, dtype=dtype))

    def _lowest_hidden_degree(self) -> int:
        """The smallest degree a hidden unit may have (1: the paper's rule)."""
        return 1

    def _direct(self, kinds) -> bool:
        if self.direct_connections == "auto":
            return "categorical" not in kinds
        return self.direct_connections

    # direct_connections='auto' on a table with continuous columns trains both
    # ways and keeps the better on the validation rows (see the parameter).
    _compares_direct_path = True

    def _compares_direct_path_for(self, source, kinds) -> bool:
        return (
            self._compares_direct_path
            and self.direct_connections == "auto"
            and "gaussian" in kinds
            and source.validation[0].shape[0] > 0
            and not isinstance(source.rows, StreamedRows)
            and not self.allow_missing
            and (self.n_masks == 1 or not self.order_agnostic)
        )

    def _start_and_train(self, source, incremental):
        """Train a new model, or continue one; with ``direct_connections='auto'``
        and continuous columns, train with and without the direct path (from the
        same random state) and keep the plain network only where the validation
        rows show a clear gain (a paired t-test, as early stopping's)."""
        if source.continuing:
            return super()._start_and_train(source, incremental)
        kinds = source.codec.kinds
        self.direct_connections_ = self._direct(kinds)
        if not (
            self.direct_connections_ and self._compares_direct_path_for(source, kinds)
        ):
            return super()._start_and_train(source, incremental)
        second = dataclasses.replace(source, rng=copy.deepcopy(source.rng))
        Z_val, weights_val = source.validation
        super()._start_and_train(source, incremental)
        direct_rows = self._validation_log_likelihood(Z_val)
        with_direct = dict(self.__dict__)
        self.direct_connections_ = False
        super()._start_and_train(second, incremental)
        # The plain network must clearly win: on a handful of validation rows it
        # would by chance (a table of three rows: -1,266 nats per held-out row).
        gain = self._validation_log_likelihood(Z_val) - direct_rows
        if not clear_gain(gain, weights_val):
            self.__dict__.clear()
            self.__dict__.update(with_direct)
        return self

    # ------------------------------------------------------------------ fitted state

    @property
    def distribution_(self) -> str:
        """The family all columns share, or ``'mixed'``."""
        return self._fitted_columns("distribution_").distribution

    @property
    def column_distributions_(self) -> np.ndarray:
        """Family of each column."""
        return self._fitted_columns("column_distributions_").kinds

    @property
    def categories_(self) -> list:
        """Categories of each categorical column in code order (None elsewhere)."""
        return self._fitted_columns("categories_").categories

    # ------------------------------------------------------------------ inference

    def _family(self, n_components=None):
        """The output family of the fitted columns.

        ``n_components`` defaults to the value the network was fitted with, so that
        ``set_params`` after ``fit`` cannot change the meaning of its outputs.
        """
        if n_components is None:
            n_components = self._fitted_structure["n_components"]
        return codec_family(self._fitted_columns("_family"), n_components)

    @torch.no_grad()
    def sample(self, n_samples=1, random_state=None, *, given=None):
        """Draw rows exactly from the fitted density, or complete given rows.

        Each row picks one of the ``n_eval_masks`` masks uniformly (the mixture that
        :meth:`score_samples` evaluates), then draws its variables one by one in that
        mask's ordering. Rows are drawn in batches per mask, and incrementally: every
        hidden unit is computed once, as soon as the variables it depends on are
        drawn, so a batch costs about one forward pass plus ``n_features`` small
        steps rather than ``n_features`` full passes.

        With ``given`` (a model fitted with ``allow_missing=True``), each given row's
        missing entries (NaN) are drawn from their conditional distribution given its
        observed entries, ``n_samples`` times: a mask is picked with probability
        proportional to its marginal likelihood of the observed entries (its
        posterior responsibility), then the missing variables are drawn one by one
        in that mask's ordering rearranged to put the observed ones first. This is
        exact for the mixture that :meth:`score_samples` evaluates; it costs one
        pass of the network per missing variable.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw, or with ``given`` the number of draws per given
            row.

        random_state : int, RandomState instance or None, default=None
            Seeds the draw. ``None`` uses numpy's global random state, as
            :meth:`sklearn.neighbors.KernelDensity.sample` does.

        given : array-like or DataFrame of shape (n_given, n_features), default=None
            Rows to complete: NaN marks the entries to draw, the other entries are
            kept as they are.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features) or \
                (n_given * n_samples, n_features)
            The drawn rows, in the units of the training data (categorical columns
            hold their categories). A DataFrame with the training frame's columns and
            categorical dtypes when the model was fitted on a DataFrame with
            categorical, object or string columns. With ``given``, row ``i`` of the
            result completes given row ``i // n_samples``.
        """
        if given is None:
            return super().sample(n_samples, random_state)
        self._check_n_samples(n_samples)
        if not self.allow_missing:
            raise ValueError(
                "sample(given=...) draws missing entries given observed ones, which "
                "needs a model trained for any ordering of the columns. Refit with "
                "allow_missing=True."
            )
        X = self._read_input(given)
        Z, impossible = self._columns_.scoring_values(X, "error")
        if impossible is not None:
            raise ValueError(
                "given holds continuous values more than 1e15 standard deviations "
                "from the training mean: the model gives them no probability, so "
                "nothing can be drawn given them."
            )
        X, Z = np.repeat(X, n_samples, axis=0), np.repeat(Z, n_samples, axis=0)
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        drawn = self._draw_given(module, Z, check_random_state(random_state), device)
        drawn = self._columns_.from_internal(drawn.cpu().double().numpy())
        observed = ~np.isnan(X)
        drawn[observed] = X[observed]  # exactly as given, not via standardization
        return self._columns_.output(drawn, getattr(self, "feature_names_in_", None))
