"""
Mixed tables: categorical, binary and continuous columns in one density
=======================================================================

A pandas DataFrame with a categorical column (``category`` dtype), a 0/1 column and
two continuous columns. :class:`skmade.MADEDensity` picks a family per column
(``distribution='auto'``): a softmax for the city, a Bernoulli for the balcony, a
mixture of Gaussians for rent and size. The joint log-likelihood adds
log-probability mass for the discrete columns and log-density for the continuous
ones, and ``sample`` returns a DataFrame with the training frame's dtypes.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skmade import MADEDensity

rng = np.random.RandomState(0)
n = 3000
city = rng.choice(["Paris", "Lyon", "Nice"], size=n, p=[0.5, 0.3, 0.2])
rent = np.where(city == "Paris", 1.8, 1.0) + 0.3 * rng.randn(n)  # thousands
size = 40 + 25 * rent + 8 * rng.randn(n)  # square metres, depends on rent
balcony = (rng.rand(n) < np.where(city == "Nice", 0.7, 0.3)).astype(float)
frame = pd.DataFrame(
    {"city": pd.Categorical(city), "balcony": balcony, "rent": rent, "size": size}
)
train, test = frame.iloc[:2000], frame.iloc[2000:]

made = MADEDensity(random_state=0).fit(train)
print("families:", dict(zip(frame.columns, made.column_distributions_, strict=True)))
print(f"test log-likelihood per row: {made.score(test):.3f}")

# %%
# Which feature makes a row unlikely: a flat in Nice with a Paris rent and a tiny
# size. ``score_features`` splits its log-likelihood by column.

odd = pd.DataFrame(
    {
        "city": pd.Categorical(["Nice"], categories=frame["city"].cat.categories),
        "balcony": [1.0],
        "rent": [1.9],
        "size": [20.0],
    }
)
for column, value in zip(frame.columns, made.score_features(odd)[0], strict=True):
    print(f"  {column:8s} log-likelihood {value:8.2f}")

# %%
# Samples come back as a DataFrame with the same columns and dtypes.

samples = made.sample(1000, random_state=0)
print(samples.dtypes)
print(samples.head())

# %%
# Real rows against drawn rows: the city shares, the balcony rate per city, and
# rent against size.

fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
cities = list(frame["city"].cat.categories)
real_share = test["city"].value_counts(normalize=True)[cities]
drawn_share = samples["city"].value_counts(normalize=True)[cities]
x = np.arange(len(cities))
axes[0].bar(x - 0.2, real_share, 0.4, label="real (test rows)")
axes[0].bar(x + 0.2, drawn_share, 0.4, label="drawn")
axes[0].set_xticks(x, cities)
axes[0].set_title("city shares")
axes[0].legend()
real_balcony = test.groupby("city", observed=True)["balcony"].mean()[cities]
drawn_balcony = samples.groupby("city", observed=True)["balcony"].mean()[cities]
axes[1].bar(x - 0.2, real_balcony, 0.4, label="real")
axes[1].bar(x + 0.2, drawn_balcony, 0.4, label="drawn")
axes[1].set_xticks(x, cities)
axes[1].set_title("share of flats with a balcony")
axes[2].scatter(test["rent"], test["size"], s=4, alpha=0.4, label="real")
axes[2].scatter(samples["rent"], samples["size"], s=4, alpha=0.4, label="drawn")
axes[2].set_xlabel("rent (thousands)")
axes[2].set_ylabel("size (square metres)")
axes[2].set_title("rent against size")
axes[2].legend(markerscale=3)
fig.suptitle("MADEDensity on a mixed table: real rows and rows drawn from the model")
plt.show()
