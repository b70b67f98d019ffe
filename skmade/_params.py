"""The parameters every torch density shares: their constraints and the device."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions


def resolve_device(device) -> torch.device:
    """The torch device of the ``device`` parameter: ``'auto'`` (CUDA when available,
    else the CPU), any torch device string (``'cpu'``, ``'cuda'``, ``'cuda:1'``,
    ``'mps'``) or a :class:`torch.device`, checked to be usable here."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"device={device!r} is not a torch device. Use 'auto', 'cpu', 'cuda', "
            f"'cuda:1', 'mps' or a torch.device ({error})."
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but torch.cuda.is_available() is "
                "False. Use device='cpu' or device='auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible (indices "
                f"0 to {torch.cuda.device_count() - 1})."
            )
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device={device!r} was requested but "
                "torch.backends.mps.is_available() is False. Use device='cpu' or "
                "device='auto'."
            )
    elif resolved.type != "cpu":
        try:
            torch.empty(0, device=resolved)
        except (RuntimeError, AssertionError) as error:
            raise ValueError(
                f"device={device!r} cannot hold tensors here ({error}). Use "
                "device='cpu' or device='auto'."
            ) from None
    return resolved


class _Count(Interval):
    """An integer range that refuses booleans (``True`` is an ``int`` in Python)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, bool | np.bool_) and super().is_satisfied_by(val)


def count(low: int) -> Interval:
    """The constraint of a count parameter: an integer of at least ``low``."""
    return _Count(Integral, low, None, closed="left")


TRAINING_CONSTRAINTS: dict = {
    "hidden_layer_sizes": ["array-like", count(1)],
    "max_iter": [count(1)],
    "batch_size": [StrOptions({"auto"}), count(1)],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "adaptive"})],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [count(1)],
    "tol": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "device": [str, torch.device],
}
