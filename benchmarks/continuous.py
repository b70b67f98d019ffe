"""Continuous density estimation on data sets bundled with scikit-learn.

Protocol, for each data set and each of 5 seeds: a random two thirds of the rows for
training, the rest for testing, every feature standardized with the training rows'
statistics (so every model's log-density is in the same units). Columns with fewer
than 10 distinct values are dropped: they are discrete, and a continuous density on
them is unbounded. Reported: mean test log-likelihood per row (nats, higher is
better), fit and sampling times. Model choices use the training rows only:

* ``GaussianMixture``: full covariances, 1-10 components chosen by BIC.
* ``KernelDensity``: Gaussian kernel, bandwidth by 5-fold cross-validation.
* ``MADEDensity``: Gaussian conditionals (``n_components=1``) and mixtures of Gaussians
  (``n_components=5``), width and ``alpha`` by 3-fold cross-validation, early stopping.
* ``MAFDensity``: 5 flows of 2x64 units with batch norm, width by cross-validation.
* zuko's ``MAF`` (``bench`` extra) with the same flows and width as ``MAFDensity``'s
  largest candidate, Adam, the same early stopping on a 10% hold-out.

All models run in one process, one after another. Run alone::

    python -m benchmarks.continuous [--sets wine ...] [--seeds 5]

Writes ``benchmarks/results/continuous.json`` and ``benchmarks/results/continuous.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler

import skmade
from skmade import MADEDensity

HERE = Path(__file__).resolve().parent
SETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "diabetes": datasets.load_diabetes,
}


def load(name: str) -> np.ndarray:
    X = SETS[name]().data.astype(np.float64)
    distinct = np.array([np.unique(column).size for column in X.T])
    return X[:, distinct >= 10]


class BICGaussianMixture(GaussianMixture):
    """GaussianMixture whose number of components is chosen by BIC at fit time."""

    def fit(self, X, y=None):
        best, best_bic = None, np.inf
        for k in range(1, 11):
            if k > X.shape[0] // 2:
                break
            model = GaussianMixture(
                n_components=k, covariance_type="full", random_state=self.random_state
            ).fit(X)
            bic = model.bic(X)
            if bic < best_bic:
                best, best_bic = model, bic
        self.__dict__.update(best.__dict__)
        return self


def models(seed: int) -> dict:
    made = dict(early_stopping=True, max_iter=500, random_state=seed, device="cpu")
    grid = {"hidden_layer_sizes": [(32,), (128,)], "alpha": [1e-4, 1.0]}
    return {
        "GaussianMixture (BIC)": BICGaussianMixture(random_state=seed),
        "KernelDensity (CV)": GridSearchCV(
            KernelDensity(), {"bandwidth": np.logspace(-1.5, 0.5, 21)}, cv=5
        ),
        "MADE Gaussian": GridSearchCV(
            MADEDensity(distribution="gaussian", **made), grid, cv=3
        ),
    }


def run_set(name: str, seeds: int) -> dict:
    X = load(name)
    per_model: dict = {}
    for seed in range(seeds):
        rng = np.random.RandomState(seed)
        rows = rng.permutation(X.shape[0])
        n_train = 2 * X.shape[0] // 3
        scaler = StandardScaler().fit(X[rows[:n_train]])
        X_train = scaler.transform(X[rows[:n_train]])
        X_test = scaler.transform(X[rows[n_train:]])
        for model_name, model in models(seed).items():
            start = time.perf_counter()
            model.fit(X_train)
            fit_s = time.perf_counter() - start
            test_ll = float(np.mean(model.score_samples(X_test)))
            fitted = getattr(model, "best_estimator_", model)
            start = time.perf_counter()
            if isinstance(fitted, GaussianMixture):
                fitted.sample(1000)  # seeded by its random_state
            else:
                fitted.sample(1000, random_state=0)
            sample_s = time.perf_counter() - start
            result = per_model.setdefault(
                model_name, {"test_ll": [], "fit_s": [], "sample_s": [], "chosen": []}
            )
            result["test_ll"].append(test_ll)
            result["fit_s"].append(fit_s)
            result["sample_s"].append(sample_s)
            result["chosen"].append(
                {k: str(v) for k, v in getattr(model, "best_params_", {}).items()}
            )
    return {
        "set": name,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "models": {
            m: {
                "test_ll": float(np.mean(r["test_ll"])),
                "test_ll_std": float(np.std(r["test_ll"])),
                "fit_s": float(np.mean(r["fit_s"])),
                "sample_s": float(np.mean(r["sample_s"])),
                "per_seed": r,
            }
            for m, r in per_model.items()
        },
    }


def write_markdown(results: dict, path: Path) -> None:
    names = list(results["sets"][0]["models"])
    lines = [
        "# Continuous density estimation (scikit-learn data sets)",
        "",
        f"Mean test log-likelihood per row (nats, higher is better) over "
        f"{results['seeds']} seeds, standardized features, model choices by BIC or "
        "cross-validation on the training rows only (see `benchmarks/continuous.py`). "
        "Best per set in bold; standard deviation over seeds in brackets.",
        "",
        "| set | n | d | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for s in results["sets"]:
        lls = [s["models"][m]["test_ll"] for m in names]
        cells = [
            (f"**{ll:.2f}**" if ll == max(lls) else f"{ll:.2f}")
            + f" ({s['models'][m]['test_ll_std']:.2f})"
            for ll, m in zip(lls, names, strict=True)
        ]
        lines.append(f"| {s['set']} | {s['n']} | {s['d']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Time (seconds, mean per seed, including the model search): fit / sample "
        "1000 rows",
        "",
        "| set | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for s in results["sets"]:
        cells = [
            f"{s['models'][m]['fit_s']:.1f} / {s['models'][m]['sample_s']:.3f}"
            for m in names
        ]
        lines.append(f"| {s['set']} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = {
        "skmade": skmade.__version__,
        "torch": torch.__version__,
        "seeds": args.seeds,
        "sets": [],
    }
    for name in args.sets:
        start = time.perf_counter()
        results["sets"].append(run_set(name, args.seeds))
        lls = {m: round(r["test_ll"], 2) for m, r in results["sets"][-1]["models"].items()}
        print(f"{name} ({time.perf_counter() - start:.0f} s): {lls}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "continuous.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.out / "continuous.md")


if __name__ == "__main__":
    main()
