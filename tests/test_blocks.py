"""Degree blocks (skmade._blocks): the same layers as the plain masked path."""

import pickle
from itertools import pairwise

import numpy as np
import pytest
import torch
from conftest import allowed, dependence, random_made

from skmade import MADEDensity, _blocks
from skmade._blocks import block_linear, plan_blocks, seen_prefix
from skmade._nn import MADE


@pytest.fixture
def small_blocks(monkeypatch):
    """Cut even tiny layers into blocks (the cost model keeps them dense)."""
    monkeypatch.setattr(_blocks, "_BLOCK_OVERHEAD", 0)
    monkeypatch.setattr(_blocks, "_COLUMN_OVERHEAD", 0)
    monkeypatch.setattr(_blocks, "_GRAIN", 1)
    monkeypatch.setattr(MADE, "_BLOCK_GAIN", -1.0)
    monkeypatch.setattr(MADE, "_COPY_COST", 0)


def plain_and_blocked(made, x, k):
    """Outputs and (masked) gradients of both paths for one mask."""
    results = []
    for use_blocks in (False, True):
        made.use_blocks = use_blocks
        made.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_()
        out = made(inputs, k)
        # A loss that weighs every output differently.
        weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        (out * weights).sum().backward()
        made.mask_grads(k, penalty_scale=0.1)
        grads = [p.grad.clone() for p in made.parameters() if p.grad is not None]
        results.append((out.detach(), inputs.grad, grads))
    del made.use_blocks  # back to the class default
    return results


def test_plan_covers_every_row_with_the_prefix_it_needs():
    rng = np.random.RandomState(0)
    out_degrees = torch.from_numpy(np.sort(rng.randint(1, 100, size=700)))
    in_degrees = torch.arange(1, 101)
    for strict in (False, True):
        prefix = seen_prefix(out_degrees, in_degrees, strict)
        blocks = plan_blocks(prefix, 100)
        assert blocks.parts[0][0] == 0 and blocks.parts[-1][1] == 700
        for (_, end, _), (first, _, _) in pairwise(blocks.parts):
            assert end == first  # contiguous
        for first, end, width in blocks.parts:
            assert width >= int(prefix[first:end].max())
        assert len(blocks.parts) > 1  # wide enough to be worth cutting
        assert blocks.work() < 0.8 * 700 * 100
    # A small layer stays one dense product.
    small = seen_prefix(torch.arange(1, 20), torch.arange(1, 11), False)
    assert plan_blocks(small, 10).dense


def test_block_linear_matches_the_masked_product_in_double():
    rng = np.random.RandomState(1)
    out_degrees = torch.from_numpy(np.sort(rng.randint(1, 30, size=40)))
    in_degrees = torch.arange(1, 31)
    prefix = seen_prefix(out_degrees, in_degrees, False)
    blocks = _blocks.Blocks(
        ((0, 10, int(prefix[9])), (10, 25, int(prefix[24])), (25, 40, 30))
    )
    mask = (out_degrees[:, None] >= in_degrees[None, :]).double()
    weight = (torch.randn(40, 30, dtype=torch.float64) * mask).requires_grad_()
    bias = torch.randn(40, dtype=torch.float64, requires_grad=True)
    x = torch.randn(7, 30, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.linear(x, weight, bias)
    torch.testing.assert_close(block_linear(x, weight, bias, blocks), expected)
    # Gradients inside the mask (the caller masks the rest).
    torch.autograd.gradcheck(lambda x, b: block_linear(x, weight, b, blocks), (x, bias))
    grad_out = torch.randn(7, 40, dtype=torch.float64)
    (got,) = torch.autograd.grad(
        block_linear(x, weight, bias, blocks), weight, grad_out
    )
    (want,) = torch.autograd.grad(expected, weight, grad_out)
    torch.testing.assert_close(got * mask, want * mask)


def test_block_linear_sorts_the_weight_and_masks_its_gradient():
    # The weight and bias in their own layout, sorted on the way in by a layout;
    # the gradients come back in the same own layout, masked.
    gen = torch.Generator().manual_seed(4)
    out_degrees = torch.randint(1, 30, (40,), generator=gen)
    in_degrees = torch.randperm(30, generator=gen) + 1
    rows, cols = torch.argsort(out_degrees), torch.argsort(in_degrees)
    prefix = seen_prefix(out_degrees[rows], in_degrees[cols], False)
    blocks = _blocks.Blocks(((0, 13, int(prefix[12])), (13, 40, 30)))
    mask = (out_degrees[:, None] >= in_degrees[None, :]).double()
    weight = torch.randn(40, 30, dtype=torch.float64, generator=gen)
    bias = torch.randn(40, dtype=torch.float64, generator=gen)
    x = torch.randn(6, 30, dtype=torch.float64, generator=gen)
    expected = torch.nn.functional.linear(x, weight * mask, bias)[:, rows]
    for layout, given in (
        (_blocks.Layout.of(rows, cols), mask),  # masked by the product
        (_blocks.Layout.of(rows, cols, blocks, prefix), None),  # by its holes
    ):
        w = (weight * mask).requires_grad_()
        b = bias.clone().requires_grad_()
        out = block_linear(x[:, cols], w, b, blocks, layout, given)
        torch.testing.assert_close(out, expected)
        grad_out = torch.randn(out.shape, dtype=torch.float64, generator=gen)
        grad_w, grad_b = torch.autograd.grad(out, (w, b), grad_out)
        want_w, want_b = torch.autograd.grad(
            torch.nn.functional.linear(x, w * mask, b)[:, rows], (w, b), grad_out
        )
        torch.testing.assert_close(grad_w, want_w)  # zero outside the mask
        torch.testing.assert_close(grad_b, want_b)
        torch.autograd.gradcheck(
            lambda x, b, w=w, layout=layout, given=given: block_linear(
                x, w, b, blocks, layout, given
            ),
            (x[:, cols].requires_grad_(), b),
        )


def test_one_mask_blocked_gradients_come_back_masked(small_blocks, monkeypatch):
    # Two blocks a layer: most rows' products reach beyond what their mask sees.
    monkeypatch.setattr(_blocks, "_MAX_BLOCKS", 2)
    made, _ = random_made(10, (30,), 1, n_params=1, direct=True, seed=5)
    x = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    made.train()
    made(x, 0).square().sum().backward()
    plan = made.block_plan(0)
    assert plan is not None and made._grads_masked
    assert all(len(layout.holes[0]) for layout in plan.layouts)
    for layer, mask in zip(made.masked_layers, made.masks(0), strict=True):
        assert torch.all(layer.weight.grad[mask == 0] == 0)
        assert layer.weight.grad[mask == 1].abs().sum() > 0


@pytest.mark.parametrize(
    "n_features, hidden, n_masks, n_params, direct",
    [
        (12, (40,), 1, 1, False),
        (12, (40,), 1, 2, True),
        (12, (30, 25), 3, 1, True),
        (9, (20, 20, 20), 2, 2, False),
        (7, (), 1, 1, True),
    ],
)
def test_blocked_forward_and_gradients_match_the_plain_path(
    small_blocks, n_features, hidden, n_masks, n_params, direct
):
    made, _ = random_made(
        n_features, hidden, n_masks, n_params=n_params, direct=direct, seed=2
    )
    x = torch.randn(5, n_features, generator=torch.Generator().manual_seed(3))
    for k in range(n_masks):
        assert made.block_plan(k) is not None
        (out, gx, grads), (out_b, gx_b, grads_b) = plain_and_blocked(made, x, k)
        torch.testing.assert_close(out_b, out, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(gx_b, gx, rtol=1e-6, atol=1e-6)
        for g, g_b in zip(grads, grads_b, strict=True):
            torch.testing.assert_close(g_b, g, rtol=1e-6, atol=1e-6)


def test_blocked_forward_with_one_hot_blocks_and_any_order(small_blocks):
    sizes_in, sizes_out = [1, 3, 1, 4, 2], [2, 3, 1, 4, 2]
    made, _ = random_made(
        5, (24, 24), 2, n_params=None, input_sizes=sizes_in, output_sizes=sizes_out
    )
    x = torch.rand(6, sum(sizes_in), generator=torch.Generator().manual_seed(0))
    for k in range(2):
        (out, gx, _), (out_b, gx_b, _) = plain_and_blocked(made, x, k)
        torch.testing.assert_close(out_b, out, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(gx_b, gx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("precision", [None, torch.bfloat16])
@pytest.mark.parametrize("direct", [False, True])
def test_blocked_path_is_autoregressive(small_blocks, direct, precision):
    # Training mode, where mixed precision casts the products to bfloat16.
    made, orderings = random_made(8, (30, 30), 3, n_params=2, direct=direct)
    made.set_precision(precision)
    made.train()
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    for k in range(made.n_masks):
        assert made.block_plan(k) is not None
        depends = dependence(made, k, x)
        ok = allowed(orderings[k])
        for p in range(2):
            assert torch.all(depends[p][~ok] == 0), (k, p)
            assert depends[p][ok].abs().sum() > 0, (k, p)


def test_wide_estimator_scores_and_trains_as_the_plain_path():
    # A layer wide enough for the default cost model to cut it into blocks.
    X = (np.random.RandomState(0).rand(300, 120) < 0.3).astype(float)
    params = dict(
        hidden_layer_sizes=(600,), ordering="random", max_iter=2, random_state=0
    )
    blocked = MADEDensity(**params).fit(X)
    plan = blocked.module_.block_plan(0)
    assert plan is not None and not all(b.dense for b in plan.blocks)
    scores = blocked.score_samples(X)
    assert blocked.module_._sorted_cache  # inference keeps the sorted weights
    # Pickles drop the plans and the sorted weights, and rebuild them.
    restored = pickle.loads(pickle.dumps(blocked))
    assert not restored.module_._sorted_cache
    np.testing.assert_allclose(restored.score_samples(X), scores, rtol=1e-5)
    blocked.module_.use_blocks = False
    np.testing.assert_allclose(blocked.score_samples(X), scores, rtol=1e-5)
    # A parameter changed in place (as by an optimizer step) is seen at once.
    restored.module_.use_blocks = True
    with torch.no_grad():
        restored.module_.layers[0].bias.add_(0.5)
    changed = restored.score_samples(X)
    assert not np.allclose(changed, scores)
    restored.module_.use_blocks = False
    np.testing.assert_allclose(restored.score_samples(X), changed, rtol=1e-5)
    # Training (a fused optimizer, which moves no version counter) is seen too.
    trained = blocked.set_params(warm_start=True, max_iter=1)
    trained.module_.use_blocks = True
    before = trained.score_samples(X)
    trained.partial_fit(X)
    after = trained.score_samples(X)
    assert not np.allclose(after, before)
    trained.module_.use_blocks = False
    np.testing.assert_allclose(trained.score_samples(X), after, rtol=1e-5)


def test_blocked_path_under_mixed_precision_matches_the_plain_path(small_blocks):
    made, _ = random_made(12, (40, 30), 2, n_params=2, direct=True, seed=4)
    made.set_precision(torch.bfloat16)
    made.train()
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(5))
    for k in range(2):
        assert made.block_plan(k) is not None
        (out, gx, grads), (out_b, gx_b, grads_b) = plain_and_blocked(made, x, k)
        assert out.dtype == out_b.dtype == torch.float32
        # Both paths round to bfloat16 (8 bits of mantissa); they differ by the
        # order of their float32 sums and the rounding of the outputs.
        torch.testing.assert_close(out_b, out, rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(gx_b, gx, rtol=2e-2, atol=2e-2)
        for g, g_b in zip(grads, grads_b, strict=True):
            assert g_b.dtype == torch.float32
            torch.testing.assert_close(g_b, g, rtol=2e-2, atol=2e-2)
    made.set_precision(None)
