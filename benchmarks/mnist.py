"""Binarized MNIST: MADEDensity against the MADE paper's test negative log-likelihoods.

Trains each configuration on the 50k training rows of the fixed binarization
(Larochelle & Murray), uses the 10k validation rows for early stopping, the
learning-rate schedule and model choice only, and reports the test NLL (nats, lower is
better) of the mask ensemble, always a normalized log-mean-exp over masks, or of a
mixture of independently trained models (configurations with ``members``: the
uniform mixture that ``skmade.DensityMixture`` computes). Each
configuration runs in its own process (clean peak-memory figures) under a wall-time
budget. Run alone::

    python -m benchmarks.mnist [--data PATH] [--configs NAME ...] [--minutes 30]
        [--ordering random|natural]

Appends to ``benchmarks/results/mnist.json`` (one object per configuration and
ordering, replacing earlier results of the same pair) and rewrites
``docs/mnist_results.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skmade import MADEDensity

from . import _common
from ._common import DOCS, MNIST, load_mnist, write_json, write_markdown

RESULTS = _common.RESULTS / "mnist.json"
TABLE = DOCS / "mnist_results.md"

# Germain et al. 2015, Table 6 (test NLL, nats).
PAPER = {
    "1x500-1mask": ("MADE, 1 hidden layer, 1 mask", 88.40),
    "2x500-1mask": ("MADE, 2 hidden layers, 1 mask", 89.59),
    "1x500-32masks": ("MADE, 1 hidden layer, 32 masks", 88.04),
    "2x500-32masks": ("MADE, 2 hidden layers, 32 masks", 86.64),
}


def raster_orderings(side: int = 28) -> np.ndarray:
    """Four scans of the image that keep every pixel's neighbours close before it:
    row by row, column by column, and both reversed (one ordering per mask)."""
    grid = np.arange(side * side).reshape(side, side)
    rows, columns = grid.ravel(), grid.T.ravel()
    return np.stack([rows, columns, rows[::-1], columns[::-1]])


# Four single-mask 784-2000-784 models with direct connections, one raster scan each.
RASTER_MEMBERS = [
    dict(
        hidden_layer_sizes=(2000,),
        n_masks=1,
        ordering=scan,
        direct_connections=True,
        alpha=50.0,
    )
    for scan in raster_orderings()
]


def square_scans(side: int = 28) -> np.ndarray:
    """The eight scans of the square's symmetries: the four raster scans, then rows
    right to left, rows from the bottom, and the same for columns."""
    grid = np.arange(side * side).reshape(side, side)
    # The image of the grid under each symmetry: its rows in order are a scan.
    images = [grid, grid.T, grid[::-1, ::-1], grid.T[::-1, ::-1]]
    images += [grid[:, ::-1], grid[::-1, :], grid.T[:, ::-1], grid.T[::-1, :]]
    return np.stack([image.ravel() for image in images])


CONFIGS = {
    "1x500-1mask": dict(hidden_layer_sizes=(500,), n_masks=1),
    "2x500-1mask": dict(hidden_layer_sizes=(500, 500), n_masks=1),
    "1x500-32masks": dict(hidden_layer_sizes=(500,), n_masks=32),
    "2x500-32masks": dict(hidden_layer_sizes=(500, 500), n_masks=32),
    "1x2000-1mask": dict(hidden_layer_sizes=(2000,), n_masks=1),
    # Beyond the paper's table: direct input-to-output connections.
    "1x500-1mask-direct": dict(
        hidden_layer_sizes=(500,), n_masks=1, direct_connections=True
    ),
    "1x1500-1mask-direct": dict(
        hidden_layer_sizes=(1500,), n_masks=1, direct_connections=True
    ),
    "1x1500-1mask-direct-l2": dict(
        hidden_layer_sizes=(1500,), n_masks=1, direct_connections=True, alpha=5.0
    ),
    "1x1500-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(1500,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x1500-1mask-direct-alpha200": dict(
        hidden_layer_sizes=(1500,), n_masks=1, direct_connections=True, alpha=200.0
    ),
    "1x1500-1mask-direct-alpha100": dict(
        hidden_layer_sizes=(1500,), n_masks=1, direct_connections=True, alpha=100.0
    ),
    "1x2000-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(2000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x3000-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(3000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x4000-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(4000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    # Mask ensembles of a strong architecture, against its single mask at the same
    # wall time: connectivity-agnostic (one ordering, hidden degrees per mask) and
    # order-agnostic (an ordering per mask).
    "1x2000-1mask-direct-alpha50-12min": dict(
        hidden_layer_sizes=(2000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x2000-4masks-direct-alpha50-12min": dict(
        hidden_layer_sizes=(2000,), n_masks=4, direct_connections=True, alpha=50.0
    ),
    "1x2000-4masks-oa-direct-alpha50-12min": dict(
        hidden_layer_sizes=(2000,),
        n_masks=4,
        order_agnostic=True,
        direct_connections=True,
        alpha=50.0,
    ),
    "1x2000-4masks-raster-direct-alpha50-12min": dict(
        hidden_layer_sizes=(2000,),
        n_masks=4,
        ordering=raster_orderings(),
        direct_connections=True,
        alpha=50.0,
    ),
    # The same comparison for a small layer, where a single mask converges well
    # inside the budget and the ensemble's masks have time to converge too.
    "1x500-1mask-direct-alpha50-12min": dict(
        hidden_layer_sizes=(500,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x500-4masks-raster-direct-alpha50-12min": dict(
        hidden_layer_sizes=(500,),
        n_masks=4,
        ordering=raster_orderings(),
        direct_connections=True,
        alpha=50.0,
    ),
    "1x6000-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(6000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x8000-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(8000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    # Two hidden layers with direct connections.
    "2x2000-1mask-direct-alpha50": dict(
        hidden_layer_sizes=(2000, 2000), n_masks=1, direct_connections=True, alpha=50.0
    ),
    # Dropout of hidden units on top of L2, for wide layers that overfit.
    "1x2000-1mask-direct-alpha50-dropout25": dict(
        hidden_layer_sizes=(2000,),
        n_masks=1,
        direct_connections=True,
        alpha=50.0,
        dropout=0.25,
    ),
    # Mixtures of independently trained single-mask models, one raster scan each
    # (no shared weights): trained one after the other within the budget.
    "4x1x2000-raster-direct-alpha50": dict(members=RASTER_MEMBERS),
    # The same members, each with a cosine schedule over its share of the budget.
    "4x1x2000-raster-direct-alpha50-cosine": dict(members=RASTER_MEMBERS),
    # The same models with each scan given as permuted columns and a natural
    # ordering (see Scanned): faster epochs.
    "8x1x2000-scansperm-direct-alpha50-cosine": dict(
        members=[
            {**RASTER_MEMBERS[0], "columns": scan, "ordering": "natural"}
            for scan in square_scans()
        ]
    ),
    "4x1x2000-rasterperm-direct-alpha50-cosine": dict(
        members=[
            {**member, "columns": member["ordering"], "ordering": "natural"}
            for member in RASTER_MEMBERS
        ]
    ),
    # Wider members: with subnormal floats gone (see skmade._nn.zero_vanishing) a
    # 784-2000-784 member trains up to 75 epochs in 7.5 minutes and overfits at
    # the high rates; a 4000-unit member gets 24-29 on a 2-core CPU and learns more
    # per minute (the best mixture measured).
    "4x1x4000-rasterperm-direct-alpha50-cosine": dict(
        members=[
            {
                **member,
                "hidden_layer_sizes": (4000,),
                "columns": member["ordering"],
                "ordering": "natural",
            }
            for member in RASTER_MEMBERS
        ]
    ),
    # The same four members trained together as one mixture, by EM (see train_em):
    # each epoch weights a member's rows by its responsibility for them. Measured
    # worse (docs/mnist_findings.md): validation 91.45 after 15 of the 30 minutes,
    # behind a single member alone at that point; the members specialize early and
    # each learns from about a quarter of the rows.
    "4x1x2000-rasterperm-direct-alpha50-em": dict(
        members=[
            {**member, "columns": member["ordering"], "ordering": "natural"}
            for member in RASTER_MEMBERS
        ],
        em=True,
    ),
    # The whole budget spent on a cosine decay of the rate (see SCHEDULES).
    "1x6000-1mask-direct-alpha50-cosine": dict(
        hidden_layer_sizes=(6000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x2000-1mask-direct-alpha50-cosine": dict(
        hidden_layer_sizes=(2000,), n_masks=1, direct_connections=True, alpha=50.0
    ),
    "1x2000-4masks-raster-direct-alpha50-cosine": dict(
        hidden_layer_sizes=(2000,),
        n_masks=4,
        ordering=raster_orderings(),
        direct_connections=True,
        alpha=50.0,
    ),
}
# Configurations that run under their own wall-time budget (minutes), whatever
# --minutes says: the pairs compared at equal time.
BUDGETS = {name: 12.0 for name in CONFIGS if name.endswith("-12min")}
# The rate schedule: "plateau" halves the rate when validation stalls for `patience`
# epochs and stops once it falls below 1e-4 (often well inside the budget); "cosine"
# sets the rate of each epoch from the elapsed share of the budget,
# lr0 * (1 + cos(pi * elapsed / budget)) / 2, and trains until the budget ends. Both
# keep the weights of the best validation epoch. The members of a mixture each run the
# schedule within their own share of the budget.
SCHEDULES = {
    name: "cosine" if name.endswith(("-cosine", "-em")) else "plateau"
    for name in CONFIGS
}
# EM tempers the responsibilities, (w_k p_k(x)) ** beta, with beta rising from 0
# (every member on every row, as if trained alone) to 1 over this share of the budget.
EM_ANNEALING = 0.3
# The runner drives the rate and the stopping itself (on the official validation
# rows), through partial_fit; direct connections only where a configuration says so.
TRAINING = dict(
    batch_size=100,
    learning_rate_init=1e-3,
    learning_rate="constant",
    alpha=0.0,
    direct_connections=False,
    random_state=0,
)


def samples_path(name: str, ordering: str) -> Path:
    """Where a configuration's 100 samples are saved."""
    suffix = "" if ordering == "natural" else f"-{ordering}"
    return _common.RESULTS / f"mnist_samples_{name}{suffix}.npy"


def ends_late(curve: list[dict], elapsed: float, budget: float) -> bool:
    """Whether one more epoch (as long as the longest so far, validation included)
    would end past the budget: training stops inside it, not an epoch after."""
    times = np.diff([0.0] + [point["seconds"] for point in curve])
    return elapsed + times.max() > budget


def train_member(
    est: MADEDensity,
    train: np.ndarray,
    valid: np.ndarray,
    name: str,
    budget: float,
    schedule: str,
    patience: int,
) -> dict:
    """Train ``est`` by ``partial_fit`` epochs within ``budget`` seconds under the
    rate ``schedule``; its weights end at the best validation epoch."""
    start = time.perf_counter()
    best, best_state, best_epoch, since_best, curve = np.inf, None, 0, 0, []
    # Scoring 32 masks costs 32 passes: validate large ensembles every few epochs.
    every = 1 if est.n_masks <= 8 else 4
    rate = est.learning_rate_init
    stopped_by = "plateau"
    while True:
        elapsed = time.perf_counter() - start
        if curve and ends_late(curve, elapsed, budget):  # one validated epoch at least
            stopped_by = "budget"
            break
        if schedule == "cosine":
            share = elapsed / budget
            est.set_params(learning_rate_init=rate * (1 + np.cos(np.pi * share)) / 2)
        est.partial_fit(train)
        if est.n_iter_ % every:
            continue
        valid_nll = -est.score(valid)
        curve.append(
            {
                "epoch": est.n_iter_,
                "seconds": time.perf_counter() - start,
                "train_loss": est.loss_curve_[-1],
                "valid_nll": valid_nll,
                "learning_rate": est.learning_rate_init,
            }
        )
        message = f"{name} epoch {est.n_iter_}: valid NLL {valid_nll:.3f}"
        print(message, file=sys.stderr, flush=True)  # progress; stdout is the result
        if valid_nll < best - 1e-3:
            best, since_best = valid_nll, 0
            best_state = copy.deepcopy(est.module_.state_dict())
            best_epoch = est.n_iter_
        else:
            since_best += every
            plateau = schedule == "plateau" and since_best >= patience
            if plateau:  # halve the rate, or stop
                if est.learning_rate_init < 1e-4:
                    break
                est.set_params(learning_rate_init=est.learning_rate_init / 2)
                est.module_.load_state_dict(best_state)
                since_best = 0
    est.module_.load_state_dict(best_state)
    return {
        "valid_nll": best,
        "best_epoch": best_epoch,
        "seconds": time.perf_counter() - start,
        "stopped_by": stopped_by,
        "curve": curve,
    }


def responsibilities(
    scores: np.ndarray, log_weights: np.ndarray, beta: float = 1.0
) -> np.ndarray:
    """Each member's share of each row, ``(w_k p_k(x)) ** beta`` normalized over the
    members; ``scores`` are the members' log-densities, one row per member."""
    joint = beta * (scores + log_weights[:, None])
    return np.exp(joint - np.logaddexp.reduce(joint, axis=0))


def stacked_scores(members: list[MADEDensity], rows: list[np.ndarray]) -> np.ndarray:
    """Each member's log-densities of its own view of the rows, one row per member."""
    return np.stack([m.score_samples(x) for m, x in zip(members, rows, strict=True)])


def train_em(
    members: list[MADEDensity],
    columns: list[np.ndarray],
    train: np.ndarray,
    valid: np.ndarray,
    name: str,
    budget: float,
) -> tuple[list[dict], np.ndarray]:
    """Train ``members`` (each on its own permutation of the columns) together as a
    mixture by EM within ``budget`` seconds: every round is one epoch of each member
    on all rows weighted by its responsibilities (``sample_weight``; the L2 penalty
    then counts the member's share of the rows, as in a MAP M-step), then new
    responsibilities and mixture weights. The rate follows a cosine over the budget;
    the members end at the round of best validation likelihood of the mixture.
    Returns a run record per member and the mixture weights."""
    start = time.perf_counter()
    n_members = len(members)
    seen_train = [train[:, c] for c in columns]
    seen_valid = [valid[:, c] for c in columns]
    log_weights = np.full(n_members, -np.log(n_members))
    responsibility = np.full((n_members, len(train)), 1.0 / n_members)
    rate = members[0].learning_rate_init
    best, best_states, best_weights, best_round, curve = np.inf, None, None, 0, []
    round_ = 0
    while True:
        elapsed = time.perf_counter() - start
        if curve and ends_late(curve, elapsed, budget):
            break
        share = elapsed / budget
        for est, x, r in zip(members, seen_train, responsibility, strict=True):
            est.set_params(learning_rate_init=rate * (1 + np.cos(np.pi * share)) / 2)
            est.partial_fit(x, sample_weight=r)
        round_ += 1
        # E-step, tempered early on so that no member claims rows before it is fit.
        beta = min(1.0, share / EM_ANNEALING)
        scores = stacked_scores(members, seen_train)
        responsibility = responsibilities(scores, log_weights, beta)
        if beta == 1.0:  # the weights too, once the responsibilities are the true ones
            log_weights = np.log(responsibility.mean(axis=1))
        valid_scores = stacked_scores(members, seen_valid)
        valid_nll = -float(
            np.logaddexp.reduce(valid_scores + log_weights[:, None], axis=0).mean()
        )
        curve.append(
            {
                "epoch": round_,
                "seconds": time.perf_counter() - start,
                "train_loss": float(np.mean([m.loss_curve_[-1] for m in members])),
                "valid_nll": valid_nll,
                "learning_rate": members[0].learning_rate_init,
                "beta": beta,
                "weights": np.exp(log_weights).tolist(),
            }
        )
        shares = " ".join(f"{w:.2f}" for w in np.exp(log_weights))
        message = f"{name} round {round_}: valid NLL {valid_nll:.3f} (w {shares})"
        print(message, file=sys.stderr, flush=True)
        if valid_nll < best - 1e-3:
            best, best_round = valid_nll, round_
            best_states = [copy.deepcopy(m.module_.state_dict()) for m in members]
            best_weights = np.exp(log_weights)
    for est, state in zip(members, best_states, strict=True):
        est.module_.load_state_dict(state)
    seconds = time.perf_counter() - start
    runs = [
        {
            "valid_nll": float(-est.score(x)),
            "best_epoch": best_round,
            "seconds": seconds,
            "stopped_by": "budget",
            "curve": curve if i == 0 else [],
        }
        for i, (est, x) in enumerate(zip(members, seen_valid, strict=True))
    ]
    return runs, best_weights


class Scanned:
    """A natural-order model of the columns taken in a scan's order.

    The same model as ``MADEDensity(ordering=scan)``, but the network's inputs and
    outputs are then in degree order, so its masked layers run over degree blocks
    without copying the weights into that layout at every step (a 784-2000-784
    member trains an epoch about 1.2 times faster). Rows are permuted on the way
    in and samples on the way out.
    """

    def __init__(self, estimator: MADEDensity, columns: np.ndarray) -> None:
        self.estimator = estimator
        self.columns = np.asarray(columns)
        self.inverse = np.argsort(self.columns)

    def __getattr__(self, name):
        return getattr(self.estimator, name)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.score_samples(X[:, self.columns])

    def score(self, X: np.ndarray) -> float:
        return self.estimator.score(X[:, self.columns])

    def sample(self, n_samples: int, random_state=None) -> np.ndarray:
        draws = self.estimator.sample(n_samples, random_state=random_state)
        return draws[:, self.inverse]


def mixture_nll(
    members: list[MADEDensity], X: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Mean negative log-likelihood of the mixture of ``members`` (uniform unless
    ``weights`` are given)."""
    scores = np.stack([m.score_samples(X) for m in members])
    if weights is None:
        weights = np.full(len(members), 1.0 / len(members))
    return float(-np.logaddexp.reduce(scores + np.log(weights)[:, None], 0).mean())


def validated_weights(
    members: list[MADEDensity], X_val: np.ndarray, n_iter: int = 200
) -> np.ndarray:
    """Mixture weights of maximum likelihood on the validation rows (EM over the
    weights alone, the members fixed), from uniform."""
    scores = np.stack([m.score_samples(X_val) for m in members])
    weights = np.full(len(members), 1.0 / len(members))
    for _ in range(n_iter):
        weights = responsibilities(scores, np.log(weights)).mean(axis=1)
    return weights


def mixture_sample(
    members: list[MADEDensity], n: int, seed: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """``n`` draws from the mixture (uniform unless ``weights`` are given): a member
    per draw, then its sample."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(members), size=n, p=weights)
    counts = np.bincount(picks, minlength=len(members))
    draws = [
        m.sample(int(c), random_state=seed + i)
        for i, (m, c) in enumerate(zip(members, counts, strict=True))
        if c
    ]
    return rng.permutation(np.concatenate(draws))


def member_spec(member: dict, ordering: str) -> tuple[dict, np.ndarray | None]:
    """A member's estimator parameters, and its scan when the scan is given as
    permuted columns (the estimator's ordering is then natural)."""
    member = dict(member)
    columns = member.pop("columns", None)
    params = {**TRAINING, "ordering": ordering, **member}
    if columns is not None:
        params["ordering"] = "natural"
    return params, columns


def train_one(
    name: str, data: Path, minutes: float, patience: int, ordering: str
) -> dict:
    """Train one configuration with validation-driven stopping and LR halving.

    An ensemble configuration trains its members one after the other, each under
    its share of what is left of the budget, and is scored as their uniform
    mixture (log-mean-exp of the members' densities); with ``em`` the members train
    together (see :func:`train_em`) and the mixture keeps EM's weights.
    """
    train, valid, test = load_mnist(data)
    config = CONFIGS[name]
    members = config["members"] if "members" in config else [config]
    budget = BUDGETS.get(name, minutes) * 60
    schedule = SCHEDULES[name]
    start = time.perf_counter()
    specs = [member_spec(member, ordering) for member in members]
    if config.get("em"):  # the members trained together
        estimators = [MADEDensity(**p, device="auto") for p, _ in specs]
        scans = [c for _, c in specs]
        runs, weights = train_em(estimators, scans, train, valid, name, budget)
        fitted = [Scanned(est, c) for est, c in zip(estimators, scans, strict=True)]
    else:  # one after the other
        fitted, runs, weights = [], [], None
        for i, (params, columns) in enumerate(specs):
            est = MADEDensity(**params, device="auto")
            share = (budget - (time.perf_counter() - start)) / (len(members) - i)
            label = name if len(members) == 1 else f"{name} [{i}]"
            seen = (
                (train, valid)
                if columns is None
                else (train[:, columns], valid[:, columns])
            )
            runs.append(train_member(est, *seen, label, share, schedule, patience))
            fitted.append(est if columns is None else Scanned(est, columns))
    params, columns = specs[-1]
    if columns is not None:
        params = {**params, "ordering": columns}
    seconds = time.perf_counter() - start
    if not isinstance(params["ordering"], str):  # the configuration's own orderings
        ordering = next((o for o in ("raster", "scans") if o in name), "given")
    n_masks = params["n_masks"]
    ensemble = len(fitted) > 1
    result = {
        "name": name,
        "hidden_layer_sizes": list(params["hidden_layer_sizes"]),
        "n_masks": n_masks,
        "n_eval_masks": n_masks,
        "n_members": len(fitted),
        "order_agnostic": params.get("order_agnostic", False),
        "ordering": ordering,
        "direct_connections": params["direct_connections"],
        "test_nll": mixture_nll(fitted, test, weights),
        "valid_nll": (
            mixture_nll(fitted, valid, weights) if ensemble else runs[0]["valid_nll"]
        ),
        "epochs": sum(est.n_iter_ for est in fitted),
        "best_epoch": runs[0]["best_epoch"],
        "train_seconds": seconds,
        "time_budget_seconds": budget,
        "stopped_by": (
            "plateau" if all(r["stopped_by"] == "plateau" for r in runs) else "budget"
        ),
        "schedule": schedule,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(next(fitted[0].module_.parameters()).device),
        "torch_threads": torch.get_num_threads(),
        "training": {
            **{key: params[key] for key in TRAINING},
            "dropout": params.get("dropout", 0.0),
            "mixed_precision": params.get("mixed_precision", False),
        },
        "curve": [
            {**point, "member": i} if ensemble else point
            for i, run in enumerate(runs)
            for point in run["curve"]
        ],
    }
    if ensemble:  # every member alone, for comparison with the mixture
        result["members"] = [
            {
                "test_nll": -est.score(test),
                "valid_nll": run["valid_nll"],
                "epochs": est.n_iter_,
                "best_epoch": run["best_epoch"],
                "seconds": run["seconds"],
            }
            for est, run in zip(fitted, runs, strict=True)
        ]
        result["test_nll_first_mask"] = result["members"][0]["test_nll"]
        if weights is None:  # weights chosen on the validation rows, after the fact
            tuned = validated_weights(fitted, valid)
            result["validated_weights"] = tuned.tolist()
            result["test_nll_validated_weights"] = mixture_nll(fitted, test, tuned)
        else:  # EM's own weights, against uniform ones
            result["weights"] = weights.tolist()
            result["test_nll_uniform_weights"] = mixture_nll(fitted, test)
        samples = mixture_sample(fitted, 100, seed=0, weights=weights)
    else:
        est = fitted[0]
        if n_masks > 1:  # the single first mask, for comparison with the ensemble
            est.set_params(n_eval_masks=1)
            result["test_nll_first_mask"] = -est.score(test)
        samples = est.set_params(n_eval_masks=None).sample(100, random_state=0)
    np.save(samples_path(name, ordering), samples.astype(np.uint8))
    return result


def write_table(results: list[dict]) -> None:
    lines = [
        "# Binarized MNIST: test negative log-likelihood (nats, lower is better)",
        "",
        "Fixed binarization (Larochelle & Murray), 50k train / 10k valid / 10k test. "
        "Validation data drives early stopping and the learning-rate schedule only. "
        "Ensembles are normalized mixtures (log-mean-exp over masks). Produced by "
        "`python -m benchmarks.mnist`; raw numbers and learning curves in "
        "`benchmarks/results/mnist.json`.",
        "",
        "| configuration | ordering | schedule | paper (Germain et al. 2015) | "
        "skmade test NLL | first mask (or member) alone | valid NLL | epochs | "
        "train time | stopped by |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        paper = PAPER.get(r["name"])
        start = f"| {r['name']} | {r['ordering']} | {r.get('schedule', 'plateau')} | "
        lines.append(start + (f"{paper[1]:.2f} | " if paper else "- | "))
        first = r.get("test_nll_first_mask")
        tuned = r.get("test_nll_validated_weights")
        uniform = r.get("test_nll_uniform_weights")
        lines[-1] += f"{r['test_nll']:.2f}"
        if tuned:
            lines[-1] += f" ({tuned:.2f} with weights fitted on validation)"
        if uniform:
            lines[-1] += f" ({uniform:.2f} with uniform weights)"
        lines[-1] += " | "
        lines[-1] += f"{first:.2f} | " if first else "- | "
        lines[-1] += (
            f"{r['valid_nll']:.2f} | {r['epochs']} | "
            f"{r['train_seconds'] / 60:.1f} min | {r['stopped_by']} |"
        )
    write_markdown(TABLE, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--configs", nargs="*", default=list(PAPER), choices=CONFIGS)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--ordering", choices=["natural", "random"], default="random")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.one:  # child process: one configuration, JSON on the last line
        result = train_one(
            args.one, args.data, args.minutes, args.patience, args.ordering
        )
        print(json.dumps(result))
        return

    load_mnist(args.data, ())  # fail early with a clear message
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for r in results:  # rows from before the ordering was recorded
        r.setdefault("ordering", "natural")
    for name in args.configs:
        command = [sys.executable, "-m", "benchmarks.mnist", "--one", name]
        command += ["--data", str(args.data), "--minutes", str(args.minutes)]
        command += ["--patience", str(args.patience), "--ordering", args.ordering]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        result = json.loads(output.stdout.strip().splitlines()[-1])
        print(
            f"{name}: test NLL {result['test_nll']:.2f} "
            f"({result['epochs']} epochs, {result['train_seconds'] / 60:.1f} min)"
        )
        same = (name, result["ordering"])
        results = [r for r in results if (r["name"], r["ordering"]) != same]
        results.append(result)
        write_json(RESULTS, results)
        write_table(results)


if __name__ == "__main__":
    main()
