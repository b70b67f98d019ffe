"""What every benchmark shares: data locations and loaders, the run's environment,
and the writers of the JSON and markdown reports in ``benchmarks/results``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import skmade

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# The shared data folder beside the repository (see its README); never copied in.
DATA = HERE.parent.parent / "shared" / "data"
MNIST = DATA / "binarized_mnist.npz"
ADBENCH = DATA / "adbench"
ADBENCH_DEV = DATA / "adbench_dev"
DEBD = DATA / "debd"
UCI = DATA / "uci_regression"
DOCS = HERE.parent / "docs"


def load_mnist(path: Path = MNIST, splits=("train", "valid", "test")):
    """The binarized MNIST splits as float32 arrays, in the order asked for.

    Exits with a message that says how to point at the file when it is missing.
    """
    path = Path(path)
    if not path.exists():
        raise SystemExit(
            f"Binarized MNIST not found at {path}. Pass --data PATH to the "
            "binarized_mnist.npz file (keys train, valid, test)."
        )
    data = np.load(path, allow_pickle=False)
    return tuple(data[split].astype(np.float32) for split in splits)


def load_npz(path: Path) -> dict | None:
    """The arrays of an ``.npz`` file of the shared data, or None when absent."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def environment(**extra) -> dict:
    """Versions and thread count of this run, first in every results file."""
    return {
        "skmade": skmade.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **extra,
    }


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """A GitHub markdown table: the header, its rule and one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def write_json(path: Path, payload) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_markdown(path: Path, lines: list[str], echo: bool = False) -> None:
    """Write the report's lines (and print them with ``echo``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    if echo:
        print("\n".join(lines))
