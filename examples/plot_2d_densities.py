"""
Two-dimensional densities side by side
======================================

Two concentric rings have a density we can write down: the angle is uniform and the
radius Gaussian around each ring's radius. We fit :class:`skmade.MADEDensity` with
single-Gaussian conditionals and with its default mixture-of-Gaussians conditionals,
:class:`skmade.MAFDensity`, scikit-learn's
:class:`~sklearn.mixture.GaussianMixture` and
:class:`~sklearn.neighbors.KernelDensity` to 2,000 points, and compare each density
with the truth on a grid and by the held-out log-likelihood of 2,000 new points
(higher is better; the true density's own score is the limit).
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from skmade import MADEDensity, MAFDensity

RADII, WIDTH, WEIGHTS = np.array([1.0, 2.5]), 0.15, np.array([0.35, 0.65])


def sample_rings(n, rng):
    ring = rng.choice(len(RADII), size=n, p=WEIGHTS)
    radius = RADII[ring] + WIDTH * rng.randn(n)
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


def true_log_density(X):
    """log p(x): the radius's mixture density spread evenly over the circle."""
    r = np.hypot(X[:, 0], X[:, 1])
    radial = sum(w * norm.pdf(r, R, WIDTH) for w, R in zip(WEIGHTS, RADII, strict=True))
    with np.errstate(divide="ignore"):
        return np.log(radial) - np.log(2 * np.pi * r)


rng = np.random.RandomState(0)
X_train, X_test = sample_rings(2000, rng), sample_rings(2000, rng)

# %%
# Fit every model on the same rows. KernelDensity's bandwidth is chosen by
# cross-validation on the training rows, GaussianMixture has 12 components.

kde = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-1.5, -0.3, 8)}, cv=3)
models = {
    "MADEDensity, Gaussian": MADEDensity(n_components=1, random_state=0),
    "MADEDensity (defaults: MoG)": MADEDensity(random_state=0),
    "MAFDensity (defaults)": MAFDensity(random_state=0),
    "GaussianMixture (12)": GaussianMixture(12, random_state=0),
    "KernelDensity (CV)": kde,
}
scores = {"true density": float(np.mean(true_log_density(X_test)))}
for name, model in models.items():
    model.fit(X_train)
    if isinstance(model, GridSearchCV):
        models[name] = model = model.best_estimator_
    scores[name] = float(np.mean(model.score_samples(X_test)))
    print(f"{name:30s} held-out log-likelihood {scores[name]:7.3f}")
print(f"{'true density':30s} held-out log-likelihood {scores['true density']:7.3f}")

# %%
# The densities on a grid. MADE with one Gaussian per conditional cannot bend
# around a ring: ``p(x2 | x1)`` is bimodal for most ``x1``. Its mixture
# conditionals can, and so can the flow.

grid = np.linspace(-3.4, 3.4, 150)
xx, yy = np.meshgrid(grid, grid)
points = np.column_stack([xx.ravel(), yy.ravel()])
densities = {"true density": np.exp(true_log_density(points))}
for name, model in models.items():
    densities[name] = np.exp(model.score_samples(points))

fig, axes = plt.subplots(2, 3, figsize=(11, 7.4), layout="constrained")
top = max(d.max() for d in densities.values())
for ax, (name, density) in zip(axes.ravel(), densities.items(), strict=True):
    ax.imshow(
        density.reshape(xx.shape),
        extent=(grid[0], grid[-1], grid[0], grid[-1]),
        origin="lower",
        cmap="magma",
        vmin=0,
        vmax=top,
    )
    ax.set_title(f"{name}\nheld-out log-likelihood {scores[name]:.3f}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Two rings: the true density and five estimates (2,000 training points)")
plt.show()
