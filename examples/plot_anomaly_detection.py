"""
Anomaly detection, and which features make a row anomalous
===========================================================

:class:`skmade.MADEOutlierDetector` fits a density to mostly normal rows and scores
new rows by how surprising each feature is given the others: each autoregressive
conditional ``p(x_d | x_<d)`` becomes a tail probability among the training rows,
and a row's score is the sum of their logarithms (the lower, the more abnormal). Its
``score_features`` splits a row's score into those per-feature terms (relative to
their typical value on the training rows), which says where to look. With
``statistic='likelihood'`` the score is the density's log-likelihood instead.

The table: scikit-learn's breast-cancer measurements (30 continuous features of cell
nuclei). The detector is fitted on benign tumours only; the test rows mix held-out
benign tumours with malignant ones, which play the anomalies. The labels are used
for evaluation only.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skmade import MADEOutlierDetector

data = load_breast_cancer()
X, malignant = data.data, data.target == 0
names = np.array(data.feature_names)
rng = np.random.RandomState(0)
X_benign_train, X_benign_test = train_test_split(
    X[~malignant], test_size=0.3, random_state=0
)
anomalies = X[malignant][rng.choice(malignant.sum(), 30, replace=False)]
X_test = np.vstack([X_benign_test, anomalies])
is_anomaly = np.r_[np.zeros(len(X_benign_test)), np.ones(len(anomalies))]

# %%
# Fit on benign rows; score the test rows (higher is more normal).

detector = MADEOutlierDetector(random_state=0).fit(X_benign_train)
scores = detector.score_samples(X_test)
print(f"ROC-AUC, malignant against benign: {roc_auc_score(is_anomaly, -scores):.3f}")
flagged = detector.predict(X_test) == -1
print(
    f"flagged {flagged.sum()} of {len(X_test)} test rows; "
    f"{int(is_anomaly[flagged].sum())} of them malignant"
)

# %%
# The three most abnormal test rows, explained: the features whose contributions
# are most negative are the ones the density finds out of place given the others.

top = np.argsort(scores)[:3]
contributions = detector.score_features(X_test[top])
fig, axes = plt.subplots(1, 3, figsize=(12, 5.2), sharex=False, layout="constrained")
for ax, row, values in zip(axes, top, contributions, strict=True):
    worst = np.argsort(values)[:8][::-1]
    colours = ["tab:red" if v < 0 else "tab:gray" for v in values[worst]]
    ax.barh(names[worst], values[worst], color=colours)
    ax.axvline(0, color="black", linewidth=0.8)
    kind = "malignant" if is_anomaly[row] else "benign"
    ax.set_title(f"test row {row} ({kind})\nscore = {scores[row]:.1f}", fontsize=10)
    ax.set_xlabel("log p-value, relative to a typical row")
    ax.tick_params(axis="y", labelsize=8)
fig.suptitle("score_features: the 8 most abnormal features of the 3 most abnormal rows")
plt.show()
