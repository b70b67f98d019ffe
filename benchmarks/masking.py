"""What masking costs: MADEDensity against a dense MLP of the same shapes, same run.

784-500-784 and 784-2000-784 MADEs (one mask, random ordering) are timed against a
plain ``torch.nn.Linear`` MLP with the same shapes, loss (Bernoulli log-likelihood),
optimizer (fused Adam, as MADEDensity's) and L2 term, on binarized MNIST; and
against themselves with the degree blocks turned off (the plain masked path, every
weight multiplied). Measurements alternate so that all see the same machine load;
ratios of medians are reported. Also shown: the denormal trap, where a naive MADE
whose masked-out weights are decayed by ``Adam(weight_decay=...)`` fills with denormal
floats, which slow some processors down epoch after epoch.

Run alone (another torch process on a 2-core machine distorts every number)::

    python -m benchmarks.masking [--data PATH] [--rows 50000] [--hidden 500 2000]
        [--sections defaults training scoring denormals]

The *defaults* section measures ``MADEDensity`` as users construct it (direct
connections on, ``partial_fit``, one and eight masks) beside the configurations
above.

Writes ``benchmarks/results/masking.json`` and ``benchmarks/results/masking.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from skmade import MADEDensity
from skmade._families import Bernoulli
from skmade._nn import MADE

from ._common import MNIST, RESULTS, environment, load_mnist, write_json, write_markdown
from ._timing import fit_seconds, median_seconds

ALPHA = 1e-4
SECTIONS = ["defaults", "training", "scoring", "denormals"]


@contextlib.contextmanager
def plain_masked_path():
    """Turn the degree blocks off: every layer one product with the masked weight."""
    MADE.use_blocks = False
    try:
        yield
    finally:
        MADE.use_blocks = True


class DenseMLP(torch.nn.Module):
    def __init__(self, n_features: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.hidden = torch.nn.Parameter(torch.empty(hidden, n_features))
        self.hidden_bias = torch.nn.Parameter(torch.zeros(hidden))
        self.out = torch.nn.Parameter(torch.empty(n_features, hidden))
        self.out_bias = torch.nn.Parameter(torch.zeros(n_features))
        for weight in (self.hidden, self.out):
            bound = weight.shape[1] ** -0.5
            torch.nn.init.uniform_(weight, -bound, bound, generator=generator)

    def forward(self, x, hidden_mask=None, out_mask=None):
        w1 = self.hidden if hidden_mask is None else self.hidden * hidden_mask
        w2 = self.out if out_mask is None else self.out * out_mask
        return F.linear(F.relu(F.linear(x, w1, self.hidden_bias)), w2, self.out_bias)


def dense_epoch(model, optimizer, x_all, batch_size, generator, masks=(None, None)):
    """One epoch of the same objective MADEDensity optimizes, on a plain MLP."""
    n = x_all.shape[0]
    order = torch.randperm(n, generator=generator)
    penalty_scale = 0.5 * ALPHA / n
    start = time.perf_counter()
    for first in range(0, n, batch_size):
        x = x_all[order[first : first + batch_size]]
        # The same log-probability kernel as MADEDensity: the ratio isolates masking.
        logits = model(x, *masks)[:, None, :]
        loss = -Bernoulli.log_prob(logits, x).sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if masks[0] is None:  # the same L2 term, added to the gradients
            with torch.no_grad():
                for weight in (model.hidden, model.out):
                    weight.grad.add_(weight, alpha=2 * penalty_scale)
        optimizer.step()
    return time.perf_counter() - start


@torch.no_grad()
def dense_log_likelihood(model, x_all):
    """The dense MLP's Bernoulli log-likelihood of every row, 8,192 rows at a time."""
    out = []
    for first in range(0, x_all.shape[0], 8192):
        x = x_all[first : first + 8192]
        logp = Bernoulli.log_prob(model(x)[:, None, :], x, dtype=torch.float64)
        out.append(logp.sum(dim=1))
    return torch.cat(out).numpy()


def made_estimator(batch_size: int, hidden: int, **params) -> MADEDensity:
    return MADEDensity(
        hidden_layer_sizes=(hidden,),
        ordering="random",
        batch_size=batch_size,
        alpha=ALPHA,
        direct_connections=False,
        random_state=0,
        device="cpu",
        **params,
    )


def training_epochs(X, batch_size: int, hidden: int, repeats: int) -> dict:
    """Epoch times of the dense MLP and of MADEDensity (degree blocks on and off),
    interleaved."""
    x_all = torch.from_numpy(X)
    generator = torch.Generator().manual_seed(0)
    dense = DenseMLP(X.shape[1], hidden, generator)
    optimizer = torch.optim.Adam(dense.parameters(), lr=1e-3, fused=True)
    dense_epoch(dense, optimizer, x_all, batch_size, generator)  # warm-up

    def made_epoch():
        # The estimator's epoch: fit(max_iter=2) minus fit(max_iter=1) on fresh
        # estimators, so validation and set-up (the same in both) cancel out.
        one = fit_seconds(made_estimator(batch_size, hidden, max_iter=1), X)
        two = fit_seconds(made_estimator(batch_size, hidden, max_iter=2), X)
        return two - one, one - (two - one)

    made_times, plain_times, dense_times, overhead = [], [], [], []
    for _ in range(repeats):
        dense_times.append(dense_epoch(dense, optimizer, x_all, batch_size, generator))
        epoch, fixed = made_epoch()
        made_times.append(epoch)
        overhead.append(fixed)
        with plain_masked_path():
            plain_times.append(made_epoch()[0])
    dense_s = statistics.median(dense_times)
    return {
        "hidden": hidden,
        "batch_size": batch_size,
        "rows": X.shape[0],
        "dense_epoch_s": dense_s,
        "made_epoch_s": statistics.median(made_times),
        "plain_epoch_s": statistics.median(plain_times),
        "made_fit_overhead_s": statistics.median(overhead),
        "ratio": statistics.median(made_times) / dense_s,
        "plain_ratio": statistics.median(plain_times) / dense_s,
        "dense_epoch_all_s": dense_times,
        "made_epoch_all_s": made_times,
        "plain_epoch_all_s": plain_times,
    }


def denormal_trap(X, batch_size: int, epochs: int) -> dict:
    """Per-epoch times: MADEDensity (warm starts) vs a naive weight-decayed MADE."""
    made = made_estimator(batch_size, 500, max_iter=1, warm_start=True)
    est_times = [fit_seconds(made, X) for _ in range(epochs)]

    x_all = torch.from_numpy(X)
    generator = torch.Generator().manual_seed(0)
    naive = DenseMLP(X.shape[1], 500, generator)
    module = made.module_  # reuse the estimator's masks: same connectivity
    masks = tuple(m.clone() for m in module.masks(0))
    # Adam's weight_decay adds alpha * W to every weight's gradient, masked or not:
    # masked-out weights get only that and shrink towards zero, into denormals.
    optimizer = torch.optim.Adam(
        naive.parameters(), lr=1e-3, weight_decay=ALPHA, fused=True
    )
    naive_times = [
        dense_epoch(naive, optimizer, x_all, batch_size, generator, masks)
        for _ in range(epochs)
    ]
    tiny = torch.finfo(torch.float32).tiny
    masked_out = ~masks[0].bool()
    weights = naive.hidden.detach()[masked_out]
    denormal_fraction = float(((weights != 0) & (weights.abs() < tiny)).float().mean())
    est_weights = module.layers[0].weight.detach()
    est_denormals = int(((est_weights != 0) & (est_weights.abs() < tiny)).sum())
    return {
        "batch_size": batch_size,
        "madedensity_fit_epoch_s": est_times,
        "naive_weight_decay_epoch_s": naive_times,
        "naive_masked_weights_denormal_fraction": denormal_fraction,
        "madedensity_denormal_weights": est_denormals,
    }


def scoring(X_test, hidden: int, repeats: int) -> dict:
    """Rows per second: MADEDensity.score_samples against the dense forward pass."""
    made = made_estimator(200, hidden, max_iter=1).fit(X_test[:2000])
    ensemble = made_estimator(200, hidden, max_iter=1, n_masks=8, order_agnostic=True)
    ensemble.fit(X_test[:2000])
    generator = torch.Generator().manual_seed(0)
    dense = DenseMLP(X_test.shape[1], hidden, generator)
    x_all = torch.from_numpy(X_test)

    def dense_scores():
        return dense_log_likelihood(dense, x_all)

    def rate(fn):
        return X_test.shape[0] / median_seconds(fn, repeats)

    dense_rate = rate(dense_scores)
    made_rate = rate(lambda: made.score_samples(X_test))
    ensemble_rate = rate(lambda: ensemble.score_samples(X_test))
    with plain_masked_path():
        plain_rate = rate(lambda: made.score_samples(X_test))
    return {
        "hidden": hidden,
        "rows": X_test.shape[0],
        "dense_rows_per_s": dense_rate,
        "made_rows_per_s": made_rate,
        "plain_rows_per_s": plain_rate,
        "made_8_masks_rows_per_s": ensemble_rate,
        "ratio": dense_rate / made_rate,
        "plain_ratio": dense_rate / plain_rate,
        "ratio_8_masks": dense_rate / ensemble_rate,
    }


# The defaults as users construct them, and the variants a user is likely to try.
DEFAULT_VARIANTS = {
    "defaults (direct connections on)": {},
    "direct_connections=False": {"direct_connections": False},
    "n_masks=8": {"n_masks": 8},
    "n_masks=8, order_agnostic=True": {"n_masks": 8, "order_agnostic": True},
}


def default_construction(X, X_test, repeats: int, rows: int = 10000) -> list[dict]:
    """``MADEDensity(hidden_layer_sizes=(2000,), batch_size=1024, ordering='random',
    random_state=0)``, otherwise defaults, as a user builds it: one ``partial_fit``
    epoch over ``rows`` training rows against the dense MLP's epoch, and
    ``score_samples`` of ``rows`` test rows against the dense forward pass and
    Bernoulli log-likelihood; measurements interleaved, medians."""
    X, X_test = X[:rows], X_test[:rows]
    x_all, x_test = torch.from_numpy(X), torch.from_numpy(X_test)
    generator = torch.Generator().manual_seed(0)
    dense = DenseMLP(X.shape[1], 2000, generator)
    optimizer = torch.optim.Adam(dense.parameters(), lr=1e-3, fused=True)
    dense_epoch(dense, optimizer, x_all, 1024, generator)  # warm-up

    def dense_scores():
        return dense_log_likelihood(dense, x_test)

    results = []
    for name, params in DEFAULT_VARIANTS.items():
        est = MADEDensity(
            hidden_layer_sizes=(2000,),
            batch_size=1024,
            ordering="random",
            random_state=0,
            **params,
        )
        est.partial_fit(X)  # the first call also sets the model up
        est.score_samples(X_test[:10])
        dense_times, made_times, dense_score, made_score = [], [], [], []
        for _ in range(repeats):
            dense_times.append(dense_epoch(dense, optimizer, x_all, 1024, generator))
            start = time.perf_counter()
            est.partial_fit(X)
            made_times.append(time.perf_counter() - start)
            dense_score.append(median_seconds(dense_scores, 1))
            made_score.append(median_seconds(lambda e=est: e.score_samples(X_test), 1))
        plan = est.module_.block_plan(0)
        results.append(
            {
                "variant": name,
                "params": params,
                "rows": rows,
                "blocked": plan is not None,
                "direct": est.module_.direct is not None,
                "dense_epoch_s": statistics.median(dense_times),
                "made_epoch_s": statistics.median(made_times),
                "epoch_ratio": statistics.median(made_times)
                / statistics.median(dense_times),
                "dense_score_s": statistics.median(dense_score),
                "made_score_s": statistics.median(made_score),
                "score_ratio": statistics.median(made_score)
                / statistics.median(dense_score),
                "dense_epoch_all_s": dense_times,
                "made_epoch_all_s": made_times,
            }
        )
        print(json.dumps(results[-1], indent=1))
    one = results[0]["made_score_s"]
    for entry in results:
        entry["score_vs_one_mask"] = entry["made_score_s"] / one
    return results


def report_defaults(results: dict) -> list[str]:
    entries = results.get("defaults")
    if not entries:
        return []
    lines = [
        "## The defaults as users construct them",
        "",
        "`MADEDensity(hidden_layer_sizes=(2000,), batch_size=1024, "
        "ordering='random', random_state=0, ...)`, otherwise defaults, on "
        f"{entries[0]['rows']:,} binarized MNIST rows: one `partial_fit` epoch "
        "against the dense MLP's epoch (forward, BCE, backward, fused Adam, L2), and "
        "`score_samples` against the dense forward pass and log-likelihood; "
        "interleaved, medians. Targets: at most 0.75x for both; 8 masks at most 6x "
        "one mask's scoring time.",
        "",
        "| construction | epoch: dense | MADEDensity | ratio | score: dense | "
        "MADEDensity | ratio | vs one mask |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['variant']} | {e['dense_epoch_s']:.2f} s | "
            f"{e['made_epoch_s']:.2f} s | {e['epoch_ratio']:.2f}x | "
            f"{e['dense_score_s']:.2f} s | {e['made_score_s']:.2f} s | "
            f"{e['score_ratio']:.2f}x | {e['score_vs_one_mask']:.2f}x |"
        )
    return [*lines, ""]


def report(results: dict, path: Path) -> None:
    lines = [
        "# Masking cost: MADEDensity vs a dense MLP of the same shapes (same run)",
        "",
        f"torch {results['torch']}, {results['threads']} threads, "
        f"{results['machine']}; medians of interleaved repeats; one mask, random "
        "ordering. Ratio = time / dense MLP time (1.0 = masking is free, below 1.0 "
        "= faster than the dense network). *plain* is the same MADEDensity with the "
        "degree blocks turned off (every masked weight multiplied).",
        "",
        "| measurement | dense MLP | MADEDensity | ratio | plain masked | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for epoch in results["training"]:
        lines.append(
            f"| 784-{epoch['hidden']}-784 training epoch, {epoch['rows']} rows, "
            f"batch {epoch['batch_size']} | {epoch['dense_epoch_s']:.2f} s | "
            f"{epoch['made_epoch_s']:.2f} s | {epoch['ratio']:.2f}x | "
            f"{epoch['plain_epoch_s']:.2f} s | {epoch['plain_ratio']:.2f}x |"
        )
    for score in results["scoring"]:
        lines += [
            f"| 784-{score['hidden']}-784 score_samples, {score['rows']} rows | "
            f"{score['dense_rows_per_s']:,.0f} rows/s"
            f" | {score['made_rows_per_s']:,.0f} rows/s | {score['ratio']:.2f}x | "
            f"{score['plain_rows_per_s']:,.0f} rows/s | {score['plain_ratio']:.2f}x |",
            f"| 784-{score['hidden']}-784 score_samples, 8-mask ensemble | | "
            f"{score['made_8_masks_rows_per_s']:,.0f} rows/s | "
            f"{score['ratio_8_masks']:.2f}x | | |",
        ]
    lines += ["", *report_defaults(results)]
    lines += [
        "Fixed cost of one `fit` call beside its epochs (input validation, tensors): "
        + ", ".join(
            f"{e['made_fit_overhead_s']:.2f} s (784-{e['hidden']}-784, batch "
            f"{e['batch_size']})"
            for e in results["training"]
        )
        + ".",
        "",
        "## Denormal trap: epoch times over training (alpha = 1e-4)",
        "",
        "| epoch | "
        + " | ".join(
            str(i + 1)
            for i in range(len(results["denormals"]["madedensity_fit_epoch_s"]))
        )
        + " |",
        "|---|" + "---|" * len(results["denormals"]["madedensity_fit_epoch_s"]),
        "| MADEDensity (`fit`, warm start) | "
        + " | ".join(
            f"{t:.2f}" for t in results["denormals"]["madedensity_fit_epoch_s"]
        )
        + " |",
        "| naive MADE, `Adam(weight_decay)` on all weights | "
        + " | ".join(
            f"{t:.2f}" for t in results["denormals"]["naive_weight_decay_epoch_s"]
        )
        + " |",
        "",
        f"After these epochs "
        f"{results['denormals']['naive_masked_weights_denormal_fraction']:.0%}"
        " of the naive model's masked-out first-layer weights are denormal floats; "
        f"MADEDensity has {results['denormals']['madedensity_denormal_weights']} "
        "(its unused weights are exactly zero and get neither gradient nor penalty). "
        "How much denormals cost depends on the processor: some handle them in "
        "microcode at many times the cost of a normal operation, others nearly for "
        "free. MADEDensity's epoch time does not depend on it. The first "
        "MADEDensity epoch includes one-off set-up (allocation, mask cache).",
    ]
    write_markdown(path, lines, echo=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trap-epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 2000])
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=SECTIONS,
        help="what to measure; the others are kept from the last results file",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    X, X_test = load_mnist(args.data, ("train", "test"))
    results = environment(machine=f"{platform.machine()}, {_cpu_model()}")
    previous = args.out / "masking.json"
    if set(args.sections) != set(SECTIONS) and previous.exists():
        kept = json.loads(previous.read_text())
        results.update({k: kept[k] for k in SECTIONS if k in kept})
    if "defaults" in args.sections:
        results["defaults"] = default_construction(X, X_test, args.repeats + 2)
    if "training" in args.sections or "scoring" in args.sections:
        results["training"], results["scoring"] = [], []
        for hidden in args.hidden:
            for batch_size in (100, 1024):
                epochs = training_epochs(
                    X[: args.rows], batch_size, hidden, args.repeats
                )
                results["training"].append(epochs)
                print(json.dumps(epochs, indent=1))
            results["scoring"].append(scoring(X_test, hidden, args.repeats + 2))
            print(json.dumps(results["scoring"][-1], indent=1))
    if "denormals" in args.sections:
        results["denormals"] = denormal_trap(X[: args.rows], 100, args.trap_epochs)
        print(json.dumps(results["denormals"], indent=1))

    write_json(args.out / "masking.json", results)
    report(results, args.out / "masking.md")


if __name__ == "__main__":
    main()
