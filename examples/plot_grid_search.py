"""
Choosing the network size with GridSearchCV
===========================================

:class:`skmade.MADEDensity` is a scikit-learn estimator whose ``score`` is the mean
held-out log-likelihood, so :class:`~sklearn.model_selection.GridSearchCV` can tune
it without a scoring function: each candidate is fitted on some folds and scored on
the rest. Here it chooses ``hidden_layer_sizes`` on the binarized 8x8 digits, and
the validation curve shows what the extra capacity buys.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split

from skmade import MADEDensity

X = (load_digits().data >= 8).astype(np.float64)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

sizes = [8, 32, 128, 512]
search = GridSearchCV(
    MADEDensity(random_state=0),
    {"hidden_layer_sizes": [(h,) for h in sizes]},
    cv=3,
    return_train_score=True,
)
search.fit(X_train)
print("best:", search.best_params_)
print(f"held-out log-likelihood of the refitted best model: {search.score(X_test):.3f}")

# %%
# The validation curve: the mean log-likelihood of the held-out folds (and of the
# training folds) for each width. Early stopping and the L2 prior keep wide layers
# from overfitting this small table, so width keeps paying on the validation folds
# while the gap to the training folds grows. The refitted best model is scored
# once on the test rows, which played no part in the choice.

cv = search.cv_results_
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
for kind, colour in (("test", "tab:blue"), ("train", "tab:gray")):
    mean, std = cv[f"mean_{kind}_score"], cv[f"std_{kind}_score"]
    label = "validation folds" if kind == "test" else "training folds"
    ax.plot(sizes, mean, "o-", color=colour, label=label)
    ax.fill_between(sizes, mean - std, mean + std, color=colour, alpha=0.2)
best = search.best_params_["hidden_layer_sizes"][0]
ax.axvline(best, color="tab:orange", linestyle="--", label=f"chosen: {best} units")
ax.set_xscale("log", base=2)
ax.set_xticks(sizes, [str(h) for h in sizes])
ax.set_xlabel("hidden units (one layer)")
ax.set_ylabel("mean log-likelihood (nats per digit)")
ax.set_title("GridSearchCV over hidden_layer_sizes (3-fold)")
ax.legend()
plt.show()
