import pytest
import torch
from conftest import random_made
from numpy.testing import assert_array_equal

from skmade._families import Bernoulli, Gaussian
from skmade._sampling import sample_incremental, sample_naive

ARCHITECTURES = [
    (1, (4,)),
    (2, (3,)),
    (7, ()),
    (9, (20,)),
    (12, (3,)),  # narrower than D: many outputs see only their bias
    (10, (16, 5)),
    (8, (2, 30, 4)),
]


def _made(
    n_features, hidden, family, n_masks=3, seed=0, dtype=torch.float64, direct=False
):
    made, _ = random_made(
        n_features, hidden, n_masks, family.n_params, seed=seed, direct=direct
    )
    # Informative conditionals: random biases, and for Bernoulli large weights (a
    # Gaussian chain with large weights would overflow through the autoregression).
    scale = 3.0 if family is Bernoulli else 0.5
    with torch.no_grad():
        for layer in made.masked_layers:
            if layer.bias is not None:
                generator = torch.Generator().manual_seed(seed)
                layer.bias.normal_(0, scale / 3, generator=generator)
            layer.weight.mul_(scale)
    return made.to(dtype)


@pytest.mark.parametrize("n_features, hidden", ARCHITECTURES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_incremental_bernoulli_draws_equal_naive_draws(n_features, hidden, dtype):
    made = _made(n_features, hidden, Bernoulli, dtype=dtype)
    noise = Bernoulli.noise((300, n_features), torch.Generator().manual_seed(1))
    noise = noise.to(dtype)
    for k in range(made.n_masks):
        naive = sample_naive(made, Bernoulli, k, noise)
        fast = sample_incremental(made, Bernoulli, k, noise)
        assert_array_equal(fast.numpy(), naive.numpy())
        assert 0 < naive.mean() < 1  # the draws are not degenerate


@pytest.mark.parametrize("n_features, hidden", ARCHITECTURES)
def test_incremental_gaussian_draws_equal_naive_draws(n_features, hidden):
    made = _made(n_features, hidden, Gaussian)
    noise = Gaussian.noise((200, n_features), torch.Generator().manual_seed(2))
    noise = noise.double()
    for k in range(made.n_masks):
        naive = sample_naive(made, Gaussian, k, noise)
        fast = sample_incremental(made, Gaussian, k, noise)
        assert torch.isfinite(naive).all() and naive.std() > 0.1
        torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)


def test_incremental_gaussian_draws_in_float32():
    made = _made(10, (16, 5), Gaussian, dtype=torch.float32)
    noise = Gaussian.noise((200, 10), torch.Generator().manual_seed(3))
    for k in range(made.n_masks):
        naive = sample_naive(made, Gaussian, k, noise)
        fast = sample_incremental(made, Gaussian, k, noise)
        torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-4)


def test_premasked_single_mask_network():
    made = _made(9, (6, 6), Bernoulli, n_masks=1)
    assert made.premasked
    noise = Bernoulli.noise((100, 9), torch.Generator().manual_seed(4)).double()
    assert_array_equal(
        sample_incremental(made, Bernoulli, 0, noise).numpy(),
        sample_naive(made, Bernoulli, 0, noise).numpy(),
    )


def test_cached_plan_follows_weight_changes():
    made = _made(8, (10, 6), Bernoulli, n_masks=2)
    noise = Bernoulli.noise((300, 8), torch.Generator().manual_seed(6)).double()
    before = sample_incremental(made, Bernoulli, 1, noise)
    with torch.no_grad():  # in place, as an optimizer step or load_state_dict does
        made.layers[-1].bias.sub_(2.0)
        made.layers[0].weight.mul_(-1.0)
    after = sample_incremental(made, Bernoulli, 1, noise)
    assert_array_equal(after.numpy(), sample_naive(made, Bernoulli, 1, noise).numpy())
    assert not torch.equal(after, before)


def test_incremental_sampler_follows_the_noise():
    # Draws respond to the noise (no constant output) and a single row works.
    made = _made(6, (12,), Bernoulli)
    generator = torch.Generator().manual_seed(5)
    a = sample_incremental(
        made, Bernoulli, 0, Bernoulli.noise((1, 6), generator).double()
    )
    assert a.shape == (1, 6)
    rows = sample_incremental(
        made, Bernoulli, 0, Bernoulli.noise((500, 6), generator).double()
    )
    assert len({tuple(r) for r in rows.tolist()}) > 5


@pytest.mark.parametrize("n_features, hidden", [(7, ()), (9, (20,)), (10, (16, 5))])
@pytest.mark.parametrize("family", [Bernoulli, Gaussian])
def test_incremental_sampling_with_direct_connections(n_features, hidden, family):
    made = _made(n_features, hidden, family, direct=True)
    noise = family.noise((200, n_features), torch.Generator().manual_seed(7)).double()
    for k in range(made.n_masks):
        naive = sample_naive(made, family, k, noise)
        fast = sample_incremental(made, family, k, noise)
        assert torch.isfinite(naive).all()
        torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("direct", [False, True])
def test_incremental_sampling_with_input_bounds(direct):
    # Narrow bounds: most draws fall outside them, so the inputs (clipped) and the
    # values (not clipped) differ, and both samplers must keep them apart.
    made = _made(6, (16, 5), Gaussian, direct=direct)
    low = torch.full((6,), -0.3, dtype=torch.float64)
    low[2] = -torch.inf  # an unbounded input
    made.set_input_bounds(low, torch.full((6,), 0.3, dtype=torch.float64))
    noise = Gaussian.noise((200, 6), torch.Generator().manual_seed(8)).double()
    for k in range(made.n_masks):
        naive = sample_naive(made, Gaussian, k, noise)
        fast = sample_incremental(made, Gaussian, k, noise)
        assert (naive.abs() > 0.3).float().mean() > 0.3  # values are not clipped
        torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)
    bounded = sample_incremental(made, Gaussian, 0, noise)
    made.set_input_bounds(None, None)  # the cached plan must follow
    unbounded = sample_incremental(made, Gaussian, 0, noise)
    torch.testing.assert_close(unbounded, sample_naive(made, Gaussian, 0, noise))
    assert not torch.allclose(unbounded, bounded)
