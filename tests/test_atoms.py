"""Atoms: continuous columns that repeat values get point masses of the floor's
width."""

import math

import joblib
import numpy as np
import pytest
from conftest import fast_made
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate

from skmade._columns import find_atoms
from skmade._families import Gaussian, MixtureOfGaussians
from skmade._table import Table


def _inflated(n, seed=0):
    """A zero-inflated column (40 % exact zeros) and a column that follows it."""
    rng = np.random.RandomState(seed)
    x = np.where(rng.rand(n) < 0.4, 0.0, rng.gamma(2.0, 1.0, n))
    return np.column_stack([x, x + 0.5 * rng.randn(n)])


def test_find_atoms_takes_heavy_repeated_values_only():
    rng = np.random.RandomState(0)
    w = np.ones(1000)
    assert find_atoms(rng.randn(1000), w) is None  # nothing repeats
    column = np.concatenate([np.zeros(300), np.full(9, 7.0), rng.randn(691)])
    assert_array_equal(find_atoms(column, w), [0.0])  # 9 rows < 1 % of 1,000
    assert_array_equal(find_atoms(column, np.where(column == 7.0, 2.0, 1.0)), [0, 7])
    # At most max_atoms, the heaviest, in increasing order.
    lattice = np.repeat(np.arange(10.0), np.arange(10, 20))
    assert_array_equal(find_atoms(lattice, np.ones(lattice.size), 3), [7, 8, 9])
    with_missing = np.concatenate([np.zeros(10), np.full(10, np.nan), rng.randn(5)])
    assert_array_equal(find_atoms(with_missing, np.ones(25)), [0.0])


def test_atoms_are_found_on_training_rows_in_model_units():
    X = _inflated(500)
    est = fast_made().fit(X)
    atoms = est._columns_.atoms
    assert atoms[1] is None
    assert_allclose(atoms[0], [(0.0 - est.mean_[0]) / est.scale_[0]])
    family = est._family()
    assert isinstance(family, Table)
    assert family.families[0].n_atoms == 1
    off = fast_made(atoms=False).fit(X)
    assert off._columns_.atoms is None
    assert isinstance(off._family(), MixtureOfGaussians)


def _across_atom(width, low, high, n_fine=2001, n_coarse=70001):
    """A grid fine within 12 floor widths of an atom at 0, coarse elsewhere."""
    return np.unique(
        np.concatenate(
            [
                np.linspace(-12 * width, 12 * width, n_fine),
                np.linspace(low, high, n_coarse),
            ]
        )
    )


@pytest.mark.parametrize("n_components", [1, 3])
def test_a_column_with_an_atom_integrates_to_one_in_1d(n_components):
    X = _inflated(600)[:, :1]
    est = fast_made(n_components=n_components).fit(X)
    assert est._columns_.atoms is not None
    width = math.exp(Gaussian.LOG_SCALE_MIN) * est.scale_[0]
    xs = _across_atom(width, -30.0, 40.0)
    density = np.exp(est.score_samples(xs[:, None]))
    assert abs(integrate.trapezoid(density, xs) - 1) < 1e-3
    # The atom's mass, about its 40 % of the rows, lies within a few widths of it.
    near = np.abs(xs) <= 6 * width
    mass = integrate.trapezoid(density[near], xs[near])
    assert 0.3 < mass < 0.5
    # Its density there is that mass spread over a Gaussian of the floor's width.
    peak = est.score_samples(np.zeros((1, 1)))[0]
    expected = np.log(mass) - np.log(width) - 0.5 * np.log(2 * np.pi)
    assert abs(peak - expected) < 0.05


def test_a_table_with_an_atom_integrates_to_one_in_2d():
    X = _inflated(600)
    est = fast_made(n_components=2).fit(X)
    width = math.exp(Gaussian.LOG_SCALE_MIN) * est.scale_[0]
    # x: a fine grid across the atom and a coarse one elsewhere; y: a plain grid.
    xs = np.unique(
        np.concatenate(
            [np.linspace(-12 * width, 12 * width, 801), np.linspace(-6, 20, 2601)]
        )
    )
    ys = np.linspace(-10, 25, 701)
    xx, yy = np.meshgrid(xs, ys, indexing="ij")
    p = np.exp(est.score_samples(np.column_stack([xx.ravel(), yy.ravel()])))
    p = p.reshape(xx.shape)
    total = integrate.trapezoid(integrate.trapezoid(p, ys, axis=1), xs)
    assert abs(total - 1) < 2e-3


def test_atoms_fit_repeated_values_far_better_and_sample_them():
    X, X_test = _inflated(500), _inflated(400, seed=1)
    est = fast_made(max_iter=40).fit(X)
    off = fast_made(max_iter=40, atoms=False).fit(X)
    # A component that the network must place on the zeros reaches less of them.
    assert est.score(X_test) > off.score(X_test) + 0.2
    draws = est.sample(2000, random_state=0)
    at_atom = np.abs(draws[:, 0]) < 10 * math.exp(-7) * est.scale_[0]
    assert abs(at_atom.mean() - 0.4) < 0.05


def test_atoms_are_reproducible_and_survive_persistence(tmp_path):
    X = _inflated(300)
    a, b = fast_made().fit(X), fast_made().fit(X)
    assert_array_equal(a.score_samples(X), b.score_samples(X))
    joblib.dump(a, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    assert_array_equal(loaded.score_samples(X), a.score_samples(X))
    assert_array_equal(loaded.sample(5, random_state=1), a.sample(5, random_state=1))


def test_conditional_sampling_and_score_features_with_atoms():
    X = _inflated(400)
    est = fast_made(allow_missing=True).fit(X)
    given = np.array([[np.nan, 1.0], [0.0, np.nan]])
    draws = est.sample(1, random_state=0, given=given)
    assert draws[0, 1] == 1.0 and draws[1, 0] == 0.0
    assert np.isfinite(draws).all()
    features = est.score_features(X[:5])
    assert features.shape == (5, 2) and np.isfinite(features).all()
    assert np.isfinite(est.score_samples(X)).all()


def test_atoms_with_categorical_and_missing_columns():
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.randint(0, 3, 400), _inflated(400)])
    est = fast_made(n_components=2).fit(X)
    assert list(est.column_distributions_) == ["categorical", "gaussian", "gaussian"]
    assert est._family().families[1].n_atoms == 1
    assert np.isfinite(est.score_samples(X)).all()
    X_missing = X.copy()
    X_missing[rng.rand(400) < 0.2, 1] = np.nan
    missing = fast_made(n_components=2, allow_missing=True).fit(X_missing)
    assert missing._columns_.atoms[1] is not None
    assert np.isfinite(missing.score_samples(X_missing)).all()


def test_a_failed_refit_keeps_the_old_atoms_and_model(monkeypatch):
    import torch

    X = _inflated(300)
    est = fast_made(max_iter=5).fit(X)
    atoms, scores = est._columns_.atoms, est.score_samples(X)
    # New data with an atom in the second column too: an interrupt in the
    # refit's first step must not leave the new atoms beside the old network.
    shifted = X.copy()
    shifted[:100, 1] = 1.25

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.optim.Adam, "step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.fit(shifted)
    monkeypatch.undo()
    for kept, old in zip(est._columns_.atoms, atoms, strict=True):
        assert_array_equal(kept, old)
    assert_array_equal(est.score_samples(X), scores)
    # And a refit that succeeds finds the new atoms.
    refit = fast_made(max_iter=5).fit(shifted)
    assert refit._columns_.atoms[1] is not None and atoms[1] is None
