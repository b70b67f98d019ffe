"""
Mixed tables: binary, categorical and continuous columns in one density
=======================================================================

A pandas DataFrame with a categorical column (pandas ``category`` dtype), a 0/1
column and two continuous columns. :class:`skmade.MADEDensity` picks a family per
column (``distribution='auto'``), the joint log-likelihood sums log-probability mass
for the discrete columns and log-density for the continuous ones, and ``sample``
returns a DataFrame with the same dtypes. :class:`skmade.MAFDensity` models the
continuous columns alone for comparison.

Run it with ``python examples/mixed_table.py``.
"""

import numpy as np
import pandas as pd

from skmade import MADEDensity, MAFDensity

rng = np.random.RandomState(0)
n = 3000
city = rng.choice(["Paris", "Lyon", "Nice"], size=n, p=[0.5, 0.3, 0.2])
rent = np.where(city == "Paris", 1.8, 1.0) + 0.3 * rng.randn(n)  # thousands
size = 40 + 25 * rent + 8 * rng.randn(n)  # square metres, depends on rent
balcony = (rng.rand(n) < np.where(city == "Nice", 0.7, 0.3)).astype(float)
frame = pd.DataFrame(
    {
        "city": pd.Categorical(city),
        "balcony": balcony,
        "rent": rent,
        "size": size,
    }
)
train, test = frame.iloc[:2000], frame.iloc[2000:]

made = MADEDensity(
    hidden_layer_sizes=(64, 64),
    n_components=3,
    early_stopping=True,
    max_iter=300,
    random_state=0,
).fit(train)
print("families:", dict(zip(frame.columns, made.column_distributions_, strict=True)))
print(f"MADE test log-likelihood per row: {made.score(test):.3f}")

# Which feature makes a row unlikely: a Nice flat with a Paris rent and a tiny size.
odd = pd.DataFrame(
    {
        "city": pd.Categorical(["Nice"], categories=frame["city"].cat.categories),
        "balcony": [1.0],
        "rent": [1.9],
        "size": [20.0],
    }
)
contributions = made.score_features(odd)[0]
for column, value in zip(frame.columns, contributions, strict=True):
    print(f"  {column:8s} log-likelihood {value:8.2f}")

print(made.sample(5, random_state=0))

continuous = ["rent", "size"]
maf = MAFDensity(
    n_flows=3, hidden_layer_sizes=(32, 32), early_stopping=True, random_state=0
).fit(train[continuous])
made_continuous = MADEDensity(
    hidden_layer_sizes=(32, 32), n_components=3, early_stopping=True, random_state=0
).fit(train[continuous])
print(
    f"rent and size only: MAF {maf.score(test[continuous]):.3f}, "
    f"MADE MoG {made_continuous.score(test[continuous]):.3f}"
)
