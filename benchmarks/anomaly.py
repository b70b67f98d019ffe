"""Anomaly detection on ADBench's classical sets: MADEOutlierDetector against the field.

Protocol, for each set in ``shared/data/adbench`` and each of 3 seeds: fit on a random
70% of the normal rows, test on the other normal rows plus every anomaly; inputs
standardized with the training rows' statistics, except for MADE, which reads the raw
columns to choose a family per column (Bernoulli, categorical, Gaussian) and
standardizes its continuous columns itself. Scores are each method's
``score_samples`` (higher = more normal); reported are ROC-AUC and average precision,
fit and scoring times, and the mean ROC-AUC rank over sets. All methods run in one
process, one after another. Run alone::

    python -m benchmarks.anomaly [--data DIR] [--sets cardio wbc ...]
    python -m benchmarks.anomaly --suite dev
    python -m benchmarks.anomaly --fit-time

Writes ``benchmarks/results/anomaly.json`` and ``benchmarks/results/anomaly.md``
(``anomaly_dev.*`` for the development suite).

Peers: scikit-learn's IsolationForest, LocalOutlierFactor, OneClassSVM,
GaussianMixture, KernelDensity and EllipticEnvelope, and PyOD's ECOD and COPOD where
``pyod`` is installed (``pip install pyod``; left out of the table otherwise).

Two suites. ``adbench`` (the default) is the test suite: the 15 public sets, on which
nothing about the detector was chosen. ``dev`` is the development suite, on which the
detector's defaults are compared: the 10 public ADBench tables of
``shared/data/adbench_dev`` (glass, hepatitis, lymphography, pageblocks, stamps,
vertebral, waveform, wdbc, wilt, wpbc) and anomaly tasks made from scikit-learn's
bundled data sets (breast cancer, wine: one class normal, a 10% sample of the others the
anomalies) and from synthetic generators (counts with zero inflation and rounding,
mixtures with wider-spread anomalies, one swapped value per anomalous row). Its
tasks share no rows with the ADBench sets.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn import datasets
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skmade import MADEOutlierDetector

from ._common import (
    ADBENCH,
    ADBENCH_DEV,
    RESULTS,
    environment,
    write_json,
    write_markdown,
)

SEEDS = (0, 1, 2)


class _PyOD:
    """A PyOD detector behind ``score_samples`` (higher = more normal)."""

    def __init__(self, detector):
        self.detector = detector

    def fit(self, X):
        self.detector.fit(X)
        return self

    def score_samples(self, X):
        return -self.detector.decision_function(X)


def _pyod_methods() -> dict:
    try:
        from pyod.models.copod import COPOD
        from pyod.models.ecod import ECOD
    except ImportError:
        return {}
    return {"ECOD": _PyOD(ECOD()), "COPOD": _PyOD(COPOD())}


def methods(seed: int) -> dict:
    """Each method with its library's defaults or a sensible, stated choice."""
    return {
        "MADE": MADEOutlierDetector(random_state=seed),
        "IsolationForest": IsolationForest(random_state=seed),
        "LOF": LocalOutlierFactor(novelty=True),
        "OneClassSVM": OneClassSVM(),
        # Full covariances regularized for the duplicate rows and discrete columns
        # many sets have; a few components as a middle ground.
        "GaussianMixture": GaussianMixture(
            n_components=4, reg_covar=1e-3, random_state=seed
        ),
        "KernelDensity": KernelDensity(bandwidth="scott"),
        "EllipticEnvelope": EllipticEnvelope(random_state=seed),
    } | _pyod_methods()


def split(X, y, seed):
    rng = np.random.RandomState(seed)
    normal = np.flatnonzero(y == 0)
    train = rng.permutation(normal)[: int(0.7 * normal.size)]
    test = np.setdiff1d(np.arange(len(y)), train)
    scaler = StandardScaler().fit(X[train])
    raw = X[train], X[test]
    return scaler.transform(X[train]), scaler.transform(X[test]), y[test], raw


def _class_task(X, y, normal, rng, frac=0.1):
    """One class normal; a ``frac`` sample (of the normal count) of the others."""
    inliers = np.flatnonzero(y == normal)
    others = np.flatnonzero(y != normal)
    outliers = rng.choice(others, max(5, int(frac * inliers.size)), replace=False)
    rows = np.concatenate([inliers, outliers])
    labels = np.r_[np.zeros(inliers.size), np.ones(outliers.size)].astype(int)
    return X[rows].astype(np.float64), labels


def _counts_task(rng, n=1500, d=12):
    """Zero-inflated counts and rounded measurements driven by a 2-D latent;
    anomalies have a wider, shifted latent."""
    weights = np.linspace(-1, 1, 2 * d).reshape(d, 2)

    def draw(m, spread, shift):
        z = rng.standard_normal((m, 2)) * spread + np.array([0.0, shift])
        rate = np.exp(0.5 * z @ weights.T)
        keep = rng.random_sample((m, d)) < 0.5 + 0.4 * np.tanh(z[:, :1])
        X = (rng.poisson(rate) * keep).astype(float)
        noise = rng.standard_normal((m, d - d // 2))
        X[:, d // 2 :] = np.round(10 * rate[:, d // 2 :] + noise) / 10
        return X

    return _stack(draw(n, 1.0, 0.0), draw(n // 10, 1.8, 1.0))


def _wide_task(rng, n=2000, d=10):
    """A 3-component Gaussian mixture; anomalies from the same components, twice
    as spread."""
    centers = rng.standard_normal((3, d)) * 2
    factors = rng.standard_normal((3, d, d)) * 0.3

    def draw(m, spread):
        z = rng.randint(0, 3, m)
        eps = rng.standard_normal((m, d))
        return centers[z] + spread * np.einsum("nij,nj->ni", factors[z], eps)

    return _stack(draw(n, 1.0), draw(n // 20, 2.0))


def _swap_task(rng, n=2000):
    """A nonlinear 8-D table (a spiral, rounded and zero-inflated columns); an
    anomaly is a normal row with one value taken from another row, so only the
    dependencies between columns give it away."""

    def draw(m):
        t = rng.uniform(0, 3 * np.pi, m)
        r = rng.gamma(3, 1, m)
        return np.c_[
            3 * np.sin(t) + 0.1 * rng.standard_normal(m),
            3 * np.cos(t) + 0.1 * rng.standard_normal(m),
            t + 0.2 * rng.standard_normal(m),
            np.round(r),
            rng.poisson(1 + 3 * np.abs(np.sin(t))),
            r * np.sin(t) + 0.3 * rng.standard_normal(m),
            (rng.random_sample(m) < 0.7) * rng.exponential(2, m),
            rng.standard_normal(m),
        ]

    X = draw(n)
    k = n // 10
    anomalies = X[rng.choice(n, k)].copy()
    columns = rng.randint(0, X.shape[1], k)
    anomalies[np.arange(k), columns] = X[rng.choice(n, k), columns]
    return _stack(X, anomalies)


def _stack(inliers, outliers):
    labels = np.r_[np.zeros(len(inliers)), np.ones(len(outliers))].astype(int)
    return np.r_[inliers, outliers], labels


def dev_tasks():
    """The development suite: ``[(name, X, y), ...]``, fixed by one seed."""
    rng = np.random.RandomState(123)
    cancer, wine = datasets.load_breast_cancer(), datasets.load_wine()
    tasks = [
        ("wdbc-benign", *_class_task(cancer.data, cancer.target, 1, rng)),
        ("wdbc-malignant", *_class_task(cancer.data, cancer.target, 0, rng)),
    ]
    for c in range(3):
        tasks.append((f"wine-{c}", *_class_task(wine.data, wine.target, c, rng)))
    tasks += [
        ("synthetic-counts", *_counts_task(rng)),
        ("synthetic-wide", *_wide_task(rng)),
        ("synthetic-swap", *_swap_task(rng)),
    ]
    return tasks


def adbench_tasks(folder: Path, names=None):
    """The ADBench sets in ``folder``: ``[(name, X, y), ...]``."""
    tasks = []
    for path in sorted(folder.glob("*.npz")):
        if names and path.stem not in set(names):
            continue
        data = np.load(path, allow_pickle=False)
        tasks.append((path.stem, data["X"].astype(np.float64), data["y"].astype(int)))
    return tasks


def run_set(set_name: str, X: np.ndarray, y: np.ndarray) -> dict:
    per_method: dict = {}
    for seed in SEEDS:
        X_train, X_test, y_test, (raw_train, raw_test) = split(X, y, seed)
        for name, model in methods(seed).items():
            # MADE reads raw columns: it picks a family per column (0/1, few-valued
            # integers, continuous) and standardizes continuous ones itself.
            train, test = (raw_train, raw_test) if name == "MADE" else (X_train, X_test)
            start = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            normality = model.score_samples(test)
            score_s = time.perf_counter() - start
            anomaly = -np.nan_to_num(normality, nan=-np.inf, neginf=-1e300)
            result = per_method.setdefault(
                name, {"roc_auc": [], "ap": [], "fit_s": [], "score_s": []}
            )
            result["roc_auc"].append(roc_auc_score(y_test, anomaly))
            result["ap"].append(average_precision_score(y_test, anomaly))
            result["fit_s"].append(fit_s)
            result["score_s"].append(score_s)
    return {
        "set": set_name,
        "n": len(y),
        "d": int(X.shape[1]),
        "anomaly_rate": float(y.mean()),
        "methods": {
            name: {key: float(np.mean(values)) for key, values in r.items()}
            | {"roc_auc_std": float(np.std(r["roc_auc"]))}
            for name, r in per_method.items()
        },
    }


TITLES = {
    "adbench": "Anomaly detection on ADBench classical sets (test suite)",
    "dev": "Anomaly detection: development suite (the detector's defaults are "
    "chosen here)",
}


def report(results: dict, path: Path) -> None:
    names = list(results["sets"][0]["methods"])
    pyod = results.get("pyod")
    lines = [
        f"# {TITLES[results['suite']]}",
        "",
        "Mean over 3 seeds (fit on 70% of the normal rows, test on the rest plus all "
        "anomalies). MADE is `MADEOutlierDetector()` with its default density, on raw "
        "columns (it picks a family per column and standardizes continuous ones); the "
        "others, on standardized inputs, use their library's defaults (LOF with "
        "`novelty=True`, GaussianMixture with 4 components and `reg_covar=1e-3`, "
        "KernelDensity with Scott's bandwidth"
        + (f"; ECOD and COPOD from PyOD {pyod}" if pyod else "; PyOD not installed")
        + "). Best ROC-AUC per set in bold. "
        f"skmade {results['skmade']}, torch {results['torch']}.",
        "",
        "## ROC-AUC",
        "",
        "| set | n | d | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for s in results["sets"]:
        aucs = [s["methods"][m]["roc_auc"] for m in names]
        best = max(aucs)
        cells = [f"**{a:.3f}**" if a == best else f"{a:.3f}" for a in aucs]
        lines.append(
            f"| {s['set']} | {s['n']} | {s['d']} | " + " | ".join(cells) + " |"
        )
    ranks, means = results["mean_rank"], results["mean_roc_auc"]
    lines += [
        "| **mean ROC-AUC** | | | "
        + " | ".join(f"{means[m]:.3f}" for m in names)
        + " |",
        "| **mean rank** (1 = best) | | | "
        + " | ".join(f"{ranks[m]:.2f}" for m in names)
        + " |",
        "",
        "## Average precision",
        "",
        "| set | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for s in results["sets"]:
        lines.append(
            f"| {s['set']} | "
            + " | ".join(f"{s['methods'][m]['ap']:.3f}" for m in names)
            + " |"
        )
    if "mean_ap" in results:
        lines += [
            "| **mean AP** | "
            + " | ".join(f"{results['mean_ap'][m]:.3f}" for m in names)
            + " |",
            "| **mean AP rank** | "
            + " | ".join(f"{results['mean_ap_rank'][m]:.2f}" for m in names)
            + " |",
        ]
    total = {
        m: sum(s["methods"][m][k] for s in results["sets"] for k in ("fit_s",))
        for m in ("MADE", "IsolationForest")
    }
    lines += [
        "",
        "## Time (seconds, mean per seed): fit / score",
        "",
        f"Total fit time over the sets: MADE {total['MADE']:.1f} s, IsolationForest "
        f"{total['IsolationForest']:.1f} s.",
        "",
        "| set | MADE fit | MADE score | IsolationForest fit | IsolationForest score |",
        "|---|---|---|---|---|",
    ]
    for s in results["sets"]:
        made, forest = s["methods"]["MADE"], s["methods"]["IsolationForest"]
        lines.append(
            f"| {s['set']} | {made['fit_s']:.2f} | {made['score_s']:.3f} | "
            f"{forest['fit_s']:.2f} | {forest['score_s']:.3f} |"
        )
    write_markdown(path, lines)


def fit_time(out: Path, n: int = 10_000, d: int = 30) -> None:
    """The fit-time target: the default detector on ``n x d`` rows against
    IsolationForest, in this process, one after the other (median of 3)."""
    rng = np.random.RandomState(0)
    latent = rng.standard_normal((n, 5))
    X = latent @ rng.standard_normal((5, d)) + 0.3 * rng.standard_normal((n, d))
    X[:, : d // 3] = np.round(X[:, : d // 3])  # lattice columns, as many tables have
    times: dict = {}
    for name, make in {
        "MADE": lambda: MADEOutlierDetector(random_state=0),
        "IsolationForest": lambda: IsolationForest(random_state=0),
    }.items():
        runs = []
        for _ in range(3):
            model = make()
            start = time.perf_counter()
            model.fit(X)
            runs.append(time.perf_counter() - start)
        times[name] = float(np.median(runs))
    budget = 3 * times["IsolationForest"] + 10
    results = environment(
        n=n, d=d, fit_s=times, budget_s=budget, within=times["MADE"] <= budget
    )
    write_json(out / "anomaly_fit_time.json", results)
    write_markdown(
        out / "anomaly_fit_time.md",
        [
            f"# Detector fit time, {n} x {d} rows (median of 3 fits)",
            "",
            "| MADEOutlierDetector() | IsolationForest() | target (3x IF + 10 s) |",
            "|---|---|---|",
            f"| {times['MADE']:.1f} s | {times['IsolationForest']:.2f} s | "
            f"{budget:.1f} s |",
        ],
    )
    print(json.dumps(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("adbench", "dev"), default="adbench")
    parser.add_argument("--data", type=Path, default=ADBENCH)
    parser.add_argument("--sets", nargs="*", help="set names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--fit-time", action="store_true", help="only the 10,000 x 30 fit-time check"
    )
    args = parser.parse_args()
    if args.fit_time:
        fit_time(args.out)
        return
    warnings.simplefilter("ignore", ConvergenceWarning)
    # EllipticEnvelope's MinCovDet warns on every near-singular covariance step.
    warnings.filterwarnings("ignore", module="sklearn.covariance")
    if args.suite == "dev":
        tasks = adbench_tasks(ADBENCH_DEV, args.sets) if ADBENCH_DEV.is_dir() else []
        tasks += [t for t in dev_tasks() if not args.sets or t[0] in set(args.sets)]
    elif not args.data.is_dir():
        raise SystemExit(
            f"ADBench sets not found in {args.data}; pass --data DIR (a folder of "
            ".npz files with X and y)."
        )
    else:
        tasks = adbench_tasks(args.data, args.sets)

    try:
        import pyod
    except ImportError:
        pyod = None
    results = environment(
        suite=args.suite, pyod=getattr(pyod, "__version__", None), sets=[]
    )
    for name, X, y in tasks:
        start = time.perf_counter()
        results["sets"].append(run_set(name, X, y))
        aucs = {
            m: round(r["roc_auc"], 3) for m, r in results["sets"][-1]["methods"].items()
        }
        print(f"{name} ({time.perf_counter() - start:.0f} s): {aucs}", flush=True)

    names = list(results["sets"][0]["methods"])
    # Rank 1 = best ROC-AUC on a set; ties share the mean rank.
    ranks = np.array(
        [
            rankdata([-s["methods"][m]["roc_auc"] for m in names])
            for s in results["sets"]
        ]
    )
    results["mean_rank"] = dict(zip(names, ranks.mean(axis=0).tolist(), strict=True))
    results["mean_roc_auc"] = {
        m: float(np.mean([s["methods"][m]["roc_auc"] for s in results["sets"]]))
        for m in names
    }
    results["mean_ap"] = {
        m: float(np.mean([s["methods"][m]["ap"] for s in results["sets"]]))
        for m in names
    }
    ap_ranks = np.array(
        [rankdata([-s["methods"][m]["ap"] for m in names]) for s in results["sets"]]
    )
    results["mean_ap_rank"] = dict(
        zip(names, ap_ranks.mean(axis=0).tolist(), strict=True)
    )
    stem = "anomaly" + ("_dev" if args.suite == "dev" else "")
    stem += "_subset" if args.sets else ""
    write_json(args.out / f"{stem}.json", results)
    report(results, args.out / f"{stem}.md")
    print(json.dumps({"mean_rank": ranks.mean(axis=0).round(2).tolist()}))


if __name__ == "__main__":
    main()
