"""Small synthetic tables shared by the tests."""

import numpy as np


def correlated_binary(n_samples, n_features, seed=0):
    """Binary rows with strong dependencies (a noisy copy chain)."""
    rng = np.random.RandomState(seed)
    X = np.empty((n_samples, n_features))
    X[:, 0] = rng.rand(n_samples) < 0.4
    for j in range(1, n_features):
        flip = rng.rand(n_samples) < 0.15
        X[:, j] = np.where(flip, 1 - X[:, j - 1], X[:, j - 1])
    return X
