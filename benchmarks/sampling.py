"""Sampling cost: incremental sampler against the naive D-pass sampler and scoring.

For 784-dimensional MADEs (one hidden layer of 500, and two of 500), times drawing
``n`` rows for ``n`` in {1, 100, 1000}:

- the naive sampler (one full forward pass per variable, ``skmade._sampling``),
- the incremental sampler on the same noise (each hidden unit computed once),
- ``MADEDensity.sample(n)`` (the public method: incremental, plus noise and set-up),
- ``MADEDensity.score_samples`` on ``n`` rows, the cost of one density evaluation.

All in one run, medians of repeats. Run alone::

    python -m benchmarks.sampling [--data PATH]

Writes ``benchmarks/results/sampling.json`` and ``benchmarks/results/sampling.md``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from skmade import MADEDensity
from skmade._families import Bernoulli
from skmade._sampling import sample_incremental, sample_naive

from ._common import (
    MNIST,
    RESULTS,
    environment,
    load_mnist,
    markdown_table,
    write_json,
    write_markdown,
)
from ._timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    X_train, X_test = load_mnist(args.data, ("train", "test"))
    X_train = X_train[:10000]

    results = environment(rows=[])
    for hidden in [(500,), (500, 500)]:
        est = MADEDensity(
            hidden_layer_sizes=hidden,
            direct_connections=False,
            max_iter=1,
            random_state=0,
            device="cpu",
        ).fit(X_train)  # trained weights: realistic, not random, conditionals
        module = est.module_
        for n in (1, 100, 1000):
            noise = Bernoulli.noise((n, 784), torch.Generator().manual_seed(n))
            rows = X_test[np.random.RandomState(n).choice(len(X_test), n)]
            naive_repeats = 1 if n == 1000 else max(1, args.repeats // 2)
            entry = {
                "hidden_layer_sizes": list(hidden),
                "n": n,
                "naive_s": median_seconds(
                    lambda m=module, z=noise: sample_naive(m, Bernoulli, 0, z),
                    naive_repeats,
                ),
                "incremental_s": median_seconds(
                    lambda m=module, z=noise: sample_incremental(m, Bernoulli, 0, z),
                    args.repeats,
                ),
                "sample_s": median_seconds(
                    lambda e=est, n=n: e.sample(n, random_state=0), args.repeats
                ),
                "score_samples_s": median_seconds(
                    lambda e=est, r=rows: e.score_samples(r), args.repeats
                ),
            }
            entry["speedup_vs_naive"] = entry["naive_s"] / entry["incremental_s"]
            entry["sample_over_score"] = entry["sample_s"] / entry["score_samples_s"]
            results["rows"].append(entry)
            print(json.dumps(entry))

    write_json(args.out / "sampling.json", results)
    header = [
        "hidden",
        "n",
        "naive (D passes)",
        "incremental",
        "speed-up",
        "`sample`",
        "`score_samples` (n rows)",
        "sample / score",
    ]
    rows = [
        [
            "-".join(map(str, r["hidden_layer_sizes"])),
            r["n"],
            f"{r['naive_s'] * 1e3:,.1f} ms",
            f"{r['incremental_s'] * 1e3:,.1f} ms",
            f"{r['speedup_vs_naive']:,.0f}x",
            f"{r['sample_s'] * 1e3:,.1f} ms",
            f"{r['score_samples_s'] * 1e3:,.2f} ms",
            f"{r['sample_over_score']:,.1f}x",
        ]
        for r in results["rows"]
    ]
    lines = [
        "# Sampling cost (784-dim binarized-MNIST MADE, one mask, CPU)",
        "",
        f"torch {results['torch']}, {torch.get_num_threads()} threads; medians of "
        "repeats in one run. `sample` is the public `MADEDensity.sample` "
        "(incremental sampler plus noise and set-up); the incremental and naive "
        "columns are the bare samplers on the same noise.",
        "",
        *markdown_table(header, rows),
    ]
    write_markdown(args.out / "sampling.md", lines, echo=True)


if __name__ == "__main__":
    main()
