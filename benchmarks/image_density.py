"""A real 2-D discrete density: a photograph read as a probability table.

scikit-learn's ``china.jpg`` sample image, in grayscale, resized to 200x200, is a
probability table ``p[row, col]`` proportional to brightness. Train and test rows are
pixel coordinates drawn from it: two categorical columns with 200 categories each.
The test negative log-likelihood of any model is at least the table's entropy (the
limit, reached only by the table itself, up to sampling noise of the test set);
reported beside it are a uniform table and the product of the two smoothed marginal
histograms (independent columns). All models run in one process. Run alone::

    python -m benchmarks.image_density [--train 300000]

Writes ``benchmarks/results/image_density.json``, ``.md`` and
``docs/image_density.png`` (true density, model density, model samples).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_image
from sklearn.exceptions import ConvergenceWarning

from skmade import MADEDensity

from ._common import (
    DOCS,
    RESULTS,
    environment,
    markdown_table,
    write_json,
    write_markdown,
)

SIZE = 200


def probability_table() -> np.ndarray:
    from PIL import Image

    gray = load_sample_image("china.jpg").astype(np.float64).mean(axis=2)
    image = Image.fromarray(gray.astype(np.uint8)).resize(
        (SIZE, SIZE), Image.Resampling.BILINEAR
    )
    table = np.asarray(image, dtype=np.float64) + 1.0  # every pixel possible
    return table / table.sum()


def draw(table: np.ndarray, n: int, rng) -> np.ndarray:
    cells = rng.choice(table.size, size=n, p=table.ravel())
    return np.column_stack(np.unravel_index(cells, table.shape)).astype(np.float64)


def marginal_nll(train: np.ndarray, test: np.ndarray) -> float:
    log_p = 0.0
    for j in range(2):
        counts = np.bincount(train[:, j].astype(int), minlength=SIZE) + 0.5
        log_p += np.log(counts / counts.sum())[test[:, j].astype(int)]
    return float(-np.mean(log_p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=300_000)
    parser.add_argument("--test", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--figure", type=Path, default=DOCS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    table = probability_table()
    entropy = float(-(table * np.log(table)).sum())
    rng = np.random.RandomState(0)
    train, test = draw(table, args.train, rng), draw(table, args.test, rng)
    grid = np.column_stack(
        [np.repeat(np.arange(SIZE), SIZE), np.tile(np.arange(SIZE), SIZE)]
    ).astype(np.float64)
    rows = {
        "uniform": {"test_nll": float(np.log(SIZE * SIZE))},
        "independent marginals": {"test_nll": marginal_nll(train, test)},
        "true table (the limit)": {
            "test_nll": float(
                -np.mean(np.log(table.ravel()[(test @ [SIZE, 1]).astype(int)]))
            )
        },
    }
    configs = {
        "MADE 2x256": dict(hidden_layer_sizes=(256, 256)),
        "MADE 2x256, 2 orderings": dict(
            hidden_layer_sizes=(256, 256),
            n_masks=2,
            order_agnostic=True,
            ordering=[0, 1],
        ),
    }
    best = None
    for name, params in configs.items():
        est = MADEDensity(
            distribution="categorical",
            batch_size=500,
            learning_rate_init=1e-3,
            early_stopping=True,
            n_iter_no_change=10,
            max_iter=200,
            random_state=0,
            device="cpu",
            **params,
        )
        start = time.perf_counter()
        est.fit(train)
        fit_s = time.perf_counter() - start
        test_nll = -est.score(test)
        total = float(np.exp(est.score_samples(grid)).sum())
        start = time.perf_counter()
        est.sample(100_000, random_state=1)
        sample_s = time.perf_counter() - start
        rows[name] = {
            "test_nll": test_nll,
            "fit_seconds": fit_s,
            "epochs": est.n_iter_,
            "sample_100k_seconds": sample_s,
            "probability_sum_over_grid": total,
            "orderings": est.orderings_.tolist(),
        }
        print(f"{name}: test NLL {test_nll:.4f} (entropy {entropy:.4f})", flush=True)
        if best is None or test_nll < rows[best[0]]["test_nll"]:
            best = (name, est)

    results = environment(
        entropy=entropy, n_train=args.train, n_test=args.test, models=rows
    )
    write_json(args.out / "image_density.json", results)
    table_rows = []
    for name, r in rows.items():
        fit = f"{r['fit_seconds']:.0f} s" if "fit_seconds" in r else "-"
        epochs = r.get("epochs", "-")
        sample = (
            f"{r['sample_100k_seconds']:.2f} s" if "sample_100k_seconds" in r else "-"
        )
        nll = r["test_nll"]
        table_rows.append(
            [name, f"{nll:.4f}", f"{nll - entropy:+.4f}", fit, epochs, sample]
        )
    header = ["model", "test NLL", "gap to entropy", "fit", "epochs", "sample 100k"]
    lines = [
        "# 2-D discrete density: a 200x200 photograph as a probability table",
        "",
        f"Entropy of the table (the limit): **{entropy:.4f} nats**. "
        f"{args.train} training and {args.test} test coordinate pairs, two "
        "categorical columns of 200 categories. Test NLL in nats (lower is better); "
        "the gap to the entropy is what a model leaves on the table.",
        "",
        *markdown_table(header, table_rows),
    ]
    write_markdown(args.out / "image_density.md", lines)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, est = best
    model = np.exp(est.score_samples(grid)).reshape(SIZE, SIZE)
    samples = est.sample(200_000, random_state=2).astype(int)
    counts = np.zeros((SIZE, SIZE))
    np.add.at(counts, (samples[:, 0], samples[:, 1]), 1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
    panels = [
        (table, "true table"),
        (model, f"{name}: density"),
        (counts, f"{name}: 200k samples"),
    ]
    for ax, (image, title) in zip(axes, panels, strict=True):
        ax.imshow(image, cmap="gray")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    args.figure.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure / "image_density.png", dpi=80)


if __name__ == "__main__":
    main()
