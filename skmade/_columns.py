"""The column codec: which family models each column, and how its values are coded.

MADE models every column with its own family: Bernoulli for 0/1 columns, categorical
for integer-coded (or pandas categorical) columns, Gaussian or a mixture of Gaussians
for continuous ones. This module decides the family of each column and, in
:class:`ColumnCodec`, holds the fitted column state and converts between the user's
values and the model's internal values: codes ``0..k-1`` for categorical columns,
standardized values for continuous ones, with the log-Jacobian that puts densities
back in the user's units, and DataFrame output for frames with categorical columns.
No torch here: the estimators feed the internal values to their networks.
"""

from __future__ import annotations

import numpy as np

from ._summary import SUMMARY_UNIQUE, ColumnSummary, standardization

KINDS = ("bernoulli", "categorical", "gaussian")


def _is_frame(X) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _is_categorical_dtype(dtype) -> bool:
    """pandas categorical, object and string columns are categorical."""
    import pandas as pd

    types = pd.api.types
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or types.is_object_dtype(dtype)
        or types.is_string_dtype(dtype)
    )


def describe_columns(columns) -> str:
    columns = np.asarray(columns)
    shown = columns[:10].tolist()
    return str(shown)[:-1] + (", ...]" if columns.size > 10 else "]")


def check_frame_columns(X, feature_names_in) -> None:
    """Clear errors for a DataFrame whose columns are not those seen in fit.

    Runs before any column is converted, so that a reordered frame is reported as
    reordered rather than as holding unknown categories.
    """
    if not _is_frame(X) or feature_names_in is None:
        return
    names = [str(name) for name in X.columns]
    expected = [str(name) for name in feature_names_in]
    if names == expected:
        return
    if sorted(names) == sorted(expected):
        raise ValueError(
            "X has the columns seen during fit but in another order; reorder them "
            f"with X[estimator.feature_names_in_] (expected {expected[:10]}, got "
            f"{names[:10]})."
        )
    unseen = [name for name in names if name not in expected]
    missing = [name for name in expected if name not in names]
    raise ValueError(
        "X's column names differ from those seen during fit: "
        f"unseen {unseen[:10]}, missing {missing[:10]}. Pass the columns the model "
        "was fitted on (estimator.feature_names_in_)."
    )


def _check_no_datetimes(X) -> None:
    import pandas as pd

    types = pd.api.types
    for name, dtype in X.dtypes.items():
        if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
            raise ValueError(
                f"Column {name!r} has dtype {dtype}; skmade models numbers and "
                "categories. Convert it first, for example to seconds with "
                "X[col].astype('int64') / 1e9, or to categories with "
                "X[col].astype('category')."
            )


def frame_to_numeric(
    X, categories: dict | None = None, handle_unknown="error", allow_missing=False
):
    """Replace the categorical columns of a DataFrame by their integer codes.

    Parameters
    ----------
    X : DataFrame or array-like
        Anything else than a DataFrame is returned unchanged.
    categories : dict or None
        ``{column index: categories}`` from a previous call (scoring), or None
        (fitting: the categories are read from the data).
    handle_unknown : {'error', 'ignore'}
        Unknown categories raise, or get the code -1 (which no model category has).
    allow_missing : bool
        Missing entries (NaN/None) become NaN codes; otherwise they raise.

    Returns
    -------
    X : DataFrame or array-like
        With categorical, object and string columns replaced by float codes.
    categories : dict
        ``{column index: ndarray of categories}`` of the converted columns.
    """
    if not _is_frame(X):
        return X, {}
    import pandas as pd

    _check_no_datetimes(X)
    fitting = categories is None
    if fitting:
        categories = {
            j: None for j, dtype in enumerate(X.dtypes) if _is_categorical_dtype(dtype)
        }
    if not categories:
        return X, {}
    X = X.copy()
    found = {}
    for j, known in categories.items():
        if j >= X.shape[1]:
            continue  # validate_data reports the wrong number of columns
        column = X.iloc[:, j]
        name = X.columns[j]
        if known is None:
            if isinstance(column.dtype, pd.CategoricalDtype):
                known = np.asarray(column.cat.categories, dtype=object)
            else:
                values = pd.unique(column.dropna())
                try:
                    values = np.sort(values)
                except TypeError:  # mixed types: first-seen order
                    pass
                known = np.asarray(values, dtype=object)
        codes = pd.Index(list(known)).get_indexer(column.astype(object))
        missing = column.isna().to_numpy()
        if missing.any() and not allow_missing:
            raise ValueError(
                f"Column {name!r} contains missing values (NaN/None). Use "
                "MADEDensity(allow_missing=True) to train on and score incomplete "
                "rows, or impute them first (skmade.MADEImputer)."
            )
        unknown_rows = (codes < 0) & ~missing
        if unknown_rows.any() and handle_unknown == "error":
            unknown = pd.unique(column[unknown_rows])[:5].tolist()
            raise ValueError(
                f"Column {name!r} contains categories {unknown} that were not seen "
                f"during fit (known: {list(known)[:10]}). Map them to known "
                "categories or refit with them."
            )
        X[name] = np.where(missing, np.nan, codes.astype(np.float64))
        found[j] = known
    return X, found


def infer_kinds(
    X: np.ndarray, distribution, max_categories: int, frame_categorical
) -> list[str]:
    """The family of every column, from ``distribution`` and the data.

    ``'auto'`` (for all columns, or as one entry of a list) gives ``'bernoulli'`` to
    0/1 columns, ``'categorical'`` to pandas categorical columns and to integer-valued
    columns with at most ``max_categories`` distinct values, and ``'gaussian'`` to the
    rest.
    """
    n_features = X.shape[1]
    if isinstance(distribution, str):
        spec = [distribution] * n_features
    else:
        spec = list(np.asarray(distribution, dtype=object).ravel())
        if len(spec) != n_features:
            raise ValueError(
                f"distribution has {len(spec)} entries but X has {n_features} "
                "columns; give one of 'auto', 'bernoulli', 'categorical', "
                "'gaussian' per column, or a single string."
            )
        bad = [s for s in spec if s not in (*KINDS, "auto")]
        if bad:
            raise ValueError(
                f"distribution entries must be 'auto', 'bernoulli', 'categorical' or "
                f"'gaussian'; got {bad[0]!r}."
            )
    if isinstance(X, ColumnSummary):
        binary = X.binary
        values = X.uniques
    else:
        missing = np.isnan(X)
        binary = np.all((X == 0) | (X == 1) | missing, axis=0)
        values = None
    kinds = []
    for j, kind in enumerate(spec):
        if j in frame_categorical:
            if kind not in ("auto", "categorical"):
                raise ValueError(
                    f"Column {j} has a categorical (or string) dtype but "
                    f"distribution says {kind!r} for it; use 'categorical' or "
                    "'auto', or convert the column to numbers first."
                )
            kind = "categorical"
        elif kind == "auto":
            column = X[~missing[:, j], j] if values is None else values[j]
            if binary[j]:
                kind = "bernoulli"
            elif (
                column is not None
                and np.all(column == np.round(column))
                and (np.unique(column).size <= max_categories)
            ):
                kind = "categorical"
            else:
                kind = "gaussian"
        kinds.append(kind)
    kinds_array = np.asarray(kinds)
    not_binary = np.flatnonzero((kinds_array == "bernoulli") & ~binary)
    if not_binary.size:
        raise ValueError(
            f"X contains values other than 0 and 1 in columns "
            f"{describe_columns(not_binary)}; distribution='bernoulli' needs binary "
            "data. Use distribution='gaussian' (or 'categorical', or 'auto') or "
            "binarize X (for example with sklearn.preprocessing.Binarizer)."
        )
    return kinds


def check_values(
    X: np.ndarray, kinds, code_values, distribution: str, handle_unknown="error"
):
    """Errors for values a fitted model gives no probability (scoring).

    Returns the ``(n, D)`` mask of unknown values (categories never seen, values
    other than 0 and 1 in a Bernoulli column) when ``handle_unknown`` is ``'ignore'``
    and there are any, else None.
    """
    kinds = np.asarray(kinds)
    unknown_mask = None
    bernoulli = np.flatnonzero(kinds == "bernoulli")
    if bernoulli.size:
        every = bernoulli.size == X.shape[1]  # all columns: no copy
        sub = X if every else X[:, bernoulli]
        # One product tells 0 and 1 from everything else (NaN included) in a
        # single pass; the per-entry mask is only built when something is off.
        with np.errstate(over="ignore", invalid="ignore"):
            off = sub * (sub - 1)
        bad = np.empty(0, dtype=int)
        if np.count_nonzero(off):
            not_binary = (off != 0) & ~np.isnan(sub)
            bad = bernoulli[not_binary.any(axis=0)]
        if bad.size and handle_unknown == "error":
            raise ValueError(
                f"X contains values other than 0 and 1 in columns "
                f"{describe_columns(bad)}, but this model was fitted with "
                f"distribution={distribution!r}, a Bernoulli family there, and gives "
                "them no probability. Binarize X as the training data was, or set "
                "handle_unknown='ignore' to score them as impossible (-inf)."
            )
        if bad.size:
            unknown_mask = np.zeros(X.shape, dtype=bool)
            unknown_mask[:, bernoulli] = not_binary
    for j in np.flatnonzero(kinds == "categorical"):
        known = code_values[j]
        unknown = ~np.isin(X[:, j], known) & ~np.isnan(X[:, j])
        if not unknown.any():
            continue
        if handle_unknown == "error":
            values = np.unique(X[unknown, j])[:5].tolist()
            raise ValueError(
                f"Column {j} contains categories {values} that were not seen during "
                f"fit (known: {known[:10].tolist()}). The model gives them no "
                "probability: map them to known categories, refit with them, or set "
                "handle_unknown='ignore' to score them as impossible (-inf)."
            )
        if unknown_mask is None:
            unknown_mask = np.zeros(X.shape, dtype=bool)
        unknown_mask[:, j] = unknown
    return unknown_mask


# Standardized continuous values beyond this many standard deviations score -inf:
# the network computes in float32 (about 3e38), and inf * 0 on a masked weight would
# turn the whole row into NaN.
MAX_STANDARDIZED = 1e15


def beyond_range(Z: np.ndarray) -> np.ndarray:
    """The ``(n, D)`` mask of standardized values too extreme to score (or NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return ~(np.abs(Z) <= MAX_STANDARDIZED)


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


def find_atoms(
    column: np.ndarray, weights: np.ndarray, max_atoms: int = 32
) -> np.ndarray | None:
    """The values a continuous column repeats often enough to be atoms.

    A value is an atom when at least 5 rows (of positive weight) and at least 1 %
    of the total weight take it exactly; at most ``max_atoms`` of them, the
    heaviest. Returns the atoms in increasing order, or None when the column has
    none (a column measured on a continuous scale repeats no value).
    """
    keep = ~np.isnan(column) & (weights > 0)
    values, inverse, rows = np.unique(
        column[keep], return_inverse=True, return_counts=True
    )
    if values.size == inverse.size:
        return None
    mass = np.bincount(inverse, weights=weights[keep], minlength=values.size)
    heavy = np.flatnonzero((rows >= 5) & (mass >= 0.01 * mass.sum()))
    if heavy.size == 0:
        return None
    heavy = heavy[np.argsort(-mass[heavy], kind="stable")[:max_atoms]]
    return np.sort(values[heavy])


class ColumnCodec:
    """Fitted column state of a table and the conversions to and from model values.

    Build one with :meth:`fit`. The estimators expose its state as their fitted
    attributes (``column_distributions_``, ``categories_``, ``mean_``, ``scale_``).

    Parameters
    ----------
    kinds : sequence of {'bernoulli', 'categorical', 'gaussian'}
        Family of each column.
    categories : list
        Per column: the categories in code order (categorical columns), or None.
    code_values : list
        Per column: the numeric values the codes stand for in X once DataFrame
        columns are converted (categorical columns), or None.
    frame_categories : dict
        ``{column index: categories}`` of the DataFrame columns that were
        categorical, object or string typed (their codes are in X already).
    mean, scale : ndarray of shape (n_features,) or None
        Standardization of the continuous columns (0 and 1 elsewhere); None when no
        column is continuous.
    """

    def __init__(self, kinds, categories, code_values, frame_categories, mean, scale):
        self.kinds = np.asarray(kinds).astype(object)
        self.categories = categories
        self.code_values = code_values
        self.frame_categories = frame_categories
        self.mean = mean
        self.scale = scale
        self.atoms = None

    def find_atoms(self, X: np.ndarray, weights: np.ndarray) -> None:
        """Set ``atoms``: per column, the model values of a continuous column's
        atoms (see :func:`find_atoms`), or None; None for all when no column has
        any."""
        atoms = [None] * len(self.kinds)
        for j, kind in enumerate(self.kinds):
            if kind == "gaussian":
                found = find_atoms(X[:, j], weights)
                if found is not None:
                    atoms[j] = (found - self.mean[j]) / self.scale[j]
        self.atoms = atoms if any(a is not None for a in atoms) else None

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        weights: np.ndarray,
        kinds,
        frame_categories: dict | None = None,
        max_categories: int = 20,
    ) -> ColumnCodec:
        """The codec of X's columns (already converted by :func:`frame_to_numeric`),
        or of a :class:`ColumnSummary` of them (``weights`` then unused).

        ``frame_categories`` are the categories that conversion found; numeric
        categorical columns get theirs from X (see :func:`_integer_range`), and
        continuous columns are standardized with the weighted mean and standard
        deviation (:func:`standardization`).
        """
        frame_categories = frame_categories or {}
        categories, code_values = [], []
        for j, kind in enumerate(kinds):
            if kind != "categorical":
                categories.append(None)
                code_values.append(None)
            elif j in frame_categories:  # X holds the codes already
                categories.append(frame_categories[j])
                code_values.append(np.arange(len(frame_categories[j])))
            else:
                if isinstance(X, ColumnSummary):
                    observed = X.uniques[j]
                    if observed is None:
                        raise ValueError(
                            f"Column {j} is categorical but has more than "
                            f"{SUMMARY_UNIQUE} distinct values; a model fitted "
                            "block by block keeps no more. Declare it 'gaussian' "
                            "in distribution, or recode it."
                        )
                else:
                    observed = X[~np.isnan(X[:, j]), j]
                values = _integer_range(np.unique(observed), max_categories)
                categories.append(values)
                code_values.append(values)
        continuous = np.asarray(kinds) == "gaussian"
        mean = scale = None
        if continuous.any():
            if isinstance(X, ColumnSummary):
                mean, scale = X.standardization()
            else:
                mean, scale = standardization(X, weights)
            mean = np.where(continuous, mean, 0.0)
            scale = np.where(continuous, scale, 1.0)
        return cls(kinds, categories, code_values, frame_categories, mean, scale)

    @property
    def distribution(self) -> str:
        """The family all columns share, or ``'mixed'``."""
        shared = np.unique(self.kinds.astype(str))
        return str(shared[0]) if shared.size == 1 else "mixed"

    @property
    def n_categories(self) -> list:
        """Per column: the number of categories, or None."""
        return [None if v is None else len(v) for v in self.code_values]

    # ---------------------------------------------------------------- reading X

    def read_frame(
        self, X, feature_names_in, handle_unknown="error", allow_missing=False
    ):
        """A DataFrame's categorical columns replaced by codes, as during fit.

        Anything else than a DataFrame is returned unchanged; a frame with other
        columns than those seen in fit gets a clear error first.
        """
        check_frame_columns(X, feature_names_in)
        X, _ = frame_to_numeric(X, self.frame_categories, handle_unknown, allow_missing)
        return X

    def check_values(self, X: np.ndarray, handle_unknown="error"):
        """Errors for values the model gives no probability (see
        :func:`check_values`); the mask of unknown values, or None."""
        return check_values(
            X, self.kinds, self.code_values, self.distribution, handle_unknown
        )

    def scoring_values(self, X: np.ndarray, handle_unknown="error"):
        """Model values of validated X and the ``(n, D)`` mask of impossible entries.

        Impossible: unknown values (``handle_unknown='ignore'``) and continuous values
        too extreme for the network (:func:`beyond_range`); both are replaced by 0 so
        that a network computes finite values for the rest of the row. The mask is
        None when there are none. Missing entries (NaN) stay NaN.
        """
        impossible = self.check_values(X, handle_unknown)
        Z = self.to_internal(X)
        if self.mean is not None:
            extreme = beyond_range(Z) & ~np.isnan(Z) & (self.kinds == "gaussian")
            if extreme.any():
                impossible = extreme if impossible is None else impossible | extreme
        if impossible is not None:
            Z = np.where(impossible, 0.0, Z)
        return Z, impossible

    # ---------------------------------------------------------------- conversions

    def to_internal(self, X: np.ndarray) -> np.ndarray:
        """Model values: codes for categorical columns, standardized continuous.

        Values that are not categories (unknown ones) get code 0; missing entries
        (NaN) stay NaN.
        """
        if self.mean is not None:
            X = (X - self.mean) / self.scale
        if any(values is not None for values in self.code_values):
            X = np.array(X, dtype=np.float64)
            for j, values in enumerate(self.code_values):
                if values is not None:
                    column = X[:, j]
                    codes = np.searchsorted(values, column).clip(0, len(values) - 1)
                    codes = np.where(values[codes] == column, codes, 0)
                    X[:, j] = np.where(np.isnan(column), np.nan, codes)
        return X

    def from_internal(self, Z: np.ndarray) -> np.ndarray:
        """The user's values (numeric codes of frame categories) of model values."""
        X = Z if self.mean is None else Z * self.scale + self.mean
        for j, values in enumerate(self.code_values):
            if values is not None:
                X[:, j] = values[Z[:, j].astype(np.int64)]
        return X

    def feature_log_jacobian(self) -> np.ndarray | None:
        """Per column ``-log scale``: the log-Jacobian of standardization (or None)."""
        return None if self.scale is None else -np.log(self.scale)

    def log_jacobian(self) -> float:
        """What a row's log-density in model values gains in the user's units."""
        return 0.0 if self.scale is None else -float(np.sum(np.log(self.scale)))

    def output(self, X: np.ndarray, feature_names):
        """Rows for the user: a DataFrame with the training frame's categorical
        columns when it had any, else X."""
        if not self.frame_categories:
            return X
        import pandas as pd

        frame = pd.DataFrame(X, columns=feature_names)
        for j, categories in self.frame_categories.items():
            frame[frame.columns[j]] = pd.Categorical.from_codes(
                X[:, j].astype(np.int64), categories=list(categories)
            )
        return frame
