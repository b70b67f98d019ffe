"""Imputation: MADEImputer against scikit-learn's imputers, same run, MCAR holes.

For each table and missing rate (10%, 30%, 50% of the entries, missing completely at
random, seed 0), every imputer is fitted on the table with holes and fills them:

- continuous tables (standardized): RMSE over the missing entries;
- binary tables: accuracy over the missing entries (continuous outputs rounded);
- time: fit plus transform, in seconds.

Imputers: SimpleImputer (mean, or most frequent for binary tables), KNNImputer,
IterativeImputer with BayesianRidge and with ExtraTrees (50 trees), and
MADEImputer with its defaults. One downstream task: LogisticRegression's 5-fold
accuracy on breast cancer with 30% of the entries missing, each imputer in a
Pipeline before it. Tables: scikit-learn's wine, diabetes, breast cancer and
binarized digits, and plants (DEBD, 2,000 rows) and the normal rows of two ADBench
sets when ``shared/data`` is there. Run alone::

    python -m benchmarks.imputation

Writes ``benchmarks/results/imputation.json`` and ``imputation.md``.
"""

from __future__ import annotations

import argparse
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


def tables() -> dict:
    """``{name: (X, binary)}``: continuous tables standardized."""
    out = {}
    for name in ("wine", "diabetes", "breast_cancer"):
        X = getattr(datasets, f"load_{name}")().data
        out[name] = (StandardScaler().fit_transform(X), False)
    out["digits (binarized)"] = ((datasets.load_digits().data >= 8).astype(float), True)
    plants = load_npz(DEBD / "plants.npz")
    if plants is not None:
        rows = np.random.RandomState(0).choice(len(plants["train"]), 2000, False)
        out["plants (2000 rows)"] = (plants["train"][rows].astype(float), True)
    for name in ("pendigits", "satellite"):
        data = load_npz(ADBENCH / f"{name}.npz")
        if data is not None:
            X = data["X"][data["y"] == 0]
            X = X[np.random.RandomState(0).choice(len(X), min(len(X), 2000), False)]
            out[f"{name} (2000 rows)"] = (StandardScaler().fit_transform(X), False)
    return out


def imputers(binary: bool) -> dict:
    return {
        "SimpleImputer": SimpleImputer(strategy="most_frequent" if binary else "mean"),
        "KNNImputer": KNNImputer(),
        "Iterative (BayesianRidge)": IterativeImputer(random_state=0, max_iter=10),
        "Iterative (ExtraTrees)": IterativeImputer(
            ExtraTreesRegressor(n_estimators=50, random_state=0, n_jobs=1),
            random_state=0,
            max_iter=10,
        ),
        "MADEImputer": MADEImputer(random_state=0),
    }


def score(X, filled, holes, binary) -> float:
    if binary:
        return float(np.mean(np.round(filled[holes]) == X[holes]))
    return float(np.sqrt(np.mean((filled[holes] - X[holes]) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="names (default: all found)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = environment(rates=list(RATES), tables={}, downstream={})
    for name, (X, binary) in tables().items():
        if args.tables and name not in args.tables:
            continue
        entry = results["tables"][name] = {"shape": list(X.shape), "binary": binary}
        for rate in RATES:
            holes = np.random.RandomState(0).rand(*X.shape) < rate
            X_holes = np.where(holes, np.nan, X)
            row = entry[str(rate)] = {}
            for method, imputer in imputers(binary).items():
                start = time.perf_counter()
                filled = imputer.fit_transform(X_holes)
                seconds = time.perf_counter() - start
                row[method] = {"score": score(X, filled, holes, binary), "s": seconds}
            print(name, rate, {m: round(r["score"], 3) for m, r in row.items()})
    data = datasets.load_breast_cancer()
    holes = np.random.RandomState(0).rand(*data.data.shape) < 0.3
    X_holes = np.where(holes, np.nan, StandardScaler().fit_transform(data.data))
    for method, imputer in imputers(False).items():
        pipe = make_pipeline(imputer, LogisticRegression(max_iter=1000))
        accuracy = cross_val_score(pipe, X_holes, data.target, cv=5).mean()
        results["downstream"][method] = float(accuracy)
    print("downstream", results["downstream"])
    write_json(RESULTS / "imputation.json", results)
    write_markdown(RESULTS / "imputation.md", report(results), echo=True)


def report(results: dict) -> list[str]:
    methods = list(results["downstream"])
    lines = [
        "# Imputation: MADEImputer against scikit-learn's imputers (same run)",
        "",
        "MCAR holes (seed 0). Continuous tables (standardized): RMSE over the missing "
        "entries, lower is better. Binary tables: accuracy over the missing entries, "
        "higher is better. Best per row in bold; time (fit + transform) in brackets. "
        "Produced by `python -m benchmarks.imputation`.",
        "",
    ]
    rows = []
    for name, entry in results["tables"].items():
        for rate in results["rates"]:
            row = entry[str(rate)]
            values = [row[m]["score"] for m in methods]
            best = max(values) if entry["binary"] else min(values)
            cells = [
                (f"**{v:.3f}**" if v == best else f"{v:.3f}")
                + f" ({row[m]['s']:.1f} s)"
                for m, v in zip(methods, values, strict=True)
            ]
            metric = "accuracy" if entry["binary"] else "RMSE"
            rows.append([name, f"{rate:.0%}", metric, *cells])
    lines += markdown_table(["table", "missing", "metric", *methods], rows)
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
