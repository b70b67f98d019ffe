"""Training speed against a peer: MADEDensity vs zuko's MaskedMLP, same run.

The same autoregressive network (784 -> 500 -> 784, natural ordering, ReLU), the
same objective (Bernoulli log-likelihood, same kernel), the same optimizer (Adam, lr
1e-3) and batches, on binarized MNIST. zuko builds its masks from an adjacency matrix
(``zuko.nn.MaskedMLP``); skmade from MADE degrees. Epochs alternate between the two;
medians are reported. Needs ``pip install -e '.[bench]'``. Run alone::

    python -m benchmarks.peers [--data PATH]

Writes ``benchmarks/results/peers.json`` and ``benchmarks/results/peers.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
import zuko
from sklearn.exceptions import ConvergenceWarning

from skmade import MADEDensity
from skmade._families import Bernoulli

from ._common import (
    MNIST,
    RESULTS,
    environment,
    load_mnist,
    markdown_table,
    write_json,
    write_markdown,
)
from ._timing import fit_seconds


def zuko_epoch(net, optimizer, x_all, batch_size, generator) -> float:
    order = torch.randperm(x_all.shape[0], generator=generator)
    start = time.perf_counter()
    for first in range(0, x_all.shape[0], batch_size):
        x = x_all[order[first : first + batch_size]]
        loss = -Bernoulli.log_prob(net(x)[:, None, :], x).sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    (X,) = load_mnist(args.data, ("train",))
    x_all = torch.from_numpy(X)
    n_features = X.shape[1]

    results = environment(zuko=zuko.__version__, rows=X.shape[0], runs=[])
    for batch_size in (100, 1024):
        # Output i may see inputs j < i: the natural-order autoregressive adjacency.
        adjacency = torch.ones(n_features, n_features, dtype=torch.bool).tril(-1)
        torch.manual_seed(0)  # zuko's layers initialise from the global generator
        net = zuko.nn.MaskedMLP(adjacency, hidden_features=[500])
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        zuko_epoch(net, optimizer, x_all, batch_size, generator)  # warm-up

        def made(max_iter, batch_size=batch_size):
            return MADEDensity(
                hidden_layer_sizes=(500,),
                batch_size=batch_size,
                alpha=0.0,
                direct_connections=False,
                max_iter=max_iter,
                random_state=0,
                device="cpu",
            )

        zuko_times, made_times = [], []
        for _ in range(args.repeats):
            zuko_times.append(zuko_epoch(net, optimizer, x_all, batch_size, generator))
            # One epoch of MADEDensity.fit, set-up cancelled out.
            made_times.append(fit_seconds(made(2), X) - fit_seconds(made(1), X))
        run = {
            "batch_size": batch_size,
            "zuko_epoch_s": statistics.median(zuko_times),
            "skmade_epoch_s": statistics.median(made_times),
        }
        run["ratio"] = run["skmade_epoch_s"] / run["zuko_epoch_s"]
        results["runs"].append(run)
        print(json.dumps(run), flush=True)

    write_json(args.out / "peers.json", results)
    rows = [
        [
            run["batch_size"],
            f"{run['zuko_epoch_s']:.2f} s",
            f"{run['skmade_epoch_s']:.2f} s",
            f"{run['ratio']:.2f}x",
        ]
        for run in results["runs"]
    ]
    header = ["batch", "zuko MaskedMLP", "MADEDensity", "ratio"]
    lines = [
        "# Training epoch: MADEDensity vs zuko.nn.MaskedMLP (784-500-784, same run)",
        "",
        f"skmade {results['skmade']}, zuko {results['zuko']}, "
        f"torch {results['torch']}, "
        f"{results['threads']} threads, {results['rows']} rows of binarized MNIST. "
        "Same objective, optimizer and batches; medians of alternating repeats. "
        "Ratio below 1: skmade is faster.",
        "",
        *markdown_table(header, rows),
    ]
    write_markdown(args.out / "peers.md", lines, echo=True)


if __name__ == "__main__":
    main()
