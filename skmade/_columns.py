"""Column types of a table: which family models each column, and how it is coded.

MADE models every column with its own family: Bernoulli for 0/1 columns, categorical
for integer-coded (or pandas categorical) columns, Gaussian or a mixture of Gaussians
for continuous ones. This module decides the family of each column and converts
between the user's values and the model's internal values: codes ``0..k-1`` for
categorical columns, standardized values for continuous ones.
"""

from __future__ import annotations

import numpy as np

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


def frame_to_numeric(X, categories: dict | None = None, handle_unknown="error"):
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
        if missing.any():
            raise ValueError(
                f"Column {name!r} contains missing values (NaN/None); MADEDensity "
                "needs complete rows. Impute or drop them first."
            )
        if (codes < 0).any() and handle_unknown == "error":
            unknown = pd.unique(column[codes < 0])[:5].tolist()
            raise ValueError(
                f"Column {name!r} contains categories {unknown} that were not seen "
                f"during fit (known: {list(known)[:10]}). Map them to known "
                "categories or refit with them."
            )
        X[name] = codes.astype(np.float64)
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
    binary = np.all((X == 0) | (X == 1), axis=0)
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
            column = X[:, j]
            if binary[j]:
                kind = "bernoulli"
            elif np.all(column == np.round(column)) and (
                np.unique(column).size <= max_categories
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
        sub = X[:, bernoulli]
        not_binary = (sub != 0) & (sub != 1)
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
        unknown = ~np.isin(X[:, j], known)
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
