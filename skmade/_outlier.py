"""MADEOutlierDetector: anomaly detection by log-likelihood."""

from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from ._calibration import MAX_CALIBRATION_ROWS, SurpriseCalibration
from ._columns import _is_categorical_dtype, _is_frame
from ._dask import (
    is_dask_collection,
    is_dask_frame,
    lazy_rows,
    set_stream_features,
)
from ._density import MADEDensity
from ._utils import restore_on_error, weighted_quantile

# contamination='auto' flags the rows less likely than 99% of the training rows.
_AUTO_CONTAMINATION = 0.01

# The default density trains for about this many optimizer steps, however many rows:
# on the development suite a budget of a third of this cost 0.001 in mean ROC-AUC,
# and it keeps a 10,000-row fit within a few times IsolationForest's.
_DEFAULT_STEPS = 2500
_DEFAULT_MAX_ITER = 300


def _epoch_budget(n_samples, density):
    """Epochs of ``density`` (batch and validation split as set) in the step budget."""
    n_train = (1 - density.validation_fraction) * n_samples
    batch_size = density.batch_size
    if batch_size == "auto":
        batch_size = density._auto_batch_size(int(n_train))
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(
        np.clip(math.ceil(_DEFAULT_STEPS / steps_per_epoch), 2, _DEFAULT_MAX_ITER)
    )


def _density_has_score_features(detector):
    density = detector.density_ if hasattr(detector, "density_") else detector.density
    return density is None or hasattr(density, "score_features")


def _take_rows(X, rows):
    """Rows of an array or a DataFrame (by position)."""
    return X.iloc[rows] if _is_frame(X) else X[rows]


class MADEOutlierDetector(OutlierMixin, BaseEstimator):
    """Outlier detection with a density model: the least likely rows are outliers.

    Fits a density (by default a :class:`MADEDensity`) to training data that is
    mostly normal and scores rows by how surprising each feature is given the
    others, calibrated on normal rows: the lower, the more abnormal. The
    API is that of :class:`~sklearn.ensemble.IsolationForest` and of
    :class:`~sklearn.neighbors.LocalOutlierFactor` with ``novelty=True``.

    Parameters
    ----------
    density : estimator, default=None
        The density model, any estimator with ``fit`` and ``score_samples`` returning
        log-densities (it is cloned). ``None`` uses a :class:`MADEDensity` suited to
        tabular data: two hidden layers of 64 units, 4 order-agnostic masks, early
        stopping, column families chosen per column (``distribution='auto'``) and
        ``handle_unknown='ignore'``: a category never seen in training scores
        ``-inf``, the most abnormal possible. It trains for about 2,500 optimizer
        steps whatever the number of rows (``max_iter`` is set in ``fit`` to that
        many epochs, between 2 and 300), so that large tables fit in seconds; a
        density passed here, or made explicit by ``set_params``, trains as it is set.
        Its parameters can be tuned through the detector, e.g.
        ``GridSearchCV(detector, {"density__hidden_layer_sizes": [...]})``.

    statistic : {'calibrated', 'likelihood'}, default='calibrated'
        What :meth:`score_samples` returns.

        - ``'calibrated'``: the sum over features of the log p-value of each
          feature's surprise ``-log p_k(x_d | x_<d)`` among normal rows,
          averaged over the density's masks (see Notes). Features on any scale,
          with atoms or few values, count alike.
        - ``'likelihood'``: the density's log-likelihood ``log p(x)``.

    calibration_fraction : float or None, default=None
        Where the surprises are calibrated (``statistic='calibrated'``). ``None``: on
        the training rows (a random sample of at most 4096), the density fitted on
        all of them; with an early-stopped density such as the default this
        detects best (see the anomaly benchmark's findings). A float in ``(0, 1)``
        holds that share of the rows (at most 4096) out of the density's fit to
        calibrate on, for densities that fit their training rows too closely
        (e.g. a :class:`~sklearn.neighbors.KernelDensity` with a small
        bandwidth). A dask collection is always calibrated on a sample of its
        training rows.

    contamination : 'auto' or float, default='auto'
        Expected proportion of outliers in the training data, in ``(0, 0.5]``: it sets
        ``offset_`` at that quantile of the training rows' scores. ``'auto'`` uses
        0.01, flagging rows scored lower than 99% of the training rows.

    random_state : int, RandomState instance or None, default=None
        Seeds the calibration split and the default density (when ``density`` is
        None). A given ``density`` keeps its own ``random_state``.

    Attributes
    ----------
    density_ : estimator
        The fitted density model.

    calibration_ : object
        The calibration rows' surprises per mask and feature (with
        ``statistic='calibrated'``).

    offset_ : float
        Threshold on the score: :meth:`decision_function` is
        ``score_samples(X) - offset_`` and rows below zero are outliers.

    feature_offsets_ : ndarray of shape (n_features,)
        Mean per-feature contribution on the training data, the reference of
        :meth:`score_features`. Only when the density has ``score_features``.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X` has feature
        names that are all strings.

    See Also
    --------
    MADEDensity : The default density model.
    sklearn.ensemble.IsolationForest : Isolation-based outlier detection.
    sklearn.neighbors.LocalOutlierFactor : Local-density-based outlier detection.

    Notes
    -----
    The calibrated score. A density's log-likelihood adds conditionals
    ``log p(x_d | x_<d)`` that do not compare across features: a continuous feature
    with a tight conditional, or a column whose rows pile on a few values, moves the
    sum by many nats for an ordinary row. The calibrated score replaces each
    conditional by its rank among the calibration rows: for mask
    ``k`` and feature ``d``, ``log P(S >= s)`` where ``s = -log p_k(x_d | x_<d)``
    and ``S`` is that surprise on a calibration row (the empirical p-value
    ``#{S_i >= s} / m``, weighted by ``sample_weight``; beyond the most
    surprising calibration row it falls one nat per nat of extra surprise). A row's
    score is the sum over features of these log p-values averaged over masks: at
    most 0, lower as any conditional gets less likely, ``-inf`` where the density
    gives a value no probability. It is what ECOD does with marginal tails, here
    with MADE's conditionals, so dependencies between features count. A density
    without per-feature conditionals is calibrated on its log-likelihood.

    The default density models 0/1 columns as Bernoulli, integer columns with at most
    20 distinct values as categorical and the rest as continuous. It standardizes
    each continuous feature, gives constant ones a scale of 1 and keeps every
    Gaussian scale above ``exp(-7)`` standard deviations, so nearly constant
    continuous columns give large but finite log-likelihoods. Values the model gives
    no probability score ``-inf``, the most abnormal possible, and never raise: a
    category never seen in training (an integer outside the training values
    included), a value other than 0 and 1 in a column that was binary, and a
    continuous value more than ``1e15`` standard deviations from the training mean.
    DataFrames with string, object or pandas categorical columns are passed to the
    density as they are.

    Examples
    --------
    >>> import numpy as np
    >>> from skmade import MADEOutlierDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 3)
    >>> detector = MADEOutlierDetector(contamination=0.05, random_state=0).fit(X)
    >>> detector.predict([[0.0, 0.1, -0.2], [8.0, -9.0, 7.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "density": [HasMethods(["fit", "score_samples"]), None],
        "statistic": [StrOptions({"calibrated", "likelihood"})],
        "calibration_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        density=None,
        *,
        statistic="calibrated",
        calibration_fraction=None,
        contamination="auto",
        random_state=None,
    ):
        self.density = density
        self.statistic = statistic
        self.calibration_fraction = calibration_fraction
        self.contamination = contamination
        self.random_state = random_state

    def _make_density(self):
        if self.density is not None:
            return clone(self.density)
        return self._default_density(self.random_state)

    @staticmethod
    def _default_density(random_state):
        return MADEDensity(
            hidden_layer_sizes=(64, 64),
            n_masks=4,
            order_agnostic=True,
            early_stopping=True,
            learning_rate_init=3e-3,
            max_iter=_DEFAULT_MAX_ITER,
            handle_unknown="ignore",
            # Atoms lower the development suite's mean ROC-AUC (0.851 -> 0.847) and
            # slow the fit: point masses sharpen the conditionals on repeated
            # values, which the calibration already takes out of the score.
            atoms=False,
            random_state=random_state,
        )

    # The density validates its own parameters in its own fit.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the density to X, calibrate its surprises and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, mostly normal rows.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, passed to the density's ``fit`` and used in the
            calibration and the threshold.

        Returns
        -------
        self : object
            The fitted detector.
        """
        density = self._make_density()
        # A failed fit (bad input, divergence, interrupt) leaves the detector as it was.
        with restore_on_error(self):
            lazy = is_dask_collection(X)
            if lazy:  # the density fits on it block by block
                set_stream_features(self, X)
            else:
                X = self._validate(X, reset=True)
            if sample_weight is not None:
                if not has_fit_parameter(density, "sample_weight"):
                    raise ValueError(
                        f"{type(density).__name__} does not accept sample_weight."
                    )
                if not lazy:
                    sample_weight = _check_sample_weight(
                        sample_weight, np.empty((_num_samples(X), 0))
                    )
            rng = check_random_state(self.random_state)
            calibrated = self.statistic == "calibrated"
            held_out = calibrated and self.calibration_fraction is not None
            fit_rows = calibration_rows = None
            if held_out and not lazy:
                fit_rows, calibration_rows = self._calibration_split(
                    _num_samples(X), rng
                )
            X_fit = X if fit_rows is None else _take_rows(X, fit_rows)
            fit_params = {}
            if sample_weight is not None:
                fit_params["sample_weight"] = (
                    sample_weight if fit_rows is None else sample_weight[fit_rows]
                )
            budgeted = self.density is None and not lazy
            with warnings.catch_warnings():
                if budgeted:
                    # Stopping at the step budget is the default's design, not a
                    # failure to converge that the user should act on.
                    density.set_params(
                        max_iter=_epoch_budget(_num_samples(X_fit), density)
                    )
                    warnings.filterwarnings(
                        "ignore", "MADEDensity stopped at max_iter", ConvergenceWarning
                    )
                density.fit(X_fit, **fit_params)
            self.density_ = density
            if lazy and sample_weight is not None:
                sample_weight = np.asarray(
                    sample_weight.compute()
                    if hasattr(sample_weight, "compute")
                    else sample_weight,
                    dtype=np.float64,
                )
            if calibrated:
                if lazy:
                    X_cal, w_cal = self._lazy_calibration_rows(X, sample_weight, rng)
                else:
                    if calibration_rows is None:  # a sample of the training rows
                        n_samples = _num_samples(X)
                        calibration_rows = np.sort(
                            rng.choice(
                                n_samples,
                                min(n_samples, MAX_CALIBRATION_ROWS),
                                replace=False,
                            )
                        )
                    X_cal = _take_rows(X, calibration_rows)
                    w_cal = (
                        np.ones(len(calibration_rows))
                        if sample_weight is None
                        else sample_weight[calibration_rows]
                    )
                self.calibration_ = SurpriseCalibration(
                    -self._mask_conditionals(X_cal), w_cal
                )
            scores = self.score_samples(X)
            if lazy:
                # The threshold is a quantile of every training row's score: one
                # float per row is kept for it, not the rows.
                scores = np.asarray(scores.compute())
            contamination = (
                _AUTO_CONTAMINATION
                if self.contamination == "auto"
                else self.contamination
            )
            # One quantile definition with and without weights (the inverted CDF of
            # the weighted training rows), so a weight of 2 acts as a repeated row.
            weights = np.ones(len(scores)) if sample_weight is None else sample_weight
            self.offset_ = float(weighted_quantile(scores, weights, contamination))
            if _density_has_score_features(self):
                # Typical contribution of each feature: explanations are relative
                # to it.
                self.feature_offsets_ = self._mean_contributions(
                    self._contributions(X), sample_weight, lazy, len(scores)
                )
        return self

    def _calibration_split(self, n_samples, rng):
        """Rows the density fits on and rows that calibrate it, both sorted."""
        n_calibration = min(
            max(1, math.floor(self.calibration_fraction * n_samples)),
            MAX_CALIBRATION_ROWS,
        )
        if n_samples - n_calibration < 2:  # too few rows to hold any out
            rows = np.arange(n_samples)
            return rows, rows
        permutation = rng.permutation(n_samples)
        return (
            np.sort(permutation[n_calibration:]),
            np.sort(permutation[:n_calibration]),
        )

    @staticmethod
    def _lazy_calibration_rows(X, sample_weight, rng):
        """A random sample of a dask collection's rows (and their weights)."""
        import dask

        if is_dask_frame(X):
            lengths = np.asarray(dask.compute(*X.map_partitions(len).to_delayed()))
        else:
            if np.isnan(X.shape[0]):
                X = X.compute_chunk_sizes()
            lengths = np.asarray(X.chunks[0])
        n_rows = int(lengths.sum())
        take = np.sort(
            rng.choice(n_rows, min(n_rows, MAX_CALIBRATION_ROWS), replace=False)
        )
        weights = np.ones(len(take)) if sample_weight is None else sample_weight[take]
        if not is_dask_frame(X):
            return np.asarray(X[take].compute()), weights
        starts = np.concatenate([[0], np.cumsum(lengths)])
        parts = [
            part.iloc[take[(take >= start) & (take < stop)] - start]
            for part, start, stop in zip(
                X.to_delayed(), starts[:-1], starts[1:], strict=True
            )
        ]
        import pandas as pd

        return pd.concat(dask.compute(*parts)), weights

    def _mask_conditionals(self, X):
        """``(K, n, D)`` conditionals of the density to calibrate: every mask's for a
        MADE, its ``score_features`` or (``(1, n, 1)``) its log-likelihood else."""
        density = self.density_
        if hasattr(density, "_mask_conditionals"):
            return density._mask_conditionals(X)
        if hasattr(density, "score_features"):
            return np.asarray(density.score_features(X), dtype=np.float64)[None]
        return np.asarray(density.score_samples(X), dtype=np.float64)[None, :, None]

    def _feature_scores(self, X):
        """``(n, D)`` per-feature log p-values, averaged over masks."""
        surprises = -self._mask_conditionals(X)
        return self.calibration_.log_pvalues(surprises).mean(axis=0)

    def _contributions(self, X):
        """Per-feature parts of :meth:`score_samples` (before ``feature_offsets_``)."""
        if self.statistic == "calibrated":
            if is_dask_collection(X):
                return self._lazy_feature_scores(X)
            return self._feature_scores(X)
        return self.density_.score_features(X)

    @lazy_rows(lambda estimator: estimator.n_features_in_)
    def _lazy_feature_scores(self, X):
        return self._feature_scores(X)

    @staticmethod
    def _mean_contributions(contributions, weights, lazy, n_rows):
        """Weighted mean of each feature's contribution; one pass over dask blocks."""
        if not lazy:
            return np.average(contributions, axis=0, weights=weights)
        import dask.array as da

        if weights is None:
            return contributions.sum(axis=0).compute() / n_rows
        if np.isnan(contributions.shape[0]):  # a DataFrame's blocks
            contributions = contributions.compute_chunk_sizes()
        chunks = (contributions.chunks[0],)
        w = da.from_array(weights, chunks=chunks)[:, None]
        return (contributions * w).sum(axis=0).compute() / weights.sum()

    def _validate(self, X, reset: bool):
        """Numeric X validated here; a DataFrame with categorical, object or string
        columns is checked for its columns only and left to the density, which codes
        those columns itself."""
        if _is_frame(X) and any(_is_categorical_dtype(d) for d in X.dtypes):
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)

    def _check_X(self, X):
        check_is_fitted(self, "density_")
        return self._validate(X, reset=False)

    def set_params(self, **params):
        """Set the parameters of the detector and of its density.

        ``density__<name>`` parameters also work with the default ``density=None``:
        the default density is then made explicit (seeded with ``random_state``,
        ``max_iter=300`` rather than the default's step budget unless
        ``density__max_iter`` is given) and its parameter set, so that
        ``GridSearchCV`` can tune it.

        Parameters
        ----------
        **params : dict
            Detector parameters, and ``density__<name>`` for the density's.

        Returns
        -------
        self : MADEOutlierDetector
            This detector.
        """
        nested = any(key.startswith("density__") for key in params)
        if nested and params.get("density", self.density) is None:
            seed = params.get("random_state", self.random_state)
            params = {"density": self._default_density(seed), **params}
        return super().set_params(**params)

    @lazy_rows()
    def score_samples(self, X):
        """How normal each row is; the lower, the more abnormal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            With ``statistic='calibrated'``, the sum over features of the log p-values
            of their surprises (at most 0; see Notes), with ``'likelihood'``
            ``log p(x)``; ``-inf`` for values the density gives no probability.
            A dask array X gives a lazy dask array (see
            :meth:`MADEDensity.score_samples`), as do the other row-wise methods.
        """
        X = self._check_X(X)
        if self.statistic == "calibrated":
            return self._feature_scores(X).sum(axis=1)
        return self.density_.score_samples(X)

    @lazy_rows()
    def decision_function(self, X):
        """Score shifted by ``offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``.
        """
        return self.score_samples(X) - self.offset_

    @lazy_rows(dtype=int)
    def predict(self, X):
        """Label rows as inliers (+1) or outliers (-1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 where ``decision_function(X) >= 0``, -1 elsewhere.
        """
        decision = self.decision_function(X)
        labels = np.ones(decision.shape[0], dtype=int)
        labels[decision < 0] = -1
        return labels

    @available_if(_density_has_score_features)
    @lazy_rows(lambda estimator: estimator.n_features_in_)
    def score_features(self, X):
        """How much less normal than usual each feature of each row is.

        With ``statistic='calibrated'`` a feature's contribution is the log p-value of
        its surprise, averaged over masks (see Notes); with ``'likelihood'`` it is
        the density's (see :meth:`MADEDensity.score_features`: the conditionals
        ``log p(x_d | x_<d)``, which carry each feature's units). Either way each
        feature's mean contribution on the training data, ``feature_offsets_``, is
        subtracted: zero is as normal as a typical training row, and the most
        negative features are the ones that make a row abnormal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain.

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
            Each row sums to its :meth:`score_samples` minus the mean training
            score.
        """
        X = self._check_X(X)
        return self._contributions(X) - self.feature_offsets_
