"""Builders shared by the test files: small estimators, random MADEs, small tables.

pytest puts this folder on ``sys.path`` (no ``__init__.py``), so test files import
the builders with ``from conftest import ...``.
"""

import itertools

import numpy as np
import torch

from skmade import MADEDensity
from skmade._masks import make_degrees, make_orderings
from skmade._nn import MADE


def fast_made(**params) -> MADEDensity:
    """A MADEDensity small enough for unit tests (16 hidden units, 30 epochs, CPU)."""
    defaults = dict(hidden_layer_sizes=(16,), max_iter=30, random_state=0, device="cpu")
    return MADEDensity(**{**defaults, **params})


def random_made(
    n_features,
    hidden,
    n_masks=3,
    n_params=1,
    seed=0,
    order_agnostic=True,
    direct=False,
    input_sizes=None,
    output_sizes=None,
):
    """A MADE with random orderings, degrees and weights: ``(made, orderings)``.

    ``input_sizes``/``output_sizes`` (with ``n_params=None``) give a Table's layout.
    """
    rng = np.random.RandomState(seed)
    orderings = make_orderings("random", n_features, n_masks, order_agnostic, rng)
    degrees = make_degrees(orderings, hidden, rng)
    layout = {}
    if input_sizes is not None:
        layout = dict(input_sizes=input_sizes, output_sizes=output_sizes)
    made = MADE(
        [torch.from_numpy(d) for d in degrees], n_params, direct=direct, **layout
    )
    made.reset_parameters(torch.Generator().manual_seed(seed))
    return made, orderings


def all_binary_vectors(n_features):
    """Every 0/1 row of length ``n_features``: ``(2**n_features, n_features)``."""
    return np.array(list(itertools.product([0, 1], repeat=n_features)), dtype=float)


def correlated_binary(n_samples, n_features, seed=0):
    """Binary rows with strong dependencies (a noisy copy chain)."""
    rng = np.random.RandomState(seed)
    X = np.empty((n_samples, n_features))
    X[:, 0] = rng.rand(n_samples) < 0.4
    for j in range(1, n_features):
        flip = rng.rand(n_samples) < 0.15
        X[:, j] = np.where(flip, 1 - X[:, j - 1], X[:, j - 1])
    return X


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
