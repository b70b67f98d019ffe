"""What masking costs: MADEDensity against a dense MLP of the same shapes, same run.

A 784-500-784 MADE (one mask) is timed against a plain ``torch.nn.Linear`` MLP with the
same shapes, loss (Bernoulli log-likelihood), optimizer (Adam) and L2 term, on binarized
MNIST. Measurements alternate between the two so that both see the same machine
load; ratios of medians are reported. Also shown: the denormal trap, where a naive MADE
whose masked-out weights are decayed by ``Adam(weight_decay=...)`` fills with denormal
floats, which slow some processors down epoch after epoch.

Run alone (another torch process on a 2-core machine distorts every number)::

    python -m benchmarks.masking [--data PATH] [--rows 50000]

Writes ``benchmarks/results/masking.json`` and ``benchmarks/results/masking.md``.
"""

from __future__ import annotations

import argparse
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

from ._common import MNIST, RESULTS, environment, load_mnist, write_json, write_markdown
from ._timing import fit_seconds, median_seconds

HIDDEN = 500
ALPHA = 1e-4


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


def made_estimator(batch_size: int, **params) -> MADEDensity:
    return MADEDensity(
        hidden_layer_sizes=(HIDDEN,),
        batch_size=batch_size,
        alpha=ALPHA,
        direct_connections=False,
        random_state=0,
        device="cpu",
        **params,
    )


def training_epochs(X, batch_size: int, repeats: int) -> dict:
    """Epoch times of the dense MLP and of MADEDensity, interleaved."""
    x_all = torch.from_numpy(X)
    generator = torch.Generator().manual_seed(0)
    dense = DenseMLP(X.shape[1], HIDDEN, generator)
    optimizer = torch.optim.Adam(dense.parameters(), lr=1e-3)
    dense_epoch(dense, optimizer, x_all, batch_size, generator)  # warm-up
    # The estimator's epoch: fit(max_iter=2) minus fit(max_iter=1) on fresh
    # estimators, so validation and set-up (the same in both) cancel out.
    made_times, dense_times, overhead = [], [], []
    for _ in range(repeats):
        dense_times.append(dense_epoch(dense, optimizer, x_all, batch_size, generator))
        one = fit_seconds(made_estimator(batch_size, max_iter=1), X)
        two = fit_seconds(made_estimator(batch_size, max_iter=2), X)
        made_times.append(two - one)
        overhead.append(one - (two - one))
    return {
        "batch_size": batch_size,
        "rows": X.shape[0],
        "dense_epoch_s": statistics.median(dense_times),
        "made_epoch_s": statistics.median(made_times),
        "made_fit_overhead_s": statistics.median(overhead),
        "ratio": statistics.median(made_times) / statistics.median(dense_times),
        "dense_epoch_all_s": dense_times,
        "made_epoch_all_s": made_times,
    }


def denormal_trap(X, batch_size: int, epochs: int) -> dict:
    """Per-epoch times: MADEDensity (warm starts) vs a naive weight-decayed MADE."""
    made = made_estimator(batch_size, max_iter=1, warm_start=True)
    est_times = [fit_seconds(made, X) for _ in range(epochs)]

    x_all = torch.from_numpy(X)
    generator = torch.Generator().manual_seed(0)
    naive = DenseMLP(X.shape[1], HIDDEN, generator)
    module = made.module_  # reuse the estimator's masks: same connectivity
    masks = tuple(m.clone() for m in module.masks(0))
    # Adam's weight_decay adds alpha * W to every weight's gradient, masked or not:
    # masked-out weights get only that and shrink towards zero, into denormals.
    optimizer = torch.optim.Adam(naive.parameters(), lr=1e-3, weight_decay=ALPHA)
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


def scoring(X_test, repeats: int) -> dict:
    """Rows per second: MADEDensity.score_samples against the dense forward pass."""
    made = made_estimator(200, max_iter=1).fit(X_test[:2000])
    ensemble = made_estimator(200, max_iter=1, n_masks=8, order_agnostic=True)
    ensemble.fit(X_test[:2000])
    generator = torch.Generator().manual_seed(0)
    dense = DenseMLP(X_test.shape[1], HIDDEN, generator)
    x_all = torch.from_numpy(X_test)

    @torch.no_grad()
    def dense_scores():
        out = []
        for first in range(0, x_all.shape[0], 8192):
            x = x_all[first : first + 8192]
            logp = Bernoulli.log_prob(dense(x)[:, None, :], x, dtype=torch.float64)
            out.append(logp.sum(dim=1))
        return torch.cat(out).numpy()

    def rate(fn):
        return X_test.shape[0] / median_seconds(fn, repeats)

    dense_rate = rate(dense_scores)
    made_rate = rate(lambda: made.score_samples(X_test))
    ensemble_rate = rate(lambda: ensemble.score_samples(X_test))
    return {
        "rows": X_test.shape[0],
        "dense_rows_per_s": dense_rate,
        "made_rows_per_s": made_rate,
        "made_8_masks_rows_per_s": ensemble_rate,
        "ratio": dense_rate / made_rate,
        "ratio_8_masks": dense_rate / ensemble_rate,
    }


def report(results: dict, path: Path) -> None:
    lines = [
        "# Masking cost: MADEDensity vs a dense MLP (784-500-784, same run)",
        "",
        f"torch {results['torch']}, {results['threads']} threads, "
        f"{results['machine']}; medians of interleaved repeats. Ratio = MADE time / "
        "dense time (1.0 = masking is free).",
        "",
        "| measurement | dense MLP | MADEDensity | ratio |",
        "|---|---|---|---|",
    ]
    for epoch in results["training"]:
        lines.append(
            f"| training epoch, {epoch['rows']} rows, batch {epoch['batch_size']} | "
            f"{epoch['dense_epoch_s']:.2f} s | {epoch['made_epoch_s']:.2f} s | "
            f"{epoch['ratio']:.2f}x |"
        )
    score = results["scoring"]
    lines += [
        f"| score_samples, {score['rows']} rows | "
        f"{score['dense_rows_per_s']:,.0f} rows/s"
        f" | {score['made_rows_per_s']:,.0f} rows/s | {score['ratio']:.2f}x |",
        f"| score_samples, 8-mask ensemble | | {score['made_8_masks_rows_per_s']:,.0f} "
        f"rows/s | {score['ratio_8_masks']:.2f}x |",
        "",
        "Fixed cost of one `fit` call beside its epochs (input validation, tensors): "
        + ", ".join(
            f"{e['made_fit_overhead_s']:.2f} s at batch {e['batch_size']}"
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    X, X_test = load_mnist(args.data, ("train", "test"))
    X = X[: args.rows]
    results = environment(machine=f"{platform.machine()}, {_cpu_model()}", training=[])
    for batch_size in (100, 1024):
        results["training"].append(training_epochs(X, batch_size, args.repeats))
        print(json.dumps(results["training"][-1], indent=1))
    results["scoring"] = scoring(X_test, args.repeats + 2)
    print(json.dumps(results["scoring"], indent=1))
    results["denormals"] = denormal_trap(X, 100, args.trap_epochs)
    print(json.dumps(results["denormals"], indent=1))

    write_json(args.out / "masking.json", results)
    report(results, args.out / "masking.md")


if __name__ == "__main__":
    main()
