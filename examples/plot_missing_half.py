"""
Completing digits with a missing half
=====================================

:class:`skmade.MADEDensity` with ``allow_missing=True`` is trained to be an exact
autoregressive model in any ordering of the pixels. A test digit whose bottom half is
missing (NaN) then has an exact marginal likelihood for its top half, and the bottom
half can be drawn from its conditional distribution given the top:
``sample(n, given=rows)``. :class:`skmade.MADEImputer` fills the same holes with the
conditional modes instead of draws.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skmade import MADEDensity, MADEImputer

X = (load_digits().data >= 8).astype(np.float64)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

# %%
# Train on the complete training digits: every row gets a fresh random ordering,
# so the model is ready for any set of observed pixels.

imputer = MADEImputer(MADEDensity(), random_state=0).fit(X_train)
model = imputer.density_  # a MADEDensity with allow_missing=True
half = X_test[:6].copy()
half[:, 32:] = np.nan  # the bottom four rows of pixels are missing
print("log p(top half):", np.round(model.score_samples(half), 2))
print("log p(whole digit):", np.round(model.score_samples(X_test[:6]), 2))

# %%
# Three completions drawn for each digit, and the imputer's conditional modes.

draws = model.sample(3, random_state=0, given=half).reshape(6, 3, 64)
modes = imputer.transform(half)

columns = ["truth", "top half", "draw 1", "draw 2", "draw 3", "MADEImputer"]
fig, axes = plt.subplots(6, 6, figsize=(7, 7.4), layout="constrained")
for i in range(6):
    shown = [X_test[i], np.nan_to_num(half[i], nan=0.5), *draws[i], modes[i]]
    for j, image in enumerate(shown):
        ax = axes[i, j]
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title(columns[j], fontsize=9)
fig.suptitle("Binarized digits: the bottom half drawn given the top half")
plt.show()
