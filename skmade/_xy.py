"""Reading features and targets into one table, for the conditional estimators.

:class:`~skmade.MADERegressor` fits one model of the columns ``(X, y)``: these
helpers check ``y``, join it to ``X`` (a DataFrame where either has categorical or
string columns, so that the column codec reads their categories), and make
placeholder targets for queries that give only ``X``. No torch here.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array

from ._columns import _is_frame


def _target_names(n_targets: int) -> list[str]:
    return [f"__target_{j}" for j in range(n_targets)]


def read_targets(y, name: str):
    """``(Y, one_d)``: y as a 2-D float array, or a DataFrame where it has
    categorical or string columns, and whether it was 1-D."""
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None.")
    if _is_frame(y) or type(y).__name__ == "Series":
        one_d = y.ndim == 1
        frame = y.to_frame() if one_d else y
        frame = frame.set_axis(_target_names(frame.shape[1]), axis=1)
        frame = frame.reset_index(drop=True)
        if frame.isna().to_numpy().any():
            raise ValueError("Input y contains NaN; drop or impute those rows.")
        numeric = all(dtype.kind in "biuf" for dtype in frame.dtypes)
        Y = frame.to_numpy(dtype=np.float64) if numeric else frame
    else:
        array = np.asarray(y)
        one_d = array.ndim == 1
        if array.dtype.kind in "OUS":
            import pandas as pd

            array = array.reshape(array.shape[0], -1)
            if pd.isna(array).any():
                raise ValueError("Input y contains NaN; drop or impute those rows.")
            Y = pd.DataFrame(array, columns=_target_names(array.shape[1]))
        else:
            Y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
            Y = Y.reshape(Y.shape[0], -1)
    if Y.ndim != 2 or Y.shape[1] == 0:
        raise ValueError(f"y must be 1-D or 2-D with columns; got shape {np.shape(y)}.")
    return Y, one_d


def joint_table(X, Y, frame: bool):
    """The features, then the targets: a float array, or with ``frame`` a
    DataFrame (array parts get placeholder column names)."""
    if not frame:
        return np.hstack([X, Y])
    import pandas as pd

    names = [f"__feature_{j}" for j in range(X.shape[1])]
    if _is_frame(X):  # the estimator checks the user's names
        X = X.set_axis(names, axis=1).reset_index(drop=True)
    else:
        X = pd.DataFrame(X, columns=names)
    if not _is_frame(Y):
        Y = pd.DataFrame(Y, columns=_target_names(Y.shape[1]))
    return pd.concat([X, Y], axis=1)


def placeholder_targets(codec, n_features: int, frame: bool, n: int):
    """Targets for ``n`` query rows that have none: a known value of each target
    column (only the features' model values are read from the joined rows)."""
    values = []
    for d in range(n_features, len(codec.kinds)):
        if d in codec.frame_categories:
            values.append(codec.frame_categories[d][0])
        elif codec.code_values[d] is not None:
            values.append(codec.code_values[d][0])
        else:
            values.append(0.0)
    if not frame:
        return np.tile(np.asarray(values, dtype=np.float64), (n, 1))
    import pandas as pd

    names = _target_names(len(values))
    return pd.DataFrame({name: [v] * n for name, v in zip(names, values, strict=True)})
