"""Figures for the MNIST benchmark: learning curves and samples of the best model.

Reads ``benchmarks/results/mnist.json`` and the saved samples; writes
``docs/mnist_learning_curves.png`` and ``docs/mnist_samples.png``. Needs matplotlib
(``pip install -e '.[bench]'``)::

    python -m benchmarks.mnist_figures
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks._common import DOCS
from benchmarks.mnist import PAPER, RESULTS, samples_path


def main() -> None:
    results = json.loads(RESULTS.read_text())
    fig, ax = plt.subplots(figsize=(11, 5.5))
    for r in results:
        ordering = r.get("ordering", "natural")
        label = f"{r['name']}, {ordering} (test {r['test_nll']:.2f})"
        # A mixture's members train one after the other: a curve each, one colour.
        members = sorted({point.get("member", 0) for point in r["curve"]})
        color = None
        for member in members:
            curve = [p for p in r["curve"] if p.get("member", 0) == member]
            epochs = [point["epoch"] for point in curve]
            valid = [point["valid_nll"] for point in curve]
            (line,) = ax.plot(
                epochs,
                valid,
                label=label if member == members[0] else None,
                color=color,
                lw=0.8 if len(members) > 1 else None,
            )
            color = line.get_color()
        if r["name"] in PAPER:
            ax.axhline(PAPER[r["name"]][1], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NLL (nats)")
    ax.set_ylim(85, 115)
    ax.set_title("Binarized MNIST; dotted: the paper's test NLL")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(DOCS / "mnist_learning_curves.png", dpi=120)

    best = min(results, key=lambda r: r["valid_nll"])  # model choice: validation only
    samples = np.load(samples_path(best["name"], best.get("ordering", "natural")))
    grid = samples[:100].reshape(10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(280, 280)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(1 - grid, cmap="gray", interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(
        f"100 samples, {best['name']}\n(test NLL {best['test_nll']:.2f})", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(DOCS / "mnist_samples.png", dpi=120)
    print("wrote", DOCS / "mnist_learning_curves.png", DOCS / "mnist_samples.png")


if __name__ == "__main__":
    main()
