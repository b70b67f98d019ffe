"""Categorical, mixture-of-Gaussians and mixed-table densities."""

import itertools

import numpy as np
import pytest
import torch
from conftest import fast_made, random_made
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate, stats

from skmade._families import Categorical, MixtureOfGaussians
from skmade._sampling import sample_incremental, sample_naive
from skmade._table import Table


def _categorical_chain(n, sizes, seed=0):
    """Integer codes where each column depends on the previous one."""
    rng = np.random.RandomState(seed)
    X = np.empty((n, len(sizes)))
    X[:, 0] = rng.randint(sizes[0], size=n)
    for j in range(1, len(sizes)):
        keep = rng.rand(n) < 0.7
        X[:, j] = np.where(keep, X[:, j - 1] % sizes[j], rng.randint(sizes[j], size=n))
    return X


def _grid(sizes):
    return np.array(list(itertools.product(*[range(k) for k in sizes])), dtype=float)


# ---------------------------------------------------------------- exact normalization


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(n_masks=4, order_agnostic=True, hidden_layer_sizes=(24, 24)),
        dict(hidden_layer_sizes=(2,), ordering="random"),
        dict(hidden_layer_sizes=()),
        dict(direct_connections=True, n_masks=3, order_agnostic=True),
    ],
    ids=["one-mask", "order-agnostic", "narrow", "no-hidden", "direct"],
)
def test_categorical_density_sums_to_one(params):
    sizes = (3, 5, 2, 4)
    X = _categorical_chain(500, sizes)
    est = fast_made(distribution="categorical", **params).fit(X)
    assert est.distribution_ == "categorical"
    assert [len(c) for c in est.categories_] == list(sizes)
    total = np.exp(est.score_samples(_grid(sizes))).sum()
    assert abs(total - 1) < 1e-4


def test_categories_need_not_be_codes():
    # Categories are the distinct values, whatever they are.
    X = _categorical_chain(300, (3, 4))
    values = [np.array([-5.0, 0.5, 7.0]), np.array([10.0, 20.0, 30.0, 40.0])]
    X_values = np.column_stack([values[j][X[:, j].astype(int)] for j in range(2)])
    est = fast_made(distribution="categorical").fit(X_values)
    assert_array_equal(est.categories_[0], values[0])
    grid = np.array(list(itertools.product(*values)))
    assert abs(np.exp(est.score_samples(grid)).sum() - 1) < 1e-4
    samples = est.sample(50, random_state=0)
    assert np.isin(samples[:, 0], values[0]).all()
    assert np.isin(samples[:, 1], values[1]).all()


def test_mixed_binary_and_categorical_sums_to_one():
    rng = np.random.RandomState(0)
    X = np.column_stack(
        [
            rng.rand(400) < 0.3,
            rng.randint(0, 4, 400),
            rng.rand(400) < 0.6,
            rng.randint(0, 3, 400),
        ]
    ).astype(float)
    est = fast_made(n_masks=2, order_agnostic=True).fit(X)
    assert list(est.column_distributions_) == [
        "bernoulli",
        "categorical",
        "bernoulli",
        "categorical",
    ]
    assert est.distribution_ == "mixed"
    total = np.exp(est.score_samples(_grid((2, 4, 2, 3)))).sum()
    assert abs(total - 1) < 1e-4


def test_two_dimensional_problem_with_200_categories_per_dimension():
    rng = np.random.RandomState(0)
    a = rng.randint(0, 200, 3000)
    b = (a + rng.randint(-3, 4, 3000)) % 200  # strongly dependent on a
    X = np.column_stack([a, b]).astype(float)
    est = fast_made(
        distribution="categorical", hidden_layer_sizes=(64,), max_iter=40
    ).fit(X)
    grid = _grid((200, 200))
    log_p = est.score_samples(grid)
    assert abs(np.exp(log_p).sum() - 1) < 1e-3
    # It learned the dependence: far better than independent uniforms (log 40000).
    assert est.score(X) > -np.log(200) - np.log(200) + 2.0


@pytest.mark.parametrize("n_components", [1, 3])
def test_mixture_of_gaussians_integrates_to_one_in_1d(n_components):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(200) - 3, 0.5 * rng.randn(200) + 2])[:, None]
    est = fast_made(distribution="gaussian", n_components=n_components).fit(X)
    density = lambda x: np.exp(est.score_samples(np.array([[x]])))[0]  # noqa: E731
    total, _ = integrate.quad(density, -30, 30, limit=200)
    assert abs(total - 1) < 1e-3


def test_mixture_of_gaussians_integrates_to_one_in_2d():
    rng = np.random.RandomState(0)
    x = rng.randn(400)
    X = np.column_stack([x, np.sign(x) * 2 + 0.3 * rng.randn(400)])
    est = fast_made(n_components=4, hidden_layer_sizes=(16,)).fit(X)
    assert est.distribution_ == "gaussian"
    grid = np.linspace(-9, 9, 721)
    step = grid[1] - grid[0]
    xx, yy = np.meshgrid(grid, grid)
    points = np.column_stack([xx.ravel(), yy.ravel()])
    total = np.exp(est.score_samples(points)).sum() * step**2
    assert abs(total - 1) < 1e-2


def test_mixture_beats_single_gaussian_on_bimodal_data():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(500) - 3, rng.randn(500) + 3])[:, None]
    X_test = np.concatenate([rng.randn(500) - 3, rng.randn(500) + 3])[:, None]
    single = fast_made(distribution="gaussian", n_components=1, max_iter=60).fit(X)
    mixture = fast_made(distribution="gaussian", n_components=2, max_iter=60).fit(X)
    assert mixture.score(X_test) > single.score(X_test) + 0.3


def test_mixed_continuous_and_categorical_integrates_to_one():
    rng = np.random.RandomState(0)
    codes = rng.randint(0, 3, 400)
    X = np.column_stack([codes, codes * 2.0 + rng.randn(400)])
    est = fast_made(n_components=2).fit(X)
    assert list(est.column_distributions_) == ["categorical", "gaussian"]
    total = 0.0
    for c in range(3):
        density = lambda y, c=c: np.exp(est.score_samples(np.array([[c, y]])))[0]  # noqa: E731
        total += integrate.quad(density, -40, 40, limit=200)[0]
    assert abs(total - 1) < 1e-3
    # The continuous column is in the units of X: rescaling it shifts every
    # log-density by -log(scale).
    scaled = fast_made(n_components=2).fit(X * [1, 10])
    assert_allclose(
        scaled.score_samples(X[:20] * [1, 10]),
        est.score_samples(X[:20]) - np.log(10),
        atol=1e-4,
    )


# ---------------------------------------------------------------- sampling


def _table_made(kinds, sizes, hidden, seed=0, direct=False, n_masks=3):
    family = Table(kinds, sizes)
    made, _ = random_made(
        len(kinds),
        hidden,
        n_masks,
        None,
        seed=seed,
        direct=direct,
        input_sizes=family.input_sizes,
        output_sizes=family.output_sizes,
    )
    with torch.no_grad():
        for layer in made.masked_layers:
            layer.weight.mul_(2.0)
    return family, made.double()


@pytest.mark.parametrize("hidden", [(), (6,), (40, 7)])
@pytest.mark.parametrize("direct", [False, True])
def test_incremental_sampling_matches_naive_for_tables(hidden, direct):
    kinds = ["categorical", "gaussian", "bernoulli", "categorical", "gaussian"]
    sizes = [4, 1, 1, 7, 3]
    family, made = _table_made(kinds, sizes, hidden, direct=direct)
    noise = family.noise((300, 5), torch.Generator().manual_seed(3)).double()
    for k in range(made.n_masks):
        naive = sample_naive(made, family, k, noise)
        fast = sample_incremental(made, family, k, noise)
        assert_allclose(fast.numpy(), naive.numpy(), atol=1e-9)


@pytest.mark.parametrize("family", [MixtureOfGaussians(3), Categorical(5)])
def test_incremental_sampling_matches_naive_for_block_families(family):
    kinds = ["gaussian" if family.name == "gaussian" else "categorical"] * 6
    sizes = [getattr(family, "n_components", None) or family.n_categories] * 6
    table, made = _table_made(kinds, sizes, (12,))
    noise = table.noise((200, 6), torch.Generator().manual_seed(1)).double()
    naive = sample_naive(made, table, 0, noise)
    assert_allclose(sample_incremental(made, table, 0, noise).numpy(), naive.numpy())


def test_categorical_sample_frequencies_match_the_model():
    sizes = (3, 4)
    X = _categorical_chain(600, sizes)
    est = fast_made(distribution="categorical").fit(X)
    grid = _grid(sizes)
    expected = np.exp(est.score_samples(grid)) * 20000
    samples = est.sample(20000, random_state=0)
    cells = (samples[:, 0] * 4 + samples[:, 1]).astype(int)
    observed = np.bincount(cells, minlength=12)
    _, p_value = stats.chisquare(observed, expected * 20000 / expected.sum())
    assert p_value > 1e-3


def test_mixture_samples_match_the_model():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(400) - 3, 0.5 * rng.randn(400) + 2])[:, None]
    est = fast_made(distribution="gaussian", n_components=3).fit(X)
    samples = est.sample(5000, random_state=0)[:, 0]
    cdf = np.vectorize(
        lambda x: integrate.quad(
            lambda t: np.exp(est.score_samples(np.array([[t]])))[0], -30, x
        )[0]
    )
    grid = np.linspace(-6, 5, 12)
    empirical = (samples[:, None] <= grid).mean(axis=0)
    assert_allclose(empirical, cdf(grid), atol=0.025)


# ---------------------------------------------------------------- inputs and errors


def test_auto_picks_a_family_per_column():
    rng = np.random.RandomState(0)
    X = np.column_stack(
        [
            rng.rand(100) < 0.5,  # 0/1
            rng.randint(1, 6, 100),  # few integers
            rng.randn(100),  # continuous
            rng.randint(0, 50, 100),  # many integers: continuous
        ]
    ).astype(float)
    est = fast_made(max_iter=2).fit(X)
    assert list(est.column_distributions_) == [
        "bernoulli",
        "categorical",
        "gaussian",
        "gaussian",
    ]
    assert est.categories_[0] is None
    assert_array_equal(est.categories_[1], [1, 2, 3, 4, 5])
    est = fast_made(max_iter=2, max_categories=60).fit(X)
    assert est.column_distributions_[3] == "categorical"
    est = fast_made(max_iter=2, distribution=["auto", "gaussian", "auto", "auto"]).fit(
        X
    )
    assert est.column_distributions_[1] == "gaussian"


@pytest.mark.parametrize(
    "distribution, message",
    [
        (["gaussian", "gaussian"], "has 2 entries but X has 3 columns"),
        (["gaussian", "poisson", "auto"], "got 'poisson'"),
        (["bernoulli", "auto", "auto"], "values other than 0 and 1"),
    ],
)
def test_bad_per_column_distribution(distribution, message):
    X = np.random.RandomState(0).randint(0, 3, (50, 3)).astype(float)
    with pytest.raises(ValueError, match=message):
        fast_made(distribution=distribution).fit(X)


def test_unknown_category_error_or_minus_infinity():
    X = _categorical_chain(200, (3, 3))
    est = fast_made(distribution="categorical").fit(X)
    odd = np.array([[0.0, 1.0], [5.0, 1.0]])
    with pytest.raises(ValueError, match=r"Column 0 contains categories \[5.0\]"):
        est.score_samples(odd)
    est.set_params(handle_unknown="ignore")
    scores = est.score_samples(odd)
    assert np.isfinite(scores[0]) and scores[1] == -np.inf
    features = est.score_features(odd)
    assert features[1, 0] == -np.inf and np.isfinite(features[1, 1])
    assert_allclose(features[0].sum(), scores[0])


def test_pandas_categorical_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    color = rng.choice(["red", "green", "blue"], 300)
    size = np.where(color == "red", 2.0, 1.0) + 0.3 * rng.randn(300)
    frame = pd.DataFrame(
        {
            "color": pd.Categorical(color, categories=["red", "green", "blue"]),
            "size": size,
            "shape": rng.choice(["round", "square"], 300),  # object dtype
        }
    )
    est = fast_made(max_iter=20).fit(frame)
    assert list(est.column_distributions_) == ["categorical", "gaussian", "categorical"]
    assert list(est.categories_[0]) == ["red", "green", "blue"]
    assert list(est.categories_[2]) == ["round", "square"]
    assert_array_equal(est.feature_names_in_, ["color", "size", "shape"])
    scores = est.score_samples(frame)
    assert np.isfinite(scores).all()
    # Same rows as plain strings (object dtype) score the same.
    as_objects = frame.astype({"color": object})
    assert_allclose(est.score_samples(as_objects), scores)
    samples = est.sample(10, random_state=0)
    assert list(samples.columns) == ["color", "size", "shape"]
    assert list(samples["color"].cat.categories) == ["red", "green", "blue"]
    assert set(samples["shape"]) <= {"round", "square"}
    unknown = frame.head(3).astype({"color": object})
    unknown.loc[0, "color"] = "purple"
    with pytest.raises(ValueError, match="'color' contains categories"):
        est.score_samples(unknown)
    missing = frame.head(3).astype({"shape": object})
    missing.loc[1, "shape"] = None
    with pytest.raises(ValueError, match="missing values"):
        est.score_samples(missing)
    with pytest.raises(ValueError, match=r"categorical .*dtype"):
        fast_made(distribution="gaussian").fit(frame)


def test_categorical_fit_is_reproducible_and_warm_starts():
    X = _categorical_chain(200, (3, 4, 2))
    a = fast_made(distribution="categorical").fit(X).score_samples(X)
    b = fast_made(distribution="categorical").fit(X).score_samples(X)
    assert_array_equal(a, b)
    est = fast_made(distribution="categorical", warm_start=True, max_iter=5).fit(X)
    before = est.score(X)
    est.fit(X)
    assert est.score(X) != before
    with pytest.raises(ValueError, match=r"contains categories"):
        est.score_samples(X + 10)


@pytest.mark.parametrize("hidden", [(), (9,), (30, 4)])
@pytest.mark.parametrize("direct", [False, True])
def test_autoregressive_property_with_one_hot_blocks(hidden, direct):
    kinds = ["categorical", "gaussian", "categorical", "bernoulli", "gaussian"]
    family, made = _table_made(kinds, [3, 1, 4, 1, 2], hidden, direct=direct)
    in_variable = np.repeat(np.arange(5), family.input_sizes)
    out_variable = np.repeat(np.arange(5), family.output_sizes)
    # Seeded, and enough rows that some unit of the 4-wide layer is active (with
    # two unseeded rows all four could be off, and then no path is used).
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, len(in_variable), dtype=torch.float64, generator=gen)
    for k in range(made.n_masks):
        jacobian = torch.autograd.functional.jacobian(
            lambda x, k=k: made(x, k).sum(0), x
        )
        depends = jacobian.abs().sum(dim=1).numpy()  # (n_out, n_in)
        position = np.empty(5, dtype=int)
        position[made.orderings[k].numpy()] = np.arange(5)
        allowed = position[in_variable][None, :] < position[out_variable][:, None]
        assert np.all(depends[~allowed] == 0)
        if hidden == (30, 4) or direct:  # wide or direct: some allowed path is used
            assert depends[allowed].sum() > 0


# ---------------------------------------------------------------- the skeleton


def test_every_family_is_a_family_instance():
    from skmade._families import Bernoulli, Family, Gaussian
    from skmade._table import column_family

    families = [Bernoulli(), Gaussian(), MixtureOfGaussians(3), Categorical(4)]
    families += [Table(["bernoulli", "categorical", "gaussian"], [1, 3, 2])]
    families += [column_family(k, 2) for k in ("bernoulli", "categorical", "gaussian")]
    for family in families:
        assert isinstance(family, Family), family


def test_table_draws_every_column_as_its_family_does():
    kinds = ["bernoulli", "categorical", "gaussian", "gaussian", "categorical"]
    table = Table(kinds, [1, 4, 1, 3, 4])
    generator = torch.Generator().manual_seed(0)
    n = 50
    params = torch.randn(n, int(table.out_starts[-1]), generator=generator)
    noise = table.noise((n, len(kinds)), generator)
    drawn = table.draw(params, noise)
    for d in range(len(kinds)):
        block = params[:, table.out_starts[d] : table.out_starts[d + 1]]
        expected = table.draw_variable(d, block.T, noise[:, d])
        assert_array_equal(drawn[:, d].numpy(), expected.numpy())


def test_column_codec_round_trips_and_carries_the_jacobian():
    from skmade._columns import ColumnCodec

    rng = np.random.RandomState(0)
    X = np.column_stack(
        [rng.randint(0, 2, 40), rng.choice([10, 12, 13], 40), rng.randn(40) * 5 + 3]
    ).astype(float)
    kinds = ["bernoulli", "categorical", "gaussian"]
    codec = ColumnCodec.fit(X, np.ones(40), kinds)
    assert codec.distribution == "mixed"
    assert_array_equal(codec.categories[1], [10, 11, 12, 13])  # the integer range
    Z = codec.to_internal(X)
    assert set(np.unique(Z[:, 1])) <= {0, 2, 3}
    assert abs(Z[:, 2].mean()) < 1e-12 and abs(Z[:, 2].std() - 1) < 1e-12
    assert_allclose(codec.from_internal(Z.copy()), X)
    assert codec.log_jacobian() == pytest.approx(-np.log(X[:, 2].std()))
    Z_bad, impossible = codec.scoring_values(np.array([[1.0, 11.0, 1e300]]))
    assert_array_equal(impossible, [[False, False, True]])
    assert Z_bad[0, 2] == 0.0
    with pytest.raises(ValueError, match="categories"):
        codec.check_values(np.array([[1.0, 14.0, 0.0]]))


def test_maf_refuses_categorical_columns_by_name():
    import pandas as pd

    from skmade import MAFDensity

    frame = pd.DataFrame({"x": np.arange(10.0), "colour": ["red", "blue"] * 5})
    with pytest.raises(ValueError, match=r"continuous columns only.*MADEDensity"):
        MAFDensity(max_iter=1).fit(frame)
