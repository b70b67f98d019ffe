"""MADEImputer: missing values filled from a MADE density's conditionals."""

from __future__ import annotations

import numpy as np
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dask import is_dask_collection, lazy_rows, set_stream_features
from ._density import MADEDensity
from ._utils import restore_on_error


class MADEImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Impute missing values with a MADE density trained on the incomplete rows.

    :meth:`fit` trains a :class:`MADEDensity` with ``allow_missing=True`` on X as it
    is: no complete rows are needed, each row teaches the model through its observed
    entries. :meth:`transform` fills every missing entry (NaN) from the density's
    conditional distribution given the row's observed entries, which uses every
    dependency the model learned, not only the column's own distribution.

    By default each missing entry gets the mean (continuous columns) or the mode
    (binary and categorical columns) of its conditional distribution given the
    row's observed entries. One pass of the network gives all of them: with the
    observed variables first in the ordering and every missing variable right
    after them (at the same position), each missing variable's output is its
    conditional given the observed ones. The answer is the mixture of 16 such
    orderings (the density's evaluation masks with random orders of the observed
    variables), each weighted by its likelihood of the observed entries; this is
    deterministic. With ``sample_posterior=True`` the entries are instead drawn
    jointly from their conditional distribution (``MADEDensity.sample(given=...)``),
    as :class:`~sklearn.impute.IterativeImputer` does, for multiple imputation.

    For continuous and binary columns the density builds on a full-covariance
    Gaussian fitted to the incomplete rows by EM, whose conditionals it offsets (see
    ``allow_missing`` in :class:`MADEDensity`): on small tables the imputations are
    then at least those of that Gaussian, and the network adds what it can learn.
    ``benchmarks/results/imputation.md`` compares this imputer with scikit-learn's.

    Parameters
    ----------
    density : estimator, default=None
        The density to fit, a :class:`MADEDensity` (it is cloned, and
        ``allow_missing=True`` is set on the clone). ``None`` uses
        ``MADEDensity(allow_missing=True)`` with its defaults otherwise.

    sample_posterior : bool, default=False
        Fill a row's missing entries with one joint draw from their conditional
        distribution given the observed entries, instead of conditional means and
        modes.

    random_state : int, RandomState instance or None, default=None
        Seeds the default density and, with ``sample_posterior=True``, the draws.
        With an int, :meth:`transform` gives the same result on every call.

    Attributes
    ----------
    density_ : MADEDensity
        The fitted density.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when they are all strings.

    See Also
    --------
    sklearn.impute.IterativeImputer : Imputes each column from the others in turn.
    sklearn.impute.KNNImputer : Imputes from the nearest complete neighbours.
    MADEDensity : The density, whose ``sample(given=...)`` does the drawing.

    Examples
    --------
    >>> import numpy as np
    >>> from skmade import MADEDensity, MADEImputer
    >>> rng = np.random.RandomState(0)
    >>> x = rng.randn(300)
    >>> X = np.column_stack([x, 2 * x + 0.1 * rng.randn(300)])
    >>> X[::3, 1] = np.nan
    >>> imputer = MADEImputer(MADEDensity(hidden_layer_sizes=16), random_state=0)
    >>> X_filled = imputer.fit_transform(X)
    >>> bool(np.isnan(X_filled).any())
    False
    """

    _parameter_constraints: dict = {
        "density": [HasMethods(["fit", "sample", "set_params"]), None],
        "sample_posterior": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, density=None, *, sample_posterior=False, random_state=None):
        self.density = density
        self.sample_posterior = sample_posterior
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _make_density(self):
        if self.density is None:
            density = MADEDensity(random_state=self.random_state)
        else:
            density = clone(self.density)
        if "allow_missing" not in density.get_params():
            raise ValueError(
                f"density must be able to train on missing entries (a MADEDensity); "
                f"got {type(density).__name__}."
            )
        return density.set_params(allow_missing=True)

    def _validate(self, X, reset: bool) -> np.ndarray:
        return validate_data(
            self,
            X,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            reset=reset,
            copy=not reset,
        )

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the density to X, missing entries and all.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN marks missing entries.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        density = self._make_density()
        with restore_on_error(self):  # a failed fit leaves a fitted imputer as it was
            if is_dask_collection(X):  # the density fits on it block by block
                set_stream_features(self, X)
            else:
                X = self._validate(X, reset=True)
            self.density_ = density.fit(X)
        return self

    # Its draws come from one generator per call: a block stays one call.
    @lazy_rows(lambda estimator: estimator.n_features_in_, split=False)
    def transform(self, X):
        """Fill the missing entries of X from their conditional distributions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries (NaN).

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            X with every missing entry filled; observed entries are unchanged. A
            dask array X gives a lazy dask array, filled block by block (the fitted
            imputer enters the task graph once).
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        missing = np.isnan(X)
        rows = np.flatnonzero(missing.any(axis=1))
        if rows.size == 0:
            return X
        if self.sample_posterior:
            rng = check_random_state(self.random_state)
            filled = self.density_.sample(1, random_state=rng, given=X[rows])
            filled = np.asarray(filled, dtype=np.float64)
        else:
            filled = self.density_._complete(X[rows])
        X[rows] = np.where(missing[rows], filled, X[rows])
        return X
