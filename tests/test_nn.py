import numpy as np
import pytest
import torch
from conftest import allowed, dependence, random_made


@pytest.mark.parametrize(
    "n_features, hidden",
    [
        (1, (4,)),
        (2, (3,)),
        (6, ()),
        (6, (16,)),
        (8, (3,)),
        (8, (12, 5)),
        (5, (2, 2, 9)),
    ],
)
@pytest.mark.parametrize("n_params", [1, 2])
@pytest.mark.parametrize("direct", [False, True])
def test_autoregressive_property_for_every_mask(n_features, hidden, n_params, direct):
    made, orderings = random_made(
        n_features, hidden, 4, n_params=n_params, direct=direct
    )
    x = torch.randn(3, n_features, generator=torch.Generator().manual_seed(1))
    for k in range(made.n_masks):
        depends = dependence(made, k, x)  # (p, d, j)
        ok = allowed(orderings[k])  # ok[d, j]: j before d
        for p in range(n_params):
            assert torch.all(depends[p][~ok] == 0), (k, p)
        np.testing.assert_array_equal(made.orderings[k].numpy(), orderings[k])


def test_wide_network_uses_every_allowed_connection():
    # The masks must not be stricter than necessary: with wide layers every output
    # sees every variable before it (the test above only checks the forbidden ones).
    made, orderings = random_made(5, (200,), n_masks=1)
    x = torch.randn(2, 5)
    assert torch.all(dependence(made, 0, x)[0][allowed(orderings[0])] > 0)


def test_narrow_layer_outputs_keep_their_bias():
    made, _ = random_made(8, (2,), n_masks=3, seed=3)
    x = torch.zeros(1, 8)
    with torch.no_grad():
        made.layers[-1].bias.copy_(torch.arange(8.0))
        for k in range(3):
            params = made(x, k)
            # Every output is finite and carries its bias even where no hidden unit
            # feeds it.
            assert torch.isfinite(params).all()
            unfed = made.masks(k)[-1].sum(dim=1) == 0
            assert unfed.any()
            np.testing.assert_allclose(params[0, 0][unfed], torch.arange(8.0)[unfed])


def test_weights_unused_by_every_mask_are_exactly_zero():
    made, _ = random_made(10, (30, 30), n_masks=2)
    for i, layer in enumerate(made.layers):
        used = made.masks(0)[i].bool() | made.masks(1)[i].bool()
        assert torch.all(layer.weight[~used] == 0)
        assert torch.all(layer.weight[used] != 0)


def test_same_generator_seed_gives_same_weights():
    a, _ = random_made(6, (10,), n_masks=2, seed=4)
    b, _ = random_made(6, (10,), n_masks=2, seed=4)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


@pytest.mark.parametrize("n_masks", [1, 3])
def test_direct_connections_reach_every_earlier_variable(n_masks):
    # Even with a hidden layer of one unit, direct weights connect each output to
    # every variable before it (and to nothing else).
    made, orderings = random_made(6, (1,), n_masks=n_masks, direct=True)
    x = torch.randn(2, 6)
    for k in range(n_masks):
        depends, ok = dependence(made, k, x)[0], allowed(orderings[k])
        assert torch.all(depends[ok] > 0)
        assert torch.all(depends[~ok] == 0)


@pytest.mark.parametrize("hidden", [(), (6,), (9, 5)])
@pytest.mark.parametrize("direct", [False, True])
def test_row_orderings_are_autoregressive_per_row(hidden, direct):
    # With any_order, every row is an exact autoregressive model in its own
    # ordering: output d of row n depends only on the variables before d in row n.
    made, orderings = random_made(6, hidden, 2, n_params=2, direct=direct)
    made.any_order = True
    generator = torch.Generator().manual_seed(0)
    n = 4
    positions = torch.stack(
        [torch.randperm(6, generator=generator) + 1 for _ in range(n)]
    )
    x = torch.randn(n, 6, generator=generator)
    for k in range(made.n_masks):
        jacobian = torch.autograd.functional.jacobian(
            lambda x, k=k: made.forward_rows(x, k, positions), x
        )  # (n, P, D, n, D)
        for row in range(n):
            depends = jacobian[row, :, :, row, :].abs()  # (P, D out, D in)
            before = positions[row][None, :] < positions[row][:, None]
            assert torch.all(depends[:, ~before] == 0)
            if hidden == (9, 5) or direct:
                assert depends[:, before].sum() > 0
        own = torch.as_tensor(np.argsort(orderings[k]) + 1).repeat(n, 1)
        torch.testing.assert_close(made.forward_rows(x, k, own), made(x, k))


def test_input_bounds_clip_the_context_in_every_pass():
    import pickle

    from skmade._masks import make_degrees, make_orderings
    from skmade._nn import MADE

    made, orderings = random_made(5, (16,), 2, n_params=2, direct=True)
    x = 3 * torch.randn(50, 5, generator=torch.Generator().manual_seed(2))
    unbounded = made(x, 0)
    low = torch.tensor([-1.0, -torch.inf, -1.0, -1.0, -1.0])
    high = torch.tensor([1.0, torch.inf, 0.5, 1.0, 1.0])
    clipped = torch.maximum(torch.minimum(x, high), low)
    made.set_input_bounds(low, high)
    torch.testing.assert_close(made(x, 0), made(clipped, 0))
    assert not torch.allclose(made(x, 0), unbounded)
    # Still autoregressive: output d depends on no variable at or after it.
    depends = dependence(made, 0, 0.5 * x[:3])
    ok = allowed(orderings[0])
    assert torch.all(depends[0][~ok] == 0) and torch.all(depends[1][~ok] == 0)
    # The bounds travel with the module.
    for copy in (MADE.from_arrays(made.to_arrays()), pickle.loads(pickle.dumps(made))):
        torch.testing.assert_close(copy(x, 0), made(x, 0))
        torch.testing.assert_close(copy.input_bounds()[1], high)
    made.set_input_bounds(None, None)
    torch.testing.assert_close(made(x, 0), unbounded)

    # Rows with their own orderings see the same clipped context.
    rng = np.random.RandomState(0)
    degrees = make_degrees(make_orderings("random", 5, 2, True, rng), (16,), rng)
    rows = MADE([torch.from_numpy(d) for d in degrees], 2, direct=True, any_order=True)
    rows.reset_parameters(torch.Generator().manual_seed(0))
    seeds = [torch.Generator().manual_seed(i) for i in range(50)]
    positions = torch.stack([torch.randperm(5, generator=g) for g in seeds]) + 1
    free = rows.forward_rows(x, 1, positions)
    rows.set_input_bounds(low, high)
    torch.testing.assert_close(
        rows.forward_rows(x, 1, positions), rows.forward_rows(clipped, 1, positions)
    )
    assert not torch.allclose(rows.forward_rows(x, 1, positions), free)
