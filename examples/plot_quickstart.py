"""
Quickstart: a MADE density of handwritten digits
=================================================

Fit :class:`skmade.MADEDensity` with its defaults to scikit-learn's 8x8 digits,
binarized, and use the density three ways: the held-out log-likelihood against an
independent-Bernoulli baseline, new digits drawn from the model beside real ones, and
the least likely test digits flagged as anomalies.

Run it with ``make demo`` (which saves the figure in ``demo_output/``) or
``python examples/plot_quickstart.py [--output DIR]``.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skmade import MADEDensity

# %%
# Data: 1,797 digits, each pixel set to 1 where its gray level is at least 8 of 16.

parser = argparse.ArgumentParser(description="Quickstart: a MADE density of digits")
parser.add_argument("--output", type=Path, help="folder for the figure")
args, _ = parser.parse_known_args()

digits = load_digits()
X = (digits.data >= 8).astype(np.float64)
X_train, X_test, _, y_test = train_test_split(
    X, digits.target, test_size=0.25, random_state=0
)
print(f"Binarized 8x8 digits: {X_train.shape[0]} train, {X_test.shape[0]} test rows")

# %%
# Fit with the defaults: one hidden layer of 500 units, early stopping on 10% of
# the training rows.

model = MADEDensity(random_state=0)
start = time.perf_counter()
model.fit(X_train)
seconds = time.perf_counter() - start
print(f"Fitted in {seconds:.1f} s, {model.n_iter_} epochs")

# %%
# Held-out log-likelihood (nats per digit, higher is better), against a product of
# per-pixel Bernoullis with Laplace smoothing.

p = (X_train.sum(axis=0) + 1) / (X_train.shape[0] + 2)
baseline = float(np.mean(X_test @ np.log(p) + (1 - X_test) @ np.log(1 - p)))
made = model.score(X_test)
print(f"independent Bernoulli baseline: {baseline:8.2f}")
print(f"MADE, defaults                : {made:8.2f}  ({made - baseline:+.2f})")

# %%
# Samples beside real digits, and the least likely test digits: the density's
# anomaly candidates.

samples = model.sample(30, random_state=0)
scores = model.score_samples(X_test)
least_likely = np.argsort(scores)[:10]
for rank, i in enumerate(least_likely[:5], 1):
    print(f"{rank}. test row {i:3d}, label {y_test[i]}, log p = {scores[i]:7.2f}")
print(f"median test digit: log p = {np.median(scores):7.2f}")

try:
    import matplotlib.pyplot as plt
except ImportError:  # the figure needs matplotlib; the numbers above do not
    plt = None
    print("Install matplotlib (pip install 'skmade[demo]') for the figure.")

if plt is not None:
    panels = [
        (
            X_test[:30],
            None,
            f"Real test digits. Held-out log-likelihood: MADE {made:.1f} nats per "
            f"digit, independent pixels {baseline:.1f}",
        ),
        (samples, None, "Digits drawn from the fitted MADEDensity"),
        (
            X_test[least_likely],
            scores[least_likely],
            "The 10 least likely test digits, with their log p",
        ),
    ]
    fig = plt.figure(figsize=(9, 5.6), layout="constrained")
    rows = fig.subfigures(3, 1, height_ratios=[3, 3, 1.6])
    for subfigure, (images, log_p, title) in zip(rows, panels, strict=True):
        n_rows = 1 if len(images) <= 10 else 3
        axes = np.ravel(subfigure.subplots(n_rows, 10))
        for i, (ax, image) in enumerate(zip(axes, images, strict=True)):
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if log_p is not None:
                ax.set_xlabel(f"{log_p[i]:.1f}", fontsize=9)
        subfigure.suptitle(title, fontsize=11)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.output / "quickstart.png", dpi=100)
        print(f"Saved the figure to {args.output / 'quickstart.png'}")
    else:
        plt.show()
