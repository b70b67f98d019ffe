"""Classic binary density baselines: independent Bernoulli and a Chow-Liu tree.

Both are fitted by (Laplace-smoothed) maximum likelihood and score rows in nats, like
``score_samples`` of a scikit-learn density estimator.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree


class IndependentBernoulli:
    """Product of per-column Bernoulli marginals with Laplace smoothing."""

    def __init__(self, smoothing: float = 1.0) -> None:
        self.smoothing = smoothing

    def fit(self, X: np.ndarray) -> IndependentBernoulli:
        X = np.asarray(X, dtype=np.float64)
        p = (X.sum(axis=0) + self.smoothing) / (X.shape[0] + 2 * self.smoothing)
        self.log_p_, self.log_q_ = np.log(p), np.log1p(-p)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X @ self.log_p_ + (1 - X) @ self.log_q_


class ChowLiuTree:
    """Tree-structured Bayesian network of binary variables (Chow & Liu, 1968).

    Pairwise joint counts with ``smoothing`` pseudo-counts per cell give the mutual
    information of every pair; a maximum spanning tree of it (a forest where some
    pairs have zero information) is rooted in each component, and every variable is
    modelled given its parent by smoothed conditional tables.
    """

    def __init__(self, smoothing: float = 1.0) -> None:
        self.smoothing = smoothing

    def fit(self, X: np.ndarray) -> ChowLiuTree:
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        a = self.smoothing
        n11 = X.T @ X
        n1 = np.diag(n11)
        # Smoothed pairwise joint probabilities p[a, b] for values a, b in {0, 1}.
        joint = np.empty((2, 2, d, d))
        joint[1, 1] = n11
        joint[1, 0] = n1[:, None] - n11
        joint[0, 1] = n1[None, :] - n11
        joint[0, 0] = n - n1[:, None] - n1[None, :] + n11
        joint = (joint + a) / (n + 4 * a)
        marginal = (np.stack([n - n1, n1]) + 2 * a) / (n + 4 * a)  # (2, d)
        outer = marginal[:, None, :, None] * marginal[None, :, None, :]
        mutual = (joint * np.log(joint / outer)).sum(axis=(0, 1))
        np.fill_diagonal(mutual, 0)
        # Maximum spanning tree = minimum spanning tree of the negated weights.
        tree = minimum_spanning_tree(-np.triu(mutual, 1)).toarray()
        adjacency = (tree != 0) | (tree.T != 0)
        parent = np.full(d, -1)
        seen = np.zeros(d, dtype=bool)
        for root in range(d):
            if seen[root]:
                continue
            order, predecessors = breadth_first_order(
                adjacency, root, directed=False, return_predecessors=True
            )
            seen[order] = True
            for node in order[1:]:
                parent[node] = predecessors[node]
        self.parent_ = parent
        # log p(x_j = b | x_parent = c) as table[j, c, b]; roots use the marginal.
        table = np.empty((d, 2, 2))
        for j in range(d):
            if parent[j] < 0:
                table[j] = np.log(marginal[:, j])[None, :]
            else:
                pair = joint[:, :, parent[j], j]  # [parent value, child value]
                table[j] = np.log(pair / pair.sum(axis=1, keepdims=True))
        self.log_table_ = table
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X).astype(np.int64)
        d = X.shape[1]
        columns = np.arange(d)
        parent_values = np.where(self.parent_ >= 0, X[:, self.parent_.clip(0)], 0)
        return self.log_table_[columns, parent_values, X].sum(axis=1)
