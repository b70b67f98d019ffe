"""MADEOutlierDetector: anomaly detection by log-likelihood."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from ._columns import _is_categorical_dtype, _is_frame
from ._dask import is_dask_collection, lazy_rows, set_stream_features
from ._density import MADEDensity
from ._utils import restore_on_error, weighted_quantile

# contamination='auto' flags the rows less likely than 99% of the training rows.
_AUTO_CONTAMINATION = 0.01


def _density_has_score_features(detector):
    density = detector.density_ if hasattr(detector, "density_") else detector.density
    return density is None or hasattr(density, "score_features")


class MADEOutlierDetector(OutlierMixin, BaseEstimator):
    """Outlier detection with a density model: the least likely rows are outliers.

    Fits a density (by default a :class:`MADEDensity`) to training data that is
    mostly normal, then scores rows by their log-likelihood: the lower, the more
    abnormal. The API is that of :class:`~sklearn.ensemble.IsolationForest` and of
    :class:`~sklearn.neighbors.LocalOutlierFactor` with ``novelty=True``.

    Parameters
    ----------
    density : estimator, default=None
        The density model, any estimator with ``fit`` and ``score_samples`` returning
        log-densities (it is cloned). ``None`` uses a :class:`MADEDensity` suited to
        tabular data: two hidden layers of 64 units, 4 order-agnostic masks, early
        stopping, column families chosen per column (``distribution='auto'``) and
        ``handle_unknown='ignore'``: a category never seen in training scores
        ``-inf``, the most abnormal possible. Its parameters can be tuned through
        the detector, e.g.
        ``GridSearchCV(detector, {"density__hidden_layer_sizes": [...]})``.

    contamination : 'auto' or float, default='auto'
        Expected proportion of outliers in the training data, in ``(0, 0.5]``: it sets
        ``offset_`` at that quantile of the training log-likelihoods. ``'auto'``
        uses 0.01, flagging rows less likely than 99% of the training rows.

    random_state : int, RandomState instance or None, default=None
        Seeds the default density (when ``density`` is None). A given ``density``
        keeps its own ``random_state``.

    Attributes
    ----------
    density_ : estimator
        The fitted density model.

    offset_ : float
        Threshold on the log-likelihood: :meth:`decision_function` is
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
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "random_state": ["random_state"],
    }

    def __init__(self, density=None, *, contamination="auto", random_state=None):
        self.density = density
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
            max_iter=300,
            handle_unknown="ignore",
            random_state=random_state,
        )

    # The density validates its own parameters in its own fit.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the density to X and set the outlier threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, mostly normal rows.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, passed to the density's ``fit``.

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
            fit_params = {}
            if sample_weight is not None:
                if not has_fit_parameter(density, "sample_weight"):
                    raise ValueError(
                        f"{type(density).__name__} does not accept sample_weight."
                    )
                fit_params["sample_weight"] = (
                    sample_weight
                    if lazy
                    else _check_sample_weight(
                        sample_weight, np.empty((_num_samples(X), 0))
                    )
                )
            density.fit(X, **fit_params)
            scores = density.score_samples(X)
            if lazy:
                # The threshold is a quantile of every training row's score: one
                # float per row is kept for it, not the rows.
                scores = np.asarray(scores.compute())
                if sample_weight is not None:
                    weights = fit_params["sample_weight"]
                    fit_params["sample_weight"] = np.asarray(
                        weights.compute() if hasattr(weights, "compute") else weights,
                        dtype=np.float64,
                    )
            contamination = (
                _AUTO_CONTAMINATION
                if self.contamination == "auto"
                else self.contamination
            )
            # One quantile definition with and without weights (the inverted CDF of
            # the weighted training rows), so a weight of 2 acts as a repeated row.
            weights = fit_params.get("sample_weight", np.ones(len(scores)))
            offset = weighted_quantile(scores, weights, contamination)
            self.offset_ = float(offset)
            if hasattr(density, "score_features"):
                # Typical contribution of each feature: explanations are relative
                # to it.
                weights = fit_params.get("sample_weight")
                contributions = density.score_features(X)
                if lazy:  # per-block sums: one pass, nothing kept
                    import dask.array as da

                    if weights is None:
                        total = contributions.sum(axis=0).compute()
                        self.feature_offsets_ = total / len(scores)
                    else:
                        if np.isnan(contributions.shape[0]):  # a DataFrame's blocks
                            contributions = contributions.compute_chunk_sizes()
                        chunks = (contributions.chunks[0],)
                        w = da.from_array(weights, chunks=chunks)[:, None]
                        total = (contributions * w).sum(axis=0).compute()
                        self.feature_offsets_ = total / weights.sum()
                else:
                    self.feature_offsets_ = np.average(
                        contributions, axis=0, weights=weights
                    )
            self.density_ = density
        return self

    def _validate(self, X, reset: bool):
        """Numeric X validated here; a DataFrame with categorical, object or string
        columns is checked for its columns only and left to the density, which codes
        those columns itself."""
        if _is_frame(X) and any(_is_categorical_dtype(d) for d in X.dtypes):
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)

    def _check_X(self, X):
        check_is_fitted(self)
        return self._validate(X, reset=False)

    def set_params(self, **params):
        """Set the parameters of the detector and of its density.

        ``density__<name>`` parameters also work with the default ``density=None``:
        the default density is then made explicit (seeded with ``random_state``)
        and its parameter set, so that ``GridSearchCV`` can tune it.

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
        """Log-likelihood of each row under the density; the lower, the more abnormal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``log p(x)`` of each row. A dask array X gives a lazy dask array
            (see :meth:`MADEDensity.score_samples`), as do the other row-wise
            methods.
        """
        X = self._check_X(X)
        return self.density_.score_samples(X)

    @lazy_rows()
    def decision_function(self, X):
        """Log-likelihood shifted by ``offset_``: negative for outliers.

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
        """How much less likely than usual each feature of each row is, in nats.

        The density's per-feature contributions (see
        :meth:`MADEDensity.score_features`: the conditionals ``log p(x_d | x_<d)``)
        minus each feature's mean contribution on the training data,
        ``feature_offsets_``. Raw contributions carry each feature's units (a
        feature measured in millimetres has a lower log-density than the same
        feature in metres); the difference does not, so features compare. Zero is
        as likely as a typical training row; the most negative features are the
        ones that make a row abnormal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain.

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
            Each row sums to its :meth:`score_samples` minus the mean training
            log-likelihood.
        """
        X = self._check_X(X)
        return self.density_.score_features(X) - self.feature_offsets_
