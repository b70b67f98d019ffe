"""Scale: fit and score cost as rows grow; in-memory against lazy dask scoring.

Synthetic tables (binary: 50 columns driven by 5 latent bits; continuous: 20
correlated Gaussian columns), generated block by block from per-block seeds so that
no run needs the whole table unless it asks for it in memory.

- **Fit**: time and peak memory (resident set, each fit in its own process) of
  ``MADEDensity(max_iter=2, early_stopping=False)`` as the rows double.
- **Streamed fit**: the same fit on a dask array generated block by block (each in
  its own process): time and peak memory from 10^5 to 10^7 rows.
- **Score**: rows per second of ``score_samples`` on a numpy array in memory, against
  the same rows as a dask array (lazy result, computed with dask's threaded scheduler
  and with its synchronous one), and a dask array generated block by block (never in
  memory as a whole). Ratios are taken in the same process.

Run alone (another process on a 2-core machine distorts every number)::

    python -m benchmarks.scale [--fit-rows 100000 ...] [--stream-rows ...]
        [--score-rows ...]

An option given without sizes (``--fit-rows`` alone) keeps that section's rows from
the previous run; the fit sections given with sizes replace the previous rows of those
sizes only (``--fit-rows 10000000`` adds in-memory fits of 10^7 rows to the table).

Needs the ``dask`` extra. Writes ``benchmarks/results/scale.json`` and
``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skmade import MADEDensity

from ._common import RESULTS, environment, markdown_table, write_json, write_markdown

BLOCK = 100_000
KINDS = ("binary", "continuous")


def make_block(kind: str, rows: int, seed: int) -> np.ndarray:
    """One block of a synthetic table; the same ``seed`` gives the same rows."""
    rng = np.random.RandomState(seed)
    if kind == "binary":
        latent = rng.rand(rows, 5) < 0.5
        logits = np.repeat(latent, 10, axis=1) * 3.0 - 1.5
        return (rng.rand(rows, 50) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    mixing = np.random.RandomState(12345).randn(20, 20) / np.sqrt(20)
    base = rng.randn(rows, 20)
    return (base @ mixing + 0.3 * np.tanh(base[:, :1]) * base).astype(np.float32)


def make_table(kind: str, rows: int) -> np.ndarray:
    return np.concatenate(
        [
            make_block(kind, min(BLOCK, rows - start), start // BLOCK)
            for start in range(0, rows, BLOCK)
        ]
    )


def lazy_table(kind: str, rows: int):
    """The same table as a dask array built from its blocks' seeds (not in memory)."""
    import dask
    import dask.array as da

    width = 50 if kind == "binary" else 20
    blocks = [
        da.from_delayed(
            dask.delayed(make_block)(kind, min(BLOCK, rows - start), start // BLOCK),
            shape=(min(BLOCK, rows - start), width),
            dtype=np.float32,
        )
        for start in range(0, rows, BLOCK)
    ]
    return da.concatenate(blocks)


def estimator() -> MADEDensity:
    return MADEDensity(
        hidden_layer_sizes=(256,), max_iter=2, early_stopping=False, random_state=0
    )


def _measured_fit(kind: str, rows: int, X, n_columns: int) -> dict:
    """Fit ``estimator()`` on X: the fit's time and the process's peak memory."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    est = estimator().fit(X)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "kind": kind,
        "rows": rows,
        "fit_seconds": seconds,
        "data_mb": rows * n_columns * 4 / 2**20,  # float32
        "peak_mb": peak,
        "peak_before_fit_mb": before,
        "epochs": est.n_iter_,
    }


def fit_one(kind: str, rows: int) -> dict:
    """Child process: one fit on the table in memory."""
    X = make_table(kind, rows)
    return _measured_fit(kind, rows, X, X.shape[1])


def stream_one(kind: str, rows: int) -> dict:
    """Child process: one streamed fit on a generated dask array (never in memory)."""
    import dask

    X = lazy_table(kind, rows)
    with dask.config.set(scheduler="synchronous"):
        generate = time.perf_counter()
        X.sum().compute()  # making the blocks alone, once
        generate = time.perf_counter() - generate
        result = _measured_fit(kind, rows, X, X.shape[1])
    # A survey pass and one pass per epoch, each making every block again.
    result["generation_seconds"] = generate * (1 + result["epochs"])
    return result


def score_rates(kind: str, rows: int, repeats: int) -> dict:
    import dask
    import dask.array as da

    model = estimator().fit(make_table(kind, min(rows, BLOCK)))
    X = make_table(kind, rows)
    lazy = da.from_array(X, chunks=(BLOCK, X.shape[1]))
    generated = lazy_table(kind, rows)

    model.score_samples(X[:1000])  # warm-up (allocations, plans)

    def best_seconds(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    memory = best_seconds(lambda: model.score_samples(X))
    threads = best_seconds(
        lambda: model.score_samples(lazy).compute(scheduler="threads")
    )
    with dask.config.set(scheduler="synchronous"):
        synchronous = best_seconds(lambda: model.score_samples(lazy).compute())
        # Generating the blocks is part of this one: compare with its own baseline.
        generate = best_seconds(lambda: generated.sum().compute())
        streamed = best_seconds(lambda: model.score_samples(generated).compute())
    return {
        "kind": kind,
        "rows": rows,
        "memory_rows_per_s": rows / memory,
        "dask_threads_rows_per_s": rows / threads,
        "dask_synchronous_rows_per_s": rows / synchronous,
        "generated_rows_per_s": rows / streamed,
        "generation_only_rows_per_s": rows / generate,
        "ratio_threads": memory / threads,
        "ratio_synchronous": memory / synchronous,
    }


def fit_table(runs: list[dict], generation: bool = False) -> list[str]:
    """Markdown table of fits: time and peak memory (and block-making time)."""
    header = ["table", "rows", "data", "fit time"]
    header += ["making blocks"] * generation + ["peak before fit", "peak after fit"]
    rows = []
    for r in runs:
        made = [f"{r['generation_seconds']:.1f} s"] if generation else []
        rows.append(
            [
                r["kind"],
                f"{r['rows']:,}",
                f"{r['data_mb']:.0f} MB",
                f"{r['fit_seconds']:.1f} s",
                *made,
                f"{r['peak_before_fit_mb']:.0f} MB",
                f"{r['peak_mb']:.0f} MB",
            ]
        )
    return markdown_table(header, rows)


def report(results: dict) -> list[str]:
    lines = [
        "# Scale: fit and score cost as rows grow (2-core CPU)",
        "",
        f"torch {results['torch']}, {results['threads']} threads. "
        "`MADEDensity(hidden_layer_sizes=(256,), max_iter=2, early_stopping=False)` "
        "on synthetic tables (binary: 50 columns; continuous: 20). Produced by "
        "`python -m benchmarks.scale`.",
        "",
        "## Fit in memory: time and peak memory as rows grow (each fit in its own "
        "process)",
        "",
    ]
    lines += fit_table(results["fit"])
    lines += [
        "",
        "Peak memory is the process's resident high-water mark: where it does not "
        "move, making the table (float64 intermediates) peaked higher than the fit.",
    ]
    lines += [
        "",
        "## Streamed fit: a dask array made block by block, never held",
        "",
        "The same estimator fitted on a dask array of 100,000-row blocks generated on "
        "demand (synchronous scheduler): one pass to survey the blocks, one per "
        "epoch. *making blocks* is the time spent generating them over all passes "
        "(measured apart and included in the fit time).",
        "",
    ]
    lines += fit_table(results.get("stream", []), generation=True)
    for kind in KINDS:
        runs = sorted(
            (r for r in results.get("stream", []) if r["kind"] == kind),
            key=lambda r: r["rows"],
        )
        if len(runs) > 1:
            first, last = runs[0], runs[-1]
            lines += [
                "",
                f"{kind}: {last['rows'] / first['rows']:,.0f}x the rows, peak memory "
                f"{last['peak_mb'] / first['peak_mb']:.2f}x ({first['peak_mb']:.0f} "
                f"to {last['peak_mb']:.0f} MB); the validation and start samples "
                "reach their caps (2**23 values each) as rows grow, then stop.",
            ]
    lines += [
        "",
        "## Scoring: in memory against lazy dask arrays (one process, best of repeats)",
        "",
        "*dask (threads)* and *dask (sync)*: the in-memory rows as a dask array "
        "(100,000-row chunks), scored lazily and computed with dask's threaded and "
        "synchronous schedulers. *generated*: a dask array whose blocks are made on "
        "demand and never held together (throughput includes making them; making "
        "them alone is the last column).",
        "",
    ]
    rows = []
    for r in results["score"]:
        rows.append(
            [
                r["kind"],
                f"{r['rows']:,}",
                f"{r['memory_rows_per_s']:,.0f}",
                f"{r['dask_threads_rows_per_s']:,.0f} ({r['ratio_threads']:.2f}x)",
                f"{r['dask_synchronous_rows_per_s']:,.0f} "
                f"({r['ratio_synchronous']:.2f}x)",
                f"{r['generated_rows_per_s']:,.0f}",
                f"{r['generation_only_rows_per_s']:,.0f}",
            ]
        )
    lines += markdown_table(
        [
            "table",
            "rows",
            "in memory (rows/s)",
            "dask (threads)",
            "dask (sync)",
            "generated",
            "generation only",
        ],
        rows,
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fit-rows",
        type=int,
        nargs="*",
        default=[100_000, 200_000, 400_000, 800_000, 1_600_000],
    )
    parser.add_argument(
        "--score-rows", type=int, nargs="*", default=[100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument(
        "--stream-rows",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000, 10_000_000],
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--one-stream", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.one:  # child process: one fit, JSON on the last line
        print(json.dumps(fit_one(args.one[0], int(args.one[1]))))
        return
    if args.one_stream:
        print(json.dumps(stream_one(args.one_stream[0], int(args.one_stream[1]))))
        return

    results = environment(fit=[], stream=[], score=[])
    # A section asked for with no sizes keeps the previous run's rows.
    previous = RESULTS / "scale.json"
    previous = json.loads(previous.read_text()) if previous.exists() else {}
    for key, sizes in (
        ("fit", args.fit_rows),
        ("stream", args.stream_rows),
        ("score", args.score_rows),
    ):
        if not sizes:
            results[key] = previous.get(key, [])
            results.setdefault("kept_from_previous_run", []).append(key)
        elif key != "score":  # fits of other sizes are kept
            results[key] = [r for r in previous.get(key, []) if r["rows"] not in sizes]
    for key, flag, sizes in (
        ("fit", "--one", args.fit_rows),
        ("stream", "--one-stream", args.stream_rows),
    ):
        for kind in KINDS:
            for rows in sizes:
                command = [sys.executable, "-m", "benchmarks.scale", flag, kind]
                output = subprocess.run(
                    [*command, str(rows)],
                    check=True,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                last = output.stdout.strip().splitlines()[-1]
                results[key].append(json.loads(last))
                print(last, flush=True)
    for kind in KINDS:
        for rows in args.score_rows:
            results["score"].append(score_rates(kind, rows, args.repeats))
            print(json.dumps(results["score"][-1]), flush=True)
    for key in ("fit", "stream"):
        results[key].sort(key=lambda r: (r["kind"], r["rows"]))
    write_json(RESULTS / "scale.json", results)
    write_markdown(RESULTS / "scale.md", report(results), echo=True)


if __name__ == "__main__":
    main()
