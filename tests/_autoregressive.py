"""Shared test helper: which inputs each output of a MADE depends on."""

import numpy as np
import torch


def dependence(made, k, x):
    """``|d params[:, p, d] / d x[:, j]|`` summed over rows, shape ``(P, D, D)``.

    Rows are independent, so summing the outputs over rows keeps each row's
    derivatives apart.
    """
    jacobian = torch.autograd.functional.jacobian(lambda x: made(x, k).sum(0), x)
    return jacobian.abs().sum(dim=2)


def allowed(ordering):
    """``allowed[d, j]``: variable ``j`` comes before ``d`` in ``ordering``."""
    position = np.empty(len(ordering), dtype=int)
    position[np.asarray(ordering)] = np.arange(len(ordering))
    return torch.from_numpy(position[None, :] < position[:, None])
