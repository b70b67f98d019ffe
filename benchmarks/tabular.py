"""The defaults on real tables: ``MADEDensity()`` against the classic baselines.

Every table is split into training, validation and test rows. Reported: test
negative log-likelihood in nats per row (lower is better), fit seconds and epochs.

* Binary tables: ``shared/data/debd`` (plants, audio, accidents: their own splits),
  in full and with the training rows subsampled to 500 and 2,000; scikit-learn's
  digits binarized at 8; binarized MNIST with 1,000 and 10,000 training rows (2,000
  validation rows, the 10,000 test rows). Baselines: independent Bernoulli and a
  Chow-Liu tree (``benchmarks/_baselines.py``), both Laplace-smoothed.
* Continuous tables: scikit-learn's wine, breast cancer and diabetes and the normal
  rows of continuous ADBench sets (at most 6,000 rows), columns with fewer than 10
  distinct values dropped, 60/20/20 split, standardized with the training rows'
  statistics. Baselines: GaussianMixture (1-10 components by BIC), KernelDensity
  (bandwidth from 0.03 to 10 by 5-fold CV), zuko's MAF (5 transforms of 2x64
  units, as MAFDensity's defaults) in the loop of ``benchmarks/continuous.py``;
  and our ``MAFDensity()``.
* Continuous, public: UCI concrete and red wine (``shared/data/uci_regression``,
  features and target as one table; same preparation), and scikit-learn's "Kernel
  Density Estimation" gallery workflow: digits on 15 principal components (PCA
  fitted on the user's rows, 25% held out for testing with seed 0, the rest 80/20
  training and validation; PCA coordinates, not standardized).
* Mixed: scikit-learn's digits as integers 0-16 (``distribution='auto'`` makes every
  column categorical). The continuous baselines are fitted to the integers plus
  uniform noise in [0, 1) and scored on test rows with one such draw: the expected
  log-density of the dequantized row is a lower bound on the log-probability of the
  integer row (Jensen), so their numbers compare with MADE's log-probabilities.

For skmade: ``MADEDensity()`` with its defaults (``random_state=0``), and a small grid
of alternatives; the best of the grid is chosen on the validation rows alone, and
its test NLL is reported beside the defaults'. First two speed checks on a
20,000 x 100 binary table (audio's rows): the defaults' fit time, and the time per
epoch (validation included) of 8 and 32 order-agnostic masks against one mask, in
the same process. Run alone (about 30 minutes on 2 cores)::

    python -m benchmarks.tabular [--tables plants-500 wine ...]

Writes ``benchmarks/results/tabular.json`` and ``benchmarks/results/tabular.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity

from skmade import MADEDensity, MAFDensity

from ._baselines import ChowLiuTree, IndependentBernoulli
from ._common import (
    ADBENCH,
    DEBD,
    MNIST,
    RESULTS,
    UCI,
    environment,
    load_npz,
    write_json,
    write_markdown,
)
from .continuous import BICGaussianMixture, ZukoMAF

BINARY_GRID = {
    "defaults": {},
    "1000 units": dict(hidden_layer_sizes=(1000,)),
    "alpha=10": dict(alpha=10.0),
    "8 order-agnostic masks": dict(n_masks=8, order_agnostic=True),
    "no direct path": dict(direct_connections=False),
}
CONTINUOUS_GRID = {
    "defaults": {},
    "1 component": dict(n_components=1),
    "alpha=10": dict(alpha=10.0),
    "2x256 units": dict(hidden_layer_sizes=(256, 256)),
    "no direct path": dict(direct_connections=False),
}


def _debd(name: str, n_train: int | None):
    data = load_npz(DEBD / f"{name}.npz")
    if data is None:
        return None
    train = data["train"]
    if n_train is not None:
        rows = np.random.RandomState(0).choice(train.shape[0], n_train, replace=False)
        train = train[rows]
    return tuple(a.astype(np.float64) for a in (train, data["valid"], data["test"]))


def _mnist(n_train: int):
    data = load_npz(MNIST)
    if data is None:
        return None
    rows = np.random.RandomState(0).choice(50000, n_train, replace=False)
    return tuple(
        a.astype(np.float64)
        for a in (data["train"][rows], data["valid"][:2000], data["test"])
    )


def _split(X: np.ndarray, standardize: bool):
    rows = np.random.RandomState(0).permutation(X.shape[0])
    a, b = int(0.6 * X.shape[0]), int(0.8 * X.shape[0])
    parts = X[rows[:a]], X[rows[a:b]], X[rows[b:]]
    if standardize:
        mean, std = parts[0].mean(axis=0), parts[0].std(axis=0)
        std[std == 0] = 1
        parts = tuple((p - mean) / std for p in parts)
    return parts


def _continuous(name: str):
    if name in ("wine", "breast_cancer", "diabetes"):
        X = getattr(datasets, f"load_{name}")().data.astype(np.float64)
    else:
        data = load_npz(ADBENCH / f"{name}.npz")
        if data is None:
            return None
        X = data["X"][data["y"] == 0].astype(np.float64)
        if X.shape[0] > 6000:
            rows = np.random.RandomState(0).choice(X.shape[0], 6000, replace=False)
            X = X[rows]
    distinct = np.array([np.unique(column).size for column in X.T])
    return _split(X[:, distinct >= 10], standardize=True)


def _pca_digits():
    """scikit-learn's "Kernel Density Estimation" gallery workflow: digits projected
    on 15 principal components (fitted on the training and validation rows, the
    user's data), 25% of the rows held out for testing (``train_test_split``, seed
    0); the rest split 80/20 into training and validation rows. Not standardized:
    the density is that of the PCA coordinates, as in the gallery."""
    X_fit, X_test = train_test_split(
        datasets.load_digits().data, test_size=0.25, random_state=0
    )
    pca = PCA(n_components=15, random_state=0).fit(X_fit)
    rows = np.random.RandomState(0).permutation(X_fit.shape[0])
    cut = int(0.8 * X_fit.shape[0])
    return tuple(
        pca.transform(part) for part in (X_fit[rows[:cut]], X_fit[rows[cut:]], X_test)
    )


def _uci(name: str):
    """A UCI regression table as a density table: features and target together."""
    data = load_npz(UCI / f"{name}.npz")
    if data is None:
        return None
    X = np.column_stack([data["X"], data["y"]]).astype(np.float64)
    distinct = np.array([np.unique(column).size for column in X.T])
    return _split(X[:, distinct >= 10], standardize=True)


def _binary_digits():
    return _split((datasets.load_digits().data >= 8).astype(np.float64), False)


def _integer_digits():
    return _split(datasets.load_digits().data.astype(np.float64), False)


TABLES = {
    **{
        f"{name}-{size}": ("binary", lambda name=name, size=size: _debd(name, size))
        for name in ("plants", "baudio", "accidents")
        for size in (500, 2000)
    },
    **{
        name: ("binary", lambda name=name: _debd(name, None))
        for name in ("plants", "baudio", "accidents")
    },
    "digits (binary)": ("binary", _binary_digits),
    "mnist-1000": ("binary", lambda: _mnist(1000)),
    **{
        name: ("continuous", lambda name=name: _continuous(name))
        for name in (
            "wine",
            "breast_cancer",
            "diabetes",
            "vowels",
            "pendigits",
            "satellite",
            "mammography",
            "cardio",
        )
    },
    "digits (PCA-15)": ("continuous", _pca_digits),
    **{
        name: ("continuous", lambda name=name: _uci(name))
        for name in ("concrete", "wine_red")
    },
    "digits (integers)": ("mixed", _integer_digits),
    "mnist-10000": ("binary", lambda: _mnist(10000)),
}


def _as_categorical_frame(X: np.ndarray, n_values: int):
    import pandas as pd

    return pd.DataFrame(
        {
            f"x{j}": pd.Categorical(X[:, j].astype(int), categories=range(n_values))
            for j in range(X.shape[1])
        }
    )


def _timed_fit(model, X):
    start = time.perf_counter()
    model.fit(X)
    return time.perf_counter() - start


def _baselines(kind: str, train, test, rng) -> dict:
    if kind == "binary":
        models = {
            "independent": IndependentBernoulli(),
            "Chow-Liu tree": ChowLiuTree(),
        }
    else:
        models = {
            "GaussianMixture (BIC)": BICGaussianMixture(random_state=0),
            "KernelDensity (CV)": GridSearchCV(
                KernelDensity(), {"bandwidth": np.logspace(-1.5, 1, 26)}, cv=5
            ),
            "zuko MAF": ZukoMAF(0),
        }
        if kind == "continuous":
            models["MAFDensity()"] = MAFDensity(random_state=0)
    if kind == "mixed":  # dequantize: a lower bound on the integer rows' log-mass
        train = train + rng.rand(*train.shape)
        test = test + rng.rand(*test.shape)
    out = {}
    for name, model in models.items():
        seconds = _timed_fit(model, train)
        out[name] = {
            "test_nll": -float(np.mean(model.score_samples(test))),
            "fit_s": seconds,
        }
    return out


def run_table(name: str) -> dict | None:
    kind, loader = TABLES[name]
    parts = loader()
    if parts is None:
        return None
    train, valid, test = parts
    result = {
        "kind": kind,
        "shape": list(train.shape),
        "baselines": _baselines(kind, train, test, np.random.RandomState(0)),
        "skmade": {},
    }
    grid = BINARY_GRID if kind == "binary" else CONTINUOUS_GRID
    if kind == "mixed":
        # Pixel values are 0-16, some unseen in a column's training rows: declare
        # them as the columns' categories, as a user who knows the domain would.
        train, valid, test = (_as_categorical_frame(p, 17) for p in parts)
    for config, params in grid.items():
        model = MADEDensity(random_state=0, **params)
        seconds = _timed_fit(model, train)
        result["skmade"][config] = {
            "valid_nll": -model.score(valid),
            "test_nll": -model.score(test),
            "fit_s": seconds,
            "epochs": model.n_iter_,
        }
        print(f"  {config:24s} {result['skmade'][config]}", flush=True)
    chosen = min(result["skmade"], key=lambda c: result["skmade"][c]["valid_nll"])
    result["chosen"] = chosen
    for baseline, values in result["baselines"].items():
        print(f"  {baseline:24s} {values}", flush=True)
    return result


def speed() -> dict | None:
    """Defaults' fit time on 20,000 x 100, and per-epoch cost of several masks."""
    data = load_npz(DEBD / "baudio.npz")
    if data is None:
        return None
    X = np.vstack([data["train"], data["valid"], data["test"]]).astype(np.float64)
    defaults = MADEDensity(random_state=0)
    fit_s = _timed_fit(defaults, X)
    per_epoch = {}
    for _repeat in range(2):  # the first round warms up; the second is reported
        for n_masks in (1, 8, 32):
            model = MADEDensity(
                n_masks=n_masks,
                order_agnostic=True,
                max_iter=5,
                n_iter_no_change=100,
                random_state=0,
            )
            per_epoch[n_masks] = _timed_fit(model, X) / 5
    return {
        "shape": list(X.shape),
        "defaults_fit_s": fit_s,
        "defaults_epochs": defaults.n_iter_,
        "epoch_s": per_epoch,
        "epoch_ratio": {k: v / per_epoch[1] for k, v in per_epoch.items()},
    }


def _markdown(results: dict, speed_result: dict | None) -> list[str]:
    lines = [
        "# Defaults on real tables",
        "",
        "Test negative log-likelihood, nats per row (lower is better); "
        "`python -m benchmarks.tabular` on a 2-core CPU, one process. "
        "*best of grid*: the skmade configuration with the best validation NLL. "
        "Baseline: Chow-Liu tree for binary tables, the better of GaussianMixture "
        "and KernelDensity otherwise (on test rows: generous to the baseline).",
        "",
        "| table | rows x cols | baseline | defaults | fit s (epochs) | best of grid "
        "| defaults vs grid | other baselines |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        base = r["baselines"]
        if r["kind"] == "binary":
            reference = base["Chow-Liu tree"]["test_nll"]
            reference_name = "Chow-Liu"
        else:
            candidates = ("GaussianMixture (BIC)", "KernelDensity (CV)")
            reference_name = min(candidates, key=lambda c: base[c]["test_nll"])
            reference = base[reference_name]["test_nll"]
            reference_name = reference_name.split(" ")[0]
        defaults = r["skmade"]["defaults"]
        chosen = r["skmade"][r["chosen"]]
        gap = (
            100 * (defaults["test_nll"] - chosen["test_nll"]) / abs(chosen["test_nll"])
        )
        others = ", ".join(
            f"{b} {v['test_nll']:.2f}"
            for b, v in base.items()
            if not b.startswith(("Chow", reference_name))
        )
        mark = "**" if defaults["test_nll"] < reference else ""
        lines.append(
            f"| {name} | {r['shape'][0]} x {r['shape'][1]} | {reference_name} "
            f"{reference:.2f} | {mark}{defaults['test_nll']:.2f}{mark} | "
            f"{defaults['fit_s']:.1f} ({defaults['epochs']}) | {r['chosen']}: "
            f"{chosen['test_nll']:.2f} | {gap:+.2f}% | {others} |"
        )
    lines.append("")
    lines.append("Bold: the defaults beat the baseline.")
    if speed_result:
        s = speed_result
        lines += [
            "",
            f"## Speed on {s['shape'][0]} x {s['shape'][1]} (audio rows)",
            "",
            f"- `MADEDensity().fit(X)`: {s['defaults_fit_s']:.1f} s "
            f"({s['defaults_epochs']} epochs).",
            "- Seconds per epoch with early stopping's validation pass, order-agnostic "
            "masks against one mask: "
            + ", ".join(
                f"{k} masks {s['epoch_s'][k]:.3f} s ({s['epoch_ratio'][k]:.2f}x)"
                for k in s["epoch_s"]
            )
            + ".",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument(
        "--update",
        action="store_true",
        help="rerun only --tables (and speed unless --no-speed) in the saved results",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    saved = {}
    if args.update and (RESULTS / "tabular.json").exists():
        saved = json.loads((RESULTS / "tabular.json").read_text())
    speed_result = saved.get("speed") if args.no_speed else speed()
    print(speed_result, flush=True)
    results = dict(saved.get("tables", {}))
    for name in args.tables:  # results are written after every table
        print(name, flush=True)
        result = run_table(name)
        if result is None:
            continue
        results[name] = result
        payload = environment(tables=results, speed=speed_result)
        write_json(RESULTS / "tabular.json", payload)
        write_markdown(RESULTS / "tabular.md", _markdown(results, speed_result))
    print("\n".join(_markdown(results, speed_result)))


if __name__ == "__main__":
    main()
