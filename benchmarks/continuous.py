"""Continuous density estimation: MADE, MAF and zuko's MAF against GMM and KDE.

Data: data sets bundled with scikit-learn (breast cancer, wine, diabetes) and the
normal rows of continuous ADBench sets in ``shared/data/adbench`` (skipped when
absent; at most 6000 rows each). Columns with fewer than 10 distinct values are
dropped: they are discrete, and a continuous density on them is unbounded. For each
data set and each of 3 seeds: a random two thirds of the rows for training, the rest
for testing, every feature standardized with the training rows' statistics (so all
log-densities are in the same units). Reported: mean test log-likelihood per row
(nats, higher is better), fit time and the time to sample 1000 rows. Choices use the
training rows only:

* ``GaussianMixture``: full covariances, 1-10 components chosen by BIC.
* ``KernelDensity``: Gaussian kernel, bandwidth by 5-fold cross-validation.
* ``MADE``: ``MADEDensity`` with 2x64 hidden units, Gaussian conditionals or
  mixtures of 5 Gaussians (``n_components=5``).
* ``MAF``: ``MAFDensity`` with 5 flows of 2x64 hidden units (with and without batch
  norm), and ``MAF MoG`` with a 5-component MADE base.
* ``zuko MAF``: ``zuko.flows.MAF`` with the same 5 transforms of 2x64 hidden units
  and alternating orders (``bench`` extra), trained by the same loop as ours: Adam,
  learning rate 1e-3, batches of 200.

Every neural model uses early stopping on 10% of its training rows (patience 10
epochs, best weights restored, at most 500 epochs) and L2 ``alpha=1e-4`` where it has
one. All models run in one process, one after another. Run alone::

    python -m benchmarks.continuous [--sets wine ...] [--seeds 3]

Writes ``benchmarks/results/continuous.json`` and ``benchmarks/results/continuous.md``.
"""

from __future__ import annotations

import argparse
import copy
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

from skmade import MADEDensity, MAFDensity

from ._common import (
    ADBENCH,
    RESULTS,
    environment,
    load_npz,
    write_json,
    write_markdown,
)

SKLEARN_SETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "diabetes": datasets.load_diabetes,
}
ADBENCH_SETS = ("vowels", "pendigits", "satellite", "mammography")
MAX_ROWS = 6000
NEURAL = dict(
    early_stopping=True, n_iter_no_change=10, max_iter=500, alpha=1e-4, device="cpu"
)


def load(name: str) -> np.ndarray | None:
    if name in SKLEARN_SETS:
        X = SKLEARN_SETS[name]().data.astype(np.float64)
    else:
        data = load_npz(ADBENCH / f"{name}.npz")
        if data is None:
            return None
        X = data["X"][data["y"] == 0].astype(np.float64)
        if X.shape[0] > MAX_ROWS:
            X = X[np.random.RandomState(0).choice(X.shape[0], MAX_ROWS, replace=False)]
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


class ZukoMAF:
    """zuko's MAF in the same training loop as ours (Adam, batches, early stopping)."""

    def __init__(self, seed: int, transforms=5, hidden=(64, 64)):
        self.seed, self.transforms, self.hidden = seed, transforms, hidden

    def fit(self, X):
        import zuko

        torch.manual_seed(self.seed)  # zuko initialises from the global generator
        rng = np.random.RandomState(self.seed)
        rows = rng.permutation(X.shape[0])
        n_val = max(1, X.shape[0] // 10)
        val = torch.as_tensor(X[rows[:n_val]], dtype=torch.float32)
        train = torch.as_tensor(X[rows[n_val:]], dtype=torch.float32)
        self.flow = zuko.flows.MAF(
            X.shape[1], transforms=self.transforms, hidden_features=self.hidden
        )
        optimizer = torch.optim.Adam(self.flow.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, waited = -np.inf, None, 0
        for _ in range(NEURAL["max_iter"]):
            order = torch.randperm(train.shape[0], generator=generator)
            for start in range(0, train.shape[0], 200):
                loss = -self.flow().log_prob(train[order[start : start + 200]]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                score = self.flow().log_prob(val).mean().item()
            if score > best + 1e-4:
                best, best_state, waited = (
                    score,
                    copy.deepcopy(self.flow.state_dict()),
                    0,
                )
            else:
                waited += 1
                if waited > NEURAL["n_iter_no_change"]:
                    break
        self.flow.load_state_dict(best_state)
        return self

    @torch.no_grad()
    def score_samples(self, X):
        x = torch.as_tensor(X, dtype=torch.float32)
        return self.flow().log_prob(x).double().numpy()

    @torch.no_grad()
    def sample(self, n, random_state=None):
        return self.flow().sample((n,)).numpy()


def models(seed: int) -> dict:
    made = dict(hidden_layer_sizes=(64, 64), random_state=seed, **NEURAL)
    maf = dict(n_flows=5, hidden_layer_sizes=(64, 64), random_state=seed, **NEURAL)
    return {
        "GaussianMixture (BIC)": BICGaussianMixture(random_state=seed),
        "KernelDensity (CV)": GridSearchCV(
            KernelDensity(), {"bandwidth": np.logspace(-1.5, 0.5, 21)}, cv=5
        ),
        "MADE Gaussian": MADEDensity(distribution="gaussian", **made),
        "MADE MoG": MADEDensity(distribution="gaussian", n_components=5, **made),
        "MAF": MAFDensity(**maf),
        "MAF (no batch norm)": MAFDensity(batch_norm=False, **maf),
        "MAF MoG": MAFDensity(n_components=5, **maf),
        "zuko MAF": ZukoMAF(seed),
    }


def run_set(name: str, X: np.ndarray, seeds: int) -> dict:
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


def report(results: dict, path: Path) -> None:
    names = list(results["sets"][0]["models"])
    lines = [
        "# Continuous density estimation",
        "",
        f"Mean test log-likelihood per row (nats, higher is better) over "
        f"{results['seeds']} seeds, standardized features; GMM components by BIC, KDE "
        "bandwidth by cross-validation, neural models with early stopping on a "
        "hold-out of the training rows (see `benchmarks/continuous.py`). Best per "
        "set in bold; standard deviation over seeds in brackets.",
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
        lines.append(
            f"| {s['set']} | {s['n']} | {s['d']} | " + " | ".join(cells) + " |"
        )
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
    write_markdown(path, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*SKLEARN_SETS, *ADBENCH_SETS]
    parser.add_argument("--sets", nargs="*", default=names, choices=names)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = environment(seeds=args.seeds, sets=[])
    for name in args.sets:
        X = load(name)
        if X is None:
            print(f"{name}: not found in {ADBENCH}, skipped", flush=True)
            continue
        start = time.perf_counter()
        results["sets"].append(run_set(name, X, args.seeds))
        lls = {
            m: round(r["test_ll"], 2) for m, r in results["sets"][-1]["models"].items()
        }
        print(f"{name} ({time.perf_counter() - start:.0f} s): {lls}", flush=True)
    write_json(args.out / "continuous.json", results)
    report(results, args.out / "continuous.md")


if __name__ == "__main__":
    main()
