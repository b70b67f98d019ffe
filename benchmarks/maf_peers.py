"""MAF speed against a peer: MAFDensity vs zuko's MAF, same architecture, same run.

Both flows have 5 autoregressive transforms of 2x64 hidden units with alternating
(reversed) orders and a standard normal base; batch norm is off so that the networks
are the same. Data: 6000 rows of a 16-dimensional correlated, non-Gaussian
distribution (no download). Timed, alternating between the two, medians of repeats:
a training epoch (Adam, lr 1e-3, batches of 200), ``score_samples``/``log_prob`` on all
rows, and drawing 10000 rows. Needs ``pip install -e '.[bench]'``. Run alone::

    python -m benchmarks.maf_peers

Writes ``benchmarks/results/maf_peers.json`` and ``benchmarks/results/maf_peers.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import zuko
from sklearn.exceptions import ConvergenceWarning

from skmade import MAFDensity

from ._common import RESULTS, environment, markdown_table, write_json, write_markdown
from ._timing import fit_seconds, median_seconds

HERE = Path(__file__).resolve().parent
FLOWS, HIDDEN, BATCH = 5, (64, 64), 200


def data(n=6000, d=16, seed=0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    z = rng.randn(n, d)
    X = z @ rng.randn(d, d) / np.sqrt(d)
    X[:, 1::2] += 0.5 * X[:, ::2] ** 2  # curved dependencies
    return (X - X.mean(0)) / X.std(0)


def zuko_epoch(flow, optimizer, x_all, generator) -> float:
    order = torch.randperm(x_all.shape[0], generator=generator)
    start = time.perf_counter()
    for first in range(0, x_all.shape[0], BATCH):
        loss = -flow().log_prob(x_all[order[first : first + BATCH]]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    X = data()
    x_all = torch.as_tensor(X, dtype=torch.float32)

    torch.manual_seed(0)  # zuko initialises from the global generator
    flow = zuko.flows.MAF(X.shape[1], transforms=FLOWS, hidden_features=HIDDEN)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def ours(max_iter):
        return MAFDensity(
            n_flows=FLOWS,
            hidden_layer_sizes=HIDDEN,
            batch_norm=False,
            batch_size=BATCH,
            alpha=0.0,
            max_iter=max_iter,
            random_state=0,
            device="cpu",
        )

    zuko_epoch(flow, optimizer, x_all, generator)  # warm-up
    zuko_train, ours_train = [], []
    for _ in range(args.repeats):
        zuko_train.append(zuko_epoch(flow, optimizer, x_all, generator))
        # One epoch of MAFDensity.fit, set-up cancelled out.
        ours_train.append(fit_seconds(ours(2), X) - fit_seconds(ours(1), X))
    fitted = ours(3).fit(X)

    def zuko_score():
        with torch.no_grad():
            flow().log_prob(x_all)

    def zuko_sample():
        with torch.no_grad():
            flow().sample((10_000,))

    timings = {
        "train_epoch": (statistics.median(zuko_train), statistics.median(ours_train)),
        "score_6000_rows": (
            median_seconds(zuko_score, args.repeats),
            median_seconds(lambda: fitted.score_samples(X), args.repeats),
        ),
        "sample_10000_rows": (
            median_seconds(zuko_sample, args.repeats),
            median_seconds(lambda: fitted.sample(10_000, random_state=0), args.repeats),
        ),
    }
    results = environment(
        zuko=zuko.__version__,
        rows=X.shape[0],
        features=X.shape[1],
        timings={
            name: {"zuko_s": z, "skmade_s": o, "ratio": o / z}
            for name, (z, o) in timings.items()
        },
    )
    write_json(args.out / "maf_peers.json", results)
    rows = [
        [
            name.replace("_", " "),
            f"{t['zuko_s'] * 1e3:.1f} ms",
            f"{t['skmade_s'] * 1e3:.1f} ms",
            f"{t['ratio']:.2f}x",
        ]
        for name, t in results["timings"].items()
    ]
    lines = [
        "# MAF speed: MAFDensity vs zuko.flows.MAF (same architecture, same run)",
        "",
        f"skmade {results['skmade']}, zuko {results['zuko']}, torch "
        f"{results['torch']}, {results['threads']} threads. 5 transforms of 2x64 "
        f"hidden units, reversed orders, no batch norm, {X.shape[0]} rows x "
        f"{X.shape[1]} features; medians of {args.repeats} alternating repeats. Ratio "
        "below 1: skmade is faster.",
        "",
        *markdown_table(["operation", "zuko MAF", "MAFDensity", "ratio"], rows),
    ]
    write_markdown(args.out / "maf_peers.md", lines, echo=True)


if __name__ == "__main__":
    main()
