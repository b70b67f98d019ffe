from itertools import pairwise

import numpy as np
import pytest

from skmade._masks import check_ordering, input_degrees, make_degrees, make_orderings


def test_input_degrees_follow_the_ordering():
    orderings = np.array([[2, 0, 1], [0, 1, 2]])
    # Feature 2 comes first under mask 0, so it has degree 1.
    np.testing.assert_array_equal(input_degrees(orderings), [[2, 3, 1], [1, 2, 3]])


@pytest.mark.parametrize("hidden", [(5,), (3, 40), (64, 64, 2)])
@pytest.mark.parametrize("n_features", [1, 2, 7])
def test_hidden_degrees_respect_the_paper_range(hidden, n_features):
    rng = np.random.RandomState(0)
    orderings = make_orderings("random", n_features, 4, True, rng)
    degrees = make_degrees(orderings, hidden, rng)
    assert [d.shape for d in degrees] == [(4, n_features)] + [(4, h) for h in hidden]
    for previous, layer in pairwise(degrees):
        low = previous.min(axis=1, keepdims=True)
        assert np.all(layer >= low)
        assert np.all(layer <= max(n_features - 1, 1))


def test_orderings_natural_random_and_agnostic():
    rng = np.random.RandomState(0)
    natural = make_orderings("natural", 6, 3, False, rng)
    np.testing.assert_array_equal(natural, np.tile(np.arange(6), (3, 1)))
    shared = make_orderings("random", 6, 3, False, rng)
    assert all(np.array_equal(shared[0], row) for row in shared)
    agnostic = make_orderings("natural", 6, 5, True, rng)
    np.testing.assert_array_equal(agnostic[0], np.arange(6))
    assert len({tuple(row) for row in agnostic}) > 1
    for row in agnostic:
        np.testing.assert_array_equal(np.sort(row), np.arange(6))


@pytest.mark.parametrize(
    "ordering, match",
    [
        ([0, 1], "length 3"),
        ([0, 1, 1], "permutation of range\\(3\\)"),
        ([0, 1, 3], "permutation of range\\(3\\)"),
        ([0.5, 1, 2], "integer feature indices"),
        ([[0, 1, 2]], "shape \\(1, 3\\)"),
    ],
)
def test_check_ordering_rejects_non_permutations(ordering, match):
    with pytest.raises(ValueError, match=match):
        check_ordering(ordering, 3)


def test_check_ordering_accepts_integer_valued_floats():
    np.testing.assert_array_equal(check_ordering([2.0, 0.0, 1.0], 3), [2, 0, 1])


def test_an_ordering_per_mask():
    given = np.array([[2, 0, 1, 3], [3, 2, 1, 0], [0, 1, 2, 3]])
    rng = np.random.RandomState(0)
    np.testing.assert_array_equal(make_orderings(given, 4, 3, False, rng), given)
    with pytest.raises(ValueError, match=r"shape \(n_masks, n_features\) = \(2, 4\)"):
        make_orderings(given, 4, 2, False, rng)
    with pytest.raises(ValueError, match="permutation of range\\(4\\)"):
        make_orderings([[0, 1, 2, 3], [0, 0, 1, 2]], 4, 2, False, rng)


def test_an_estimator_with_an_ordering_per_mask_is_normalized():
    from conftest import all_binary_vectors

    from skmade import MADEDensity

    X = (np.random.RandomState(1).rand(200, 4) < 0.4).astype(float)
    given = [[2, 0, 1, 3], [3, 2, 1, 0]]
    est = MADEDensity(
        hidden_layer_sizes=(12,), n_masks=2, ordering=given, max_iter=5, random_state=0
    ).fit(X)
    np.testing.assert_array_equal(est.orderings_, given)
    total = np.exp(est.score_samples(all_binary_vectors(4))).sum()
    assert total == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        MADEDensity(n_masks=3, ordering=given).fit(X)
