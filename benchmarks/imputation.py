"""Imputation: MADEImputer against scikit-learn's imputers, same run, MCAR holes.

For each table and missing rate (missing completely at random, seed 0), every imputer
is fitted on the table with holes and fills them:

- continuous columns (standardized): RMSE over their missing entries;
- discrete columns (binary or categorical codes): accuracy over their missing
  entries (other imputers' numbers rounded to the column's nearest value);
- MADEImputer's density also gives the log-likelihood of the held-out true values,
  ``log p(x_missing | x_observed)`` per missing entry (nats; the mixture's exact
  conditional), beside the same under independent columns (each column's own
  Gaussian or frequencies, fitted to its observed entries) as a reference;
- time: fit plus transform, in seconds.

Imputers: SimpleImputer (mean, or most frequent for discrete columns), KNNImputer,
IterativeImputer with BayesianRidge and with ExtraTrees (50 trees), and
MADEImputer with its defaults. Tables: scikit-learn's wine, diabetes, breast cancer
and binarized digits at 10%, 30% and 50% missing; at 30% only (the target's rate),
2,000-row subsets of plants, audio and accidents (DEBD, binary), the normal rows of
ADBench pendigits and satellite (continuous), breastw (nine 10-level columns,
categorical) and cardio (its columns with at most 10 values as categories, the
rest continuous), when ``shared/data`` is
there. One downstream task: LogisticRegression's 5-fold accuracy on breast cancer
with 30% of the entries missing, each imputer in a Pipeline before it. Run alone::

    python -m benchmarks.imputation [--tables NAME ...] [--merge] [--no-downstream]

Writes ``benchmarks/results/imputation.json`` and ``imputation.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmade import MADEImputer

from ._common import (
    ADBENCH,
    DEBD,
    RESULTS,
    environment,
    load_npz,
    markdown_table,
    write_json,
    write_markdown,
)

RATES = (0.1, 0.3, 0.5)
TARGET_RATE = 0.3
SUBSET = 2000


def _subset(X: np.ndarray) -> np.ndarray:
    rows = np.random.RandomState(0).choice(len(X), min(len(X), SUBSET), replace=False)
    return X[np.sort(rows)]


def _discrete(X: np.ndarray) -> np.ndarray:
    """Columns with integer values and at most 20 of them (MADEDensity's 'auto')."""
    return np.array([np.all(c == np.round(c)) and len(np.unique(c)) <= 20 for c in X.T])


def _prepare(X: np.ndarray, levels: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Continuous columns standardized, discrete ones kept as codes. Columns with
    at most ``levels`` distinct values become codes ``0..k-1`` (categories)."""
    X = X.astype(np.float64)
    for j, column in enumerate(X.T):
        values, codes = np.unique(column, return_inverse=True)
        if len(values) <= levels:
            X[:, j] = codes
    discrete = _discrete(X)
    if (~discrete).any():
        X[:, ~discrete] = StandardScaler().fit_transform(X[:, ~discrete])
    return X, discrete


def tables() -> dict:
    """``{name: (X, discrete columns, rates)}``."""
    out = {}
    for name in ("wine", "diabetes", "breast_cancer"):
        X = getattr(datasets, f"load_{name}")().data
        out[name] = (StandardScaler().fit_transform(X), np.zeros(X.shape[1], bool))
    digits = (datasets.load_digits().data >= 8).astype(float)
    out["digits (binarized)"] = (digits, np.ones(64, bool))
    out = {name: (*table, RATES) for name, table in out.items()}
    for name in ("plants", "baudio", "accidents"):
        data = load_npz(DEBD / f"{name}.npz")
        if data is not None:
            X = _subset(data["train"]).astype(float)
            label = "audio" if name == "baudio" else name
            out[f"{label} ({len(X)} rows)"] = (X, _discrete(X), (TARGET_RATE,))
    for name in ("pendigits", "satellite", "breastw", "cardio"):
        data = load_npz(ADBENCH / f"{name}.npz")
        if data is not None:
            levels = 10 if name == "cardio" else 0  # its few-valued columns: categories
            X, discrete = _prepare(_subset(data["X"][data["y"] == 0]), levels)
            out[f"{name} ({len(X)} normal rows)"] = (X, discrete, (TARGET_RATE,))
    return out


def imputers(discrete: np.ndarray) -> dict:
    simple = "most_frequent" if discrete.all() else "mean"
    return {
        "SimpleImputer": SimpleImputer(strategy=simple),
        "KNNImputer": KNNImputer(),
        "Iterative (BayesianRidge)": IterativeImputer(random_state=0, max_iter=10),
        "Iterative (ExtraTrees)": IterativeImputer(
            ExtraTreesRegressor(n_estimators=50, random_state=0, n_jobs=1),
            random_state=0,
            max_iter=10,
        ),
        "MADEImputer": MADEImputer(random_state=0),
    }


def _nearest_values(X, filled, discrete):
    """Discrete columns of ``filled`` moved to the nearest value of the column."""
    filled = filled.copy()
    for j in np.flatnonzero(discrete):
        values = np.unique(X[:, j])
        index = np.clip(np.searchsorted(values, filled[:, j]), 1, len(values) - 1)
        lower, upper = values[index - 1], values[index]
        filled[:, j] = np.where(
            filled[:, j] - lower <= upper - filled[:, j], lower, upper
        )
    return filled


def scores(X, filled, holes, discrete) -> dict:
    """RMSE over the continuous holes, accuracy over the discrete ones."""
    out = {}
    filled = _nearest_values(X, filled, discrete)
    continuous = holes & ~discrete[None, :]
    if continuous.any():
        out["rmse"] = float(np.sqrt(np.mean((filled - X)[continuous] ** 2)))
    discrete_holes = holes & discrete[None, :]
    if discrete_holes.any():
        out["accuracy"] = float(np.mean(filled[discrete_holes] == X[discrete_holes]))
    return out


def independent_log_likelihood(X, X_holes, holes, discrete) -> float:
    """Mean log-likelihood per missing entry under independent columns."""
    total = 0.0
    for j in range(X.shape[1]):
        observed = X_holes[~holes[:, j], j]
        truth = X[holes[:, j], j]
        if truth.size == 0:
            continue
        if discrete[j]:
            values, counts = np.unique(observed, return_counts=True)
            denominator = counts.sum() + len(values) + 1  # add-one, and one unseen
            share = dict(zip(values, (counts + 1) / denominator, strict=True))
            floor = 1 / denominator
            total += float(np.sum(np.log([share.get(v, floor) for v in truth])))
        else:
            mean, std = observed.mean(), observed.std()
            z = (truth - mean) / std
            total += float(np.sum(-0.5 * z**2 - np.log(std) - 0.5 * np.log(2 * np.pi)))
    return total / holes.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="names (default: all found)")
    parser.add_argument(
        "--no-downstream", action="store_true", help="skip the downstream task"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other tables (and downstream) of the existing results",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = environment(rates=list(RATES), tables={}, downstream={})
    if args.merge and (RESULTS / "imputation.json").exists():
        previous = json.loads((RESULTS / "imputation.json").read_text())
        results["tables"] = previous.get("tables", {})
        if args.no_downstream:
            results["downstream"] = previous.get("downstream", {})
    for name, (X, discrete, rates) in tables().items():
        if args.tables and not any(name.startswith(t) for t in args.tables):
            continue
        entry = results["tables"][name] = {
            "shape": list(X.shape),
            "discrete_columns": int(discrete.sum()),
        }
        for rate in rates:
            holes = np.random.RandomState(0).rand(*X.shape) < rate
            X_holes = np.where(holes, np.nan, X)
            row = entry[str(rate)] = {}
            for method, imputer in imputers(discrete).items():
                start = time.perf_counter()
                filled = imputer.fit_transform(X_holes)
                seconds = time.perf_counter() - start
                row[method] = {**scores(X, filled, holes, discrete), "s": seconds}
                if method == "MADEImputer":
                    # Rows whose true values include a category that no observed
                    # entry showed are impossible for the model: left out, counted.
                    conditional = imputer.density_._conditional_log_likelihood(
                        X, holes, unknown="ignore"
                    )
                    possible = np.isfinite(conditional)
                    row[method]["log_likelihood"] = float(
                        conditional[possible].sum() / holes[possible].sum()
                    )
                    row[method]["impossible_rows"] = int((~possible).sum())
            row["independent_log_likelihood"] = independent_log_likelihood(
                X, X_holes, holes, discrete
            )
            print(name, rate, {m: r for m, r in row.items()}, flush=True)
    if not args.no_downstream:
        data = datasets.load_breast_cancer()
        holes = np.random.RandomState(0).rand(*data.data.shape) < 0.3
        X_holes = np.where(holes, np.nan, StandardScaler().fit_transform(data.data))
        for method, imputer in imputers(np.zeros(30, bool)).items():
            pipe = make_pipeline(imputer, LogisticRegression(max_iter=1000))
            accuracy = cross_val_score(pipe, X_holes, data.target, cv=5).mean()
            results["downstream"][method] = float(accuracy)
        print("downstream", results["downstream"])
    write_json(RESULTS / "imputation.json", results)
    write_markdown(RESULTS / "imputation.md", report(results), echo=True)


METHODS = (
    "SimpleImputer",
    "KNNImputer",
    "Iterative (BayesianRidge)",
    "Iterative (ExtraTrees)",
    "MADEImputer",
)


def _rows(results: dict):
    """``(name, rate, metric, {method: value}, {method: seconds}, entry)`` per row."""
    for name, entry in results["tables"].items():
        for rate in results["rates"]:
            row = entry.get(str(rate))
            if row is None:
                continue
            for metric in ("rmse", "accuracy"):
                if metric in row["MADEImputer"]:
                    values = {m: row[m][metric] for m in METHODS}
                    seconds = {m: row[m]["s"] for m in METHODS}
                    yield name, rate, metric, values, seconds, row


def _best(metric: str, values: dict) -> float:
    return min(values.values()) if metric == "rmse" else max(values.values())


def report(results: dict) -> list[str]:
    lines = [
        "# Imputation: MADEImputer against scikit-learn's imputers (same run)",
        "",
        "MCAR holes (seed 0). Continuous columns (standardized): RMSE over their "
        "missing entries, lower is better. Discrete columns (binary, categorical "
        "codes): accuracy over their missing entries, higher is better (other "
        "imputers' values rounded to the column's nearest value). Best per row in "
        "bold; time (fit + transform) in brackets. Last column: MADEImputer's exact "
        "log-likelihood of the true missing values given the observed ones, nats per "
        "missing entry, with the same under independent columns in brackets (rows "
        "whose true values include a category no observed entry showed are "
        "impossible for the model: left out and counted). "
        "Produced by `python -m benchmarks.imputation`.",
        "",
    ]
    rows, wins, total, faster = [], 0, 0, 0
    for name, rate, metric, values, seconds, row in _rows(results):
        best = _best(metric, values)
        cells = [
            (f"**{values[m]:.3f}**" if values[m] == best else f"{values[m]:.3f}")
            + f" ({seconds[m]:.1f} s)"
            for m in METHODS
        ]
        log_lik = (
            f"{row['MADEImputer']['log_likelihood']:.2f} "
            f"({row['independent_log_likelihood']:.2f})"
        )
        if row["MADEImputer"].get("impossible_rows"):
            log_lik += f" [{row['MADEImputer']['impossible_rows']} rows impossible]"
        label = "RMSE" if metric == "rmse" else "accuracy"
        rows.append([name, f"{rate:.0%}", label, *cells, log_lik])
        if rate == TARGET_RATE:
            total += 1
            wins += values["MADEImputer"] == best
            faster += seconds["MADEImputer"] < seconds["Iterative (ExtraTrees)"]
    lines += markdown_table(
        ["table", "missing", "metric", *METHODS, "log p(true | observed)"], rows
    )
    lines += [
        "",
        f"At {TARGET_RATE:.0%} missing, MADEImputer is best on {wins} of {total} "
        f"rows, and faster than IterativeImputer with ExtraTrees on {faster} of "
        f"{total}.",
    ]
    if results["downstream"]:
        lines += [
            "",
            "## Downstream: LogisticRegression after imputation",
            "",
            "Breast cancer, 30% of the entries missing, 5-fold accuracy of "
            "`make_pipeline(imputer, LogisticRegression())`:",
            "",
        ]
        lines += markdown_table(
            ["imputer", "accuracy"],
            [[m, f"{a:.3f}"] for m, a in results["downstream"].items()],
        )
    return lines


if __name__ == "__main__":
    main()
