"""Training rows read block by block: fits on dask arrays larger than memory.

A fit on a dask array makes one pass over its row blocks to check them and gather
the column state (:class:`~skmade._summary.ColumnSummary`), a uniform sample of
validation rows and a uniform sample of training rows for the data-dependent start
of the network, both capped at ``SAMPLE_VALUES`` values. Each epoch then reads the
blocks again in a random order and trains on their rows, shuffled within a block
and carried over into the next block's batches, so that memory stays at a block, the
two samples and the model, whatever the number of rows.

The training loop reads its batches from :class:`InMemoryRows` or
:class:`StreamedRows`, which share one interface.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

# Validation rows and start rows of a streamed fit: at most this many values each
# (64 MiB as float64), chosen uniformly over all rows.
SAMPLE_VALUES = 2**23


def as_float32_tensor(A: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 tensor sharing memory with A where possible.

    Read-only arrays (memmaps, some pandas frames) are copied: torch cannot wrap them.
    """
    A = np.asarray(A, dtype=np.float32)
    if not A.flags.writeable:
        A = A.copy()
    return torch.as_tensor(A, device=device)


# A table goes to an accelerator whole only if it takes at most this share of the
# device's free memory; otherwise it stays in host memory and moves batch by batch.
DEVICE_SHARE = 0.5


def fits_on(device: torch.device, n_bytes: int) -> bool:
    """Whether ``n_bytes`` of training data can live on ``device`` beside the model."""
    if device.type != "cuda":
        return True  # the CPU holds it already; other backends report no free memory
    free, _ = torch.cuda.mem_get_info(device)
    return n_bytes <= DEVICE_SHARE * free


class InMemoryRows:
    """Training rows held as one tensor: on the device, or in host memory (pinned)
    and moved a batch at a time when the table would crowd the device."""

    def __init__(self, Z: np.ndarray, weights: np.ndarray, device: torch.device):
        self.n_rows = Z.shape[0]
        self.device = device
        whole = fits_on(device, Z.shape[0] * (Z.shape[1] + 1) * 4)
        home = device if whole else torch.device("cpu")
        self._x = as_float32_tensor(Z, home)
        # Weights rescaled to mean 1: each mini-batch mean is then an unbiased
        # estimate of the weighted mean log-likelihood.
        w = weights * (self.n_rows / weights.sum())
        self._w = torch.as_tensor(w, device=home).to(torch.float32)
        if not whole and torch.cuda.is_available():  # faster copies to the GPU
            self._x, self._w = self._x.pin_memory(), self._w.pin_memory()

    def _on_device(self, x, w):
        if x.device == self.device:
            return x, w
        return x.to(self.device, non_blocking=True), w.to(self.device)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator:
        """``(x, w)`` mini-batches of one epoch, in a random order."""
        order = torch.randperm(self.n_rows, generator=generator).to(self._x.device)
        for start in range(0, self.n_rows, batch_size):
            rows = order[start : start + batch_size]
            yield self._on_device(self._x[rows], self._w[rows])

    def in_order(self, size: int) -> Iterator:
        """``(x, w)`` blocks of ``size`` rows in their order (the start loss)."""
        for start in range(0, self.n_rows, size):
            yield self._on_device(
                self._x[start : start + size], self._w[start : start + size]
            )


def _allocate(counts: np.ndarray, k: int, rng) -> np.ndarray:
    """How many of ``k`` rows drawn uniformly without replacement fall in each
    block of ``counts`` rows (a chain of hypergeometric draws)."""
    taken = np.zeros(counts.size, dtype=np.int64)
    if k == 0:
        return taken
    rest = int(counts.sum())
    for i, n in enumerate(counts):
        rest -= int(n)
        if k == 0:
            break
        taken[i] = rng.hypergeometric(int(n), rest, k) if rest else k
        k -= taken[i]
    return taken


def _choose(n: int, k: int, seed: int) -> np.ndarray:
    """A boolean mask of ``k`` of ``n`` rows, the same for the same seed."""
    mask = np.full(n, k == n)
    if 0 < k < n:
        mask[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return mask


class RowStream:
    """The row blocks of a 2-D dask array and their weights, read one at a time.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        Blocks of rows; several column blocks are joined.
    sample_weight : None, array-like or dask array of shape (n_samples,)
        Row weights (read with their rows).
    check : callable
        ``check(block)``: the validated float block, raising a clear error.
    name : str
        The estimator's name, for errors.
    """

    def __init__(self, X, sample_weight, check: Callable, name: str):
        if getattr(X, "ndim", None) != 2 or not hasattr(X, "blocks"):
            raise TypeError(
                f"{name} fits on 2-D dask arrays and dask DataFrames; got "
                f"{type(X).__name__}. Compute it first."
            )
        if any(math.isnan(c) for c in X.chunks[0]):
            raise ValueError(
                f"{name} needs the number of rows of every block of X to fit on it "
                "block by block; call X.compute_chunk_sizes() first."
            )
        if len(X.chunks[1]) > 1:  # every block must hold whole rows
            X = X.rechunk({1: -1})
        self.X, self.check, self.name = X, check, name
        self.counts = np.asarray(X.chunks[0], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])
        self.n_rows, self.n_features = int(self.starts[-1]), int(X.shape[1])
        self.weights = sample_weight
        if sample_weight is not None:
            if getattr(sample_weight, "shape", None) is None:
                sample_weight = np.asarray(sample_weight)
            if sample_weight.shape != (self.n_rows,):
                raise ValueError(
                    f"sample_weight has shape {sample_weight.shape}, but X has "
                    f"{self.n_rows} rows; give one weight per row."
                )
            if hasattr(sample_weight, "rechunk"):
                sample_weight = sample_weight.rechunk((tuple(self.counts),))
            self.weights = sample_weight

    @property
    def n_blocks(self) -> int:
        return self.counts.size

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Block ``i``: validated rows and raw weights (None: all ones)."""
        X = self.check(np.asarray(self.X.blocks[i].compute()))
        if self.weights is None:
            return X, None
        w = self.weights
        w = (
            w.blocks[i].compute()
            if hasattr(w, "blocks")
            else w[self.starts[i] :][: self.counts[i]]
        )
        return X, np.asarray(w, dtype=np.float64)


class StreamedRows:
    """Training rows of a :class:`RowStream`: each block less its validation rows,
    converted by ``to_internal`` and weighted by ``weigh`` as it is read.

    ``held[i]`` validation rows of block ``i`` are left out (chosen by
    ``seeds[i]``); the weights are rescaled to mean 1 over all training rows with
    ``total`` (the sum of their weights).
    """

    def __init__(
        self,
        stream: RowStream,
        held: np.ndarray,
        seeds: np.ndarray,
        to_internal: Callable,
        weigh: Callable,
        total: float,
        device: torch.device,
    ):
        self.stream, self.held, self.seeds = stream, held, seeds
        self.to_internal, self.weigh, self.device = to_internal, weigh, device
        self.n_rows = int(stream.n_rows - held.sum())
        self._factor = self.n_rows / total

    def block(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training rows of block ``i`` and their weights, on the device."""
        X, w = self.stream.read(i)
        w = self.weigh(X, w)
        if self.held[i]:
            train = ~_choose(X.shape[0], int(self.held[i]), int(self.seeds[i]))
            X, w = X[train], w[train]
        x = as_float32_tensor(self.to_internal(X), self.device)
        w = torch.as_tensor(w * self._factor, device=self.device).to(torch.float32)
        return x, w

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator:
        """``(x, w)`` mini-batches of one epoch: blocks in a random order, rows
        shuffled within a block, a block's last rows completed from the next."""
        order = torch.randperm(self.stream.n_blocks, generator=generator)
        x_rest = w_rest = None
        for i in order.tolist():
            x, w = self.block(i)
            shuffle = torch.randperm(x.shape[0], generator=generator).to(self.device)
            x, w = x[shuffle], w[shuffle]
            if x_rest is not None:
                x, w = torch.cat([x_rest, x]), torch.cat([w_rest, w])
            full = x.shape[0] - x.shape[0] % batch_size
            for start in range(0, full, batch_size):
                yield x[start : start + batch_size], w[start : start + batch_size]
            x_rest, w_rest = x[full:], w[full:]
        if x_rest is not None and x_rest.shape[0]:
            yield x_rest, w_rest


def survey(stream: RowStream, summary, n_validation: int, weigh: Callable, rng):
    """The first pass: every block checked and summarized, validation and start
    rows drawn uniformly (each at most ``SAMPLE_VALUES`` values).

    Returns ``(held, seeds, (X_val, w_val), (X_start, w_start), total)``: the
    validation rows per block and the seeds that choose them, the validation rows
    and the sample of training rows with their weights, and the sum of the
    training rows' weights.
    """
    width = max(stream.n_features, 1)
    n_validation = min(n_validation, SAMPLE_VALUES // width)
    held = _allocate(stream.counts, n_validation, rng)
    train_counts = stream.counts - held
    n_start = min(int(train_counts.sum()), SAMPLE_VALUES // width)
    seeds = np.zeros((2, stream.n_blocks), dtype=np.int64)
    if n_start == train_counts.sum():  # all of them: nothing drawn (as in memory)
        picked = train_counts
    else:
        picked = _allocate(train_counts, n_start, rng)
        seeds[1] = rng.randint(np.iinfo(np.int32).max, size=stream.n_blocks)
    if n_validation:
        seeds[0] = rng.randint(np.iinfo(np.int32).max, size=stream.n_blocks)
    validation, start, total = [], [], 0.0
    for i in range(stream.n_blocks):
        X, w = stream.read(i)
        w = weigh(X, w)
        summary.see(X)
        val = _choose(X.shape[0], int(held[i]), int(seeds[0, i]))
        validation.append((X[val], w[val]))
        X, w = X[~val], w[~val]
        summary.add_moments(X, w)
        total += w.sum()
        chosen = _choose(X.shape[0], int(picked[i]), int(seeds[1, i]))
        start.append((X[chosen], w[chosen]))
    X_val, w_val = (np.concatenate(part) for part in zip(*validation, strict=True))
    X_start, w_start = (np.concatenate(part) for part in zip(*start, strict=True))
    return held, seeds[0], (X_val, w_val), (X_start, w_start), total
