"""Probabilistic regression on the UCI benchmark: ``MADERegressor()`` against peers.

The protocol of Hernandez-Lobato & Adams (2015), as MC dropout, deep ensembles and
NGBoost report it: ``shared/data/uci_regression`` (boston, concrete, energy,
wine_red, yacht) with their 20 train/test splits. Every model holds out 10% of each
training split for early stopping and model choice (MADERegressor does this itself
with ``validation_fraction=0.1``; the peers get the same rows where they use any).
Reported per table: test negative log-likelihood of y given x per row (mean and
standard error over splits), RMSE, coverage of the 90% central interval, fit
seconds. Peers, in the same run:

* ``linear``: least squares with a homoscedastic Gaussian residual;
* ``gp``: GaussianProcessRegressor, constant * RBF (one length scale per feature) +
  white noise, on standardized features, ``normalize_y=True``;
* ``hgb-quantile``: HistGradientBoostingRegressor with the 5% and 95% quantile
  losses (coverage only) and the squared loss (RMSE);
* ``ngboost``: NGBoost's default Normal regressor, where ``ngboost`` installs
  (skipped otherwise);
* ``deep-ensemble``: 5 Gaussian-output MLPs (50 ReLU units, as Lakshminarayanan et
  al.), mixed equally (``_DeepEnsemble`` below);
* ``zuko-maf``: zuko's conditional MAF over y (5 transforms, 2 x 64 units), trained
  with early stopping on the held-out rows.

Run alone (``make bench-regression``; about 30 minutes on 2 cores with 20 splits)::

    python -m benchmarks.regression [--tables boston yacht] [--splits 5]

Writes ``benchmarks/results/regression.json`` and ``benchmarks/results/regression.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import StandardScaler

from benchmarks._common import (
    RESULTS,
    UCI,
    environment,
    markdown_table,
    write_json,
    write_markdown,
)
from skmade import MADERegressor

TABLES = ("boston", "concrete", "energy", "wine_red", "yacht")
_Z90 = norm.ppf(0.95)


def _validation_split(n, seed):
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    n_val = max(1, n // 10)
    return order[n_val:], order[:n_val]


def _gaussian_report(mean, std, y):
    nll = -norm.logpdf(y, mean, std).mean()
    covered = np.mean(np.abs(y - mean) <= _Z90 * std)
    return nll, covered


def _linear(X, y, Xt, yt, seed):
    model = LinearRegression().fit(X, y)
    std = np.std(y - model.predict(X))
    nll, covered = _gaussian_report(model.predict(Xt), std, yt)
    return dict(nll=nll, pred=model.predict(Xt), coverage=covered)


def _gp(X, y, Xt, yt, seed):
    scaler = StandardScaler().fit(X)
    kernel = ConstantKernel() * RBF(np.ones(X.shape[1])) + WhiteKernel()
    model = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    model.fit(scaler.transform(X), y)
    mean, std = model.predict(scaler.transform(Xt), return_std=True)
    nll, covered = _gaussian_report(mean, std, yt)
    return dict(nll=nll, pred=mean, coverage=covered)


def _hgb(X, y, Xt, yt, seed):
    def fit(**kw):
        return HistGradientBoostingRegressor(random_state=seed, **kw).fit(X, y)

    low = fit(loss="quantile", quantile=0.05).predict(Xt)
    high = fit(loss="quantile", quantile=0.95).predict(Xt)
    return dict(
        nll=np.nan, pred=fit().predict(Xt), coverage=np.mean((yt >= low) & (yt <= high))
    )


def _ngboost(X, y, Xt, yt, seed):
    from ngboost import NGBRegressor

    train, val = _validation_split(len(y), seed)
    model = NGBRegressor(random_state=seed, verbose=False, early_stopping_rounds=50)
    model.fit(X[train], y[train], X_val=X[val], Y_val=y[val])
    dist = model.pred_dist(Xt)
    mean, std = dist.params["loc"], dist.params["scale"]
    nll, covered = _gaussian_report(mean, std, yt)
    return dict(nll=nll, pred=mean, coverage=covered)


class _DeepEnsemble:
    """``n_members`` MLPs with a Gaussian output each (mean, softplus scale),
    trained by NLL on standardized data with Adam; the prediction is their equal
    mixture. Early stopping on held-out rows picks each member's epoch."""

    def __init__(self, n_members=5, hidden=50, epochs=100, patience=10, seed=0):
        self.n_members, self.hidden, self.epochs = n_members, hidden, epochs
        self.patience, self.seed = patience, seed

    def _member(self, X, y, Xv, yv, generator):
        net = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], self.hidden), torch.nn.ReLU(),
            torch.nn.Linear(self.hidden, 2),
        )  # fmt: skip
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
        best, best_state, waited = np.inf, None, 0
        for _ in range(self.epochs):
            for batch in torch.randperm(len(X), generator=generator).split(100):
                loss = -self._log_prob(net, X[batch], y[batch]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                score = -self._log_prob(net, Xv, yv).mean().item()
            if score < best:
                best, best_state, waited = (
                    score,
                    [p.clone() for p in net.parameters()],
                    0,
                )
            elif (waited := waited + 1) > self.patience:
                break
        with torch.no_grad():
            for p, saved in zip(net.parameters(), best_state, strict=True):
                p.copy_(saved)
        return net

    @staticmethod
    def _log_prob(net, X, y):
        mean, raw = net(X).unbind(1)
        scale = torch.nn.functional.softplus(raw) + 1e-3
        return torch.distributions.Normal(mean, scale).log_prob(y)

    def fit(self, X, y):
        self.x_ = StandardScaler().fit(X)
        self.y_mean_, self.y_std_ = y.mean(), y.std()
        train, val = _validation_split(len(y), self.seed)
        Xs = torch.as_tensor(self.x_.transform(X), dtype=torch.float32)
        ys = torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32)
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.members_ = [
            self._member(Xs[train], ys[train], Xs[val], ys[val], generator)
            for _ in range(self.n_members)
        ]
        return self

    def evaluate(self, Xt, yt):
        X = torch.as_tensor(self.x_.transform(Xt), dtype=torch.float32)
        y = torch.as_tensor((yt - self.y_mean_) / self.y_std_, dtype=torch.float32)
        with torch.no_grad():
            log_p = torch.stack([self._log_prob(m, X, y) for m in self.members_])
            outs = torch.stack([m(X) for m in self.members_])
        means = outs[:, :, 0].double().numpy()
        scales = torch.nn.functional.softplus(outs[:, :, 1]).double().numpy() + 1e-3
        mixture = torch.logsumexp(log_p.double(), 0) - np.log(self.n_members)
        nll = -(mixture.numpy() - np.log(self.y_std_)).mean()
        mean = means.mean(axis=0)
        # The mixture's 90% interval by bisection of its CDF, in standardized units.
        low, high = _mixture_interval(means.T, scales.T)
        t = (yt - self.y_mean_) / self.y_std_
        return nll, mean * self.y_std_ + self.y_mean_, np.mean((t >= low) & (t <= high))


def _mixture_interval(means, scales, coverage=0.9):
    from skmade._conditional_model import mixture_quantiles

    weights = np.full(means.shape, 1.0 / means.shape[1])
    levels = np.array([(1 - coverage) / 2, (1 + coverage) / 2])
    q = mixture_quantiles(weights, means, scales, levels)
    return q[:, 0], q[:, 1]


def _deep_ensemble(X, y, Xt, yt, seed):
    nll, pred, covered = _DeepEnsemble(seed=seed).fit(X, y).evaluate(Xt, yt)
    return dict(nll=nll, pred=pred, coverage=covered)


def _zuko_maf(X, y, Xt, yt, seed):
    import zuko

    torch.manual_seed(seed)
    sx, y_mean, y_std = StandardScaler().fit(X), y.mean(), y.std()
    train, val = _validation_split(len(y), seed)
    Xs = torch.as_tensor(sx.transform(X), dtype=torch.float32)
    ys = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32)[:, None]
    flow = zuko.flows.MAF(
        features=1, context=X.shape[1], transforms=5, hidden_features=(64, 64)
    )
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    best, best_state, waited = np.inf, None, 0
    for _ in range(300):
        for batch in torch.randperm(len(train)).split(100):
            rows = torch.as_tensor(train)[batch]
            loss = -flow(Xs[rows]).log_prob(ys[rows]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            score = -flow(Xs[val]).log_prob(ys[val]).mean().item()
        if score < best:
            best, best_state, waited = (
                score,
                {k: v.clone() for k, v in flow.state_dict().items()},
                0,
            )
        elif (waited := waited + 1) > 10:
            break
    flow.load_state_dict(best_state)
    Xt_s = torch.as_tensor(sx.transform(Xt), dtype=torch.float32)
    yt_s = torch.as_tensor((yt - y_mean) / y_std, dtype=torch.float32)[:, None]
    with torch.no_grad():
        nll = -(flow(Xt_s).log_prob(yt_s).double().numpy() - np.log(y_std)).mean()
        draws = flow(Xt_s).sample((1000,))[:, :, 0].double().numpy()
    low, high = np.quantile(draws, [0.05, 0.95], axis=0)
    t = yt_s[:, 0].double().numpy()
    pred = draws.mean(axis=0) * y_std + y_mean
    return dict(nll=nll, pred=pred, coverage=np.mean((t >= low) & (t <= high)))


def _made(X, y, Xt, yt, seed, **params):
    model = MADERegressor(random_state=seed, device="cpu", **params).fit(X, y)
    low, high = model.predict_interval(Xt, coverage=0.9).T
    return dict(
        nll=-model.score(Xt, yt),
        pred=model.predict(Xt),
        coverage=np.mean((yt >= low) & (yt <= high)),
        epochs=model.n_iter_,
    )


def _available(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def peers():
    out = {
        "made": _made,
        "linear": _linear,
        "gp": _gp,
        "hgb-quantile": _hgb,
        "deep-ensemble": _deep_ensemble,
    }
    if _available("ngboost"):
        out["ngboost"] = _ngboost
    if _available("zuko"):
        out["zuko-maf"] = _zuko_maf
    return out


def run_table(name, n_splits, models):
    data = np.load(UCI / f"{name}.npz")
    X, y = data["X"], data["y"]
    results = {}
    for model_name, fit in models.items():
        rows = []
        for split in range(n_splits):
            train, test = data["train_idx"][split], data["test_idx"][split]
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = fit(X[train], y[train], X[test], y[test], split)
            seconds = time.perf_counter() - start
            rmse = float(np.sqrt(np.mean((out["pred"] - y[test]) ** 2)))
            rows.append(
                dict(
                    nll=float(out["nll"]),
                    rmse=rmse,
                    coverage=float(out["coverage"]),
                    seconds=seconds,
                )
            )
        results[model_name] = _summary(rows)
        print(name, model_name, results[model_name], flush=True)
    return results


def _summary(rows):
    out = {}
    for key in ("nll", "rmse", "coverage", "seconds"):
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = float(np.mean(values))
        out[f"{key}_se"] = float(np.std(values, ddof=1) / np.sqrt(len(values)))
    out["splits"] = len(rows)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    models = peers()
    if args.models:
        models = {k: v for k, v in models.items() if k in args.models}
    results = {}
    for name in args.tables:
        if not (UCI / f"{name}.npz").exists():
            print(f"skipping {name}: {UCI / f'{name}.npz'} is missing")
            continue
        results[name] = run_table(name, args.splits, models)
    payload = dict(environment(splits=args.splits), tables=results)
    write_json(RESULTS / "regression.json", payload)
    write_markdown(
        RESULTS / "regression.md", _markdown(results, args.splits), echo=True
    )


def _markdown(results, n_splits):
    lines = [
        "# Probabilistic regression: UCI tables (`python -m benchmarks.regression`)",
        "",
        f"Test NLL of y given x per row (mean ± standard error over {n_splits} "
        "splits; lower is better), RMSE, coverage of the 90% interval, fit seconds. "
        "Bold: the best NLL of the row.",
        "",
    ]
    names = sorted({m for table in results.values() for m in table}, key=_order)
    header = ["table", *names]
    for metric in ("nll", "rmse", "coverage", "seconds"):
        rows = []
        for table, by_model in results.items():
            values = {m: by_model[m][metric] for m in by_model}
            finite = {m: v for m, v in values.items() if np.isfinite(v)}
            best = min(finite, key=finite.get) if metric in ("nll", "rmse") else None
            row = [table]
            for m in names:
                if m not in by_model or not np.isfinite(by_model[m][metric]):
                    row.append("")
                    continue
                cell = f"{by_model[m][metric]:.3f}"
                if metric in ("nll", "rmse"):
                    cell += f" ± {by_model[m][metric + '_se']:.3f}"
                row.append(f"**{cell}**" if m == best else cell)
            rows.append(row)
        lines += [f"## {metric}", "", *markdown_table(header, rows), ""]
    return lines


def _order(name):
    order = [
        "made",
        "linear",
        "gp",
        "hgb-quantile",
        "ngboost",
        "deep-ensemble",
        "zuko-maf",
    ]
    return order.index(name) if name in order else len(order)


if __name__ == "__main__":
    main()
