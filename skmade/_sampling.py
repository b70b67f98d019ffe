"""Exact ancestral sampling from a MADE mask."""

from __future__ import annotations

import torch
from torch import Tensor

from ._nn import MADE


@torch.no_grad()
def sample_naive(made: MADE, family, k: int, noise: Tensor) -> Tensor:
    """Draw ``noise.shape[0]`` rows from mask ``k`` with one full pass per variable.

    Variable ``ordering[i]`` is drawn at step ``i`` from the conditional computed on the
    rows drawn so far; outputs never see later variables, so the zeros still standing in
    for them are never read. ``noise[:, d]`` is the randomness used for variable ``d``.
    """
    x = torch.zeros_like(noise)
    for d in made.orderings[k].tolist():
        params = made(x, k)[:, :, d]
        x[:, d] = family.draw(params, noise[:, d])
    return x
