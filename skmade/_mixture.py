"""DensityMixture: a uniform (or weighted) mixture of independently fitted densities."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, DensityMixin, _fit_context, clone
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted


def _fit_member(estimator, X, sample_weight):
    if sample_weight is None:
        return estimator.fit(X)
    return estimator.fit(X, sample_weight=sample_weight)


class DensityMixture(DensityMixin, BaseEstimator):
    """Mixture of density estimators, each fitted on its own to the same data.

    The mixture's density is ``sum_k w_k p_k(x)`` with fixed weights ``w_k``
    (uniform by default): a normalized density whenever every member's is. Each
    member is a clone of an estimator of ``estimators``, fitted to all of ``X``;
    nothing is shared between members. Mixing models that factorize the data
    differently (MADEs with different orderings, say) usually scores better than
    any of them alone, at the cost of fitting each one.

    Parameters
    ----------
    estimators : list of (str, estimator) tuples
        The members, as in :class:`~sklearn.ensemble.VotingRegressor`: each has
        ``fit`` and ``score_samples`` (and ``sample`` for :meth:`sample`). Names
        must be unique.

    weights : array-like of shape (n_estimators,), default=None
        Mixture weights, positive; they are normalized to sum to one. ``None``
        weighs every member equally.

    n_jobs : int, default=None
        Members fitted in parallel by joblib. With the default ``loky`` backend each
        worker limits its threads, so torch members share the cores instead of
        oversubscribing them. ``None`` means 1.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members, in the order of ``estimators``.

    named_estimators_ : :class:`~sklearn.utils.Bunch`
        The fitted members by name.

    weights_ : ndarray of shape (n_estimators,)
        The normalized mixture weights.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, where the members record them.

    See Also
    --------
    MADEDensity : one MADE; with ``n_masks > 1`` its masks share weights.

    Examples
    --------
    >>> import numpy as np
    >>> from skmade import DensityMixture, MADEDensity
    >>> X = (np.random.RandomState(0).rand(300, 6) < 0.3).astype(float)
    >>> mixture = DensityMixture(
    ...     [
    ...         ("forward", MADEDensity(ordering="natural", random_state=0)),
    ...         ("backward", MADEDensity(ordering=np.arange(6)[::-1], random_state=0)),
    ...     ]
    ... ).fit(X)
    >>> mixture.score_samples(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        "estimators": [list],
        "weights": ["array-like", None],
        "n_jobs": [Interval(Integral, None, None, closed="neither"), None],
    }

    def __init__(self, estimators, *, weights=None, n_jobs=None):
        self.estimators = estimators
        self.weights = weights
        self.n_jobs = n_jobs

    def _check_members(self) -> np.ndarray:
        """Validate ``estimators`` and ``weights``; the normalized weights."""
        if not self.estimators:
            raise ValueError(
                "estimators is empty; give at least one (name, estimator) pair."
            )
        names = []
        for item in self.estimators:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ValueError(
                    f"estimators must be a list of (name, estimator) tuples; got "
                    f"{item!r}."
                )
            name, estimator = item
            if not hasattr(estimator, "fit") or not hasattr(estimator, "score_samples"):
                raise TypeError(
                    f"The estimator named {name!r} ({type(estimator).__name__}) has no "
                    "fit or no score_samples method; a mixture needs density "
                    "estimators."
                )
            names.append(name)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"Names of estimators must be unique; repeated: {repeated}."
            )
        if self.weights is None:
            return np.full(len(names), 1.0 / len(names))
        weights = np.asarray(self.weights, dtype=float)
        if weights.shape != (len(names),):
            raise ValueError(
                f"weights has shape {weights.shape}; it needs one weight per "
                f"estimator, shape ({len(names)},)."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError(f"weights must be finite and positive; got {weights}.")
        return weights / weights.sum()

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit a clone of every estimator to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, passed to every member unchanged.

        y : None
            Ignored.

        sample_weight : array-like of shape (n_samples,), default=None
            Passed to every member's ``fit``.

        Returns
        -------
        self : DensityMixture
            The fitted mixture.
        """
        weights = self._check_members()
        members = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(clone(estimator), X, sample_weight)
            for _, estimator in self.estimators
        )
        # Assigned only once every member is fitted: a failure leaves a fitted
        # mixture as it was.
        self.estimators_ = members
        self.named_estimators_ = Bunch(
            **{name: m for (name, _), m in zip(self.estimators, members, strict=True)}
        )
        self.weights_ = weights
        self.n_features_in_ = members[0].n_features_in_
        names = getattr(members[0], "feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def score_samples(self, X):
        """Log-density of the mixture at every row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score; every member checks them.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log sum_k w_k p_k(x)``, float64; ``-inf`` where every member gives
            zero density.
        """
        check_is_fitted(self)
        scores = np.stack(
            [np.asarray(m.score_samples(X), dtype=float) for m in self.estimators_]
        )
        scores += np.log(self.weights_)[:, None]
        top = scores.max(axis=0)
        finite = np.isfinite(top)
        shift = np.where(finite, top, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.exp(scores - shift).sum(axis=0)) + shift

    def score(self, X, y=None):
        """Mean log-likelihood of the rows of ``X`` (as in GaussianMixture).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        y : None
            Ignored.

        Returns
        -------
        log_likelihood : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw rows from the mixture: a member per row, then that member's draw.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seeds the choice of members and their draws.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            The drawn rows in random order, in the members' output type.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"n_samples must be a positive integer; got {n_samples!r}."
            )
        rng = check_random_state(random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        draws = [
            member.sample(int(count), random_state=rng.randint(np.iinfo(np.int32).max))
            for member, count in zip(self.estimators_, counts, strict=True)
            if count
        ]
        order = rng.permutation(n_samples)
        if hasattr(draws[0], "iloc"):  # DataFrames
            import pandas as pd

            return (
                pd.concat(draws, ignore_index=True).iloc[order].reset_index(drop=True)
            )
        return np.concatenate(draws)[order]
