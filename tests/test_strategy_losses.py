"""Continual-strategy terms and the reservoir buffer against naive float64 versions of the papers'
equations (Python floats via ``tolist()``, sharing no code with the torch implementations)."""

from __future__ import annotations

import math

import pytest
import torch

from cassle.data.buffer import ReservoirBuffer
from cassle.losses.der import der_loss
from cassle.losses.ewc import ewc_penalty, fisher_from_grads
from cassle.losses.less_forget import adaptive_weight, less_forget_loss
from cassle.losses.lump import mixup, sample_mixup_lambda
from cassle.losses.pfr import pfr_loss
from cassle.losses.pod import pod_spatial_loss

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}
DTYPES = [torch.float64, torch.float32]


def rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def close(value, expected, dtype):
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), **TOL[dtype])


def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def flat(t):
    return t.flatten().tolist()


@pytest.mark.parametrize("dtype", DTYPES)
def test_ewc_penalty_is_half_lambda_fisher_weighted_squared_distance(dtype):
    params = [rand(3, 4, seed=1, dtype=dtype).requires_grad_(), rand(5, seed=2, dtype=dtype).requires_grad_()]
    anchors = [rand(3, 4, seed=3, dtype=dtype), rand(5, seed=4, dtype=dtype)]
    fisher = [rand(3, 4, seed=5, dtype=dtype).abs(), rand(5, seed=6, dtype=dtype).abs()]
    expected = (
        0.5
        * 7.0
        * sum(
            f * (p - a) ** 2
            for P, A, F in zip(params, anchors, fisher)
            for p, a, f in zip(flat(P.detach()), flat(A), flat(F))
        )
    )
    value = ewc_penalty(params, anchors, fisher, 7.0)
    close(value, expected, dtype)
    value.backward()  # d/dtheta = lambda * F * (theta - theta*)
    torch.testing.assert_close(params[1].grad, 7.0 * fisher[1] * (params[1].detach() - anchors[1]))


def test_fisher_is_mean_squared_gradient():
    grads = [[rand(2, 3, seed=s), rand(4, seed=s + 10)] for s in range(3)]
    fisher = fisher_from_grads(grads)
    for i in range(2):
        expected = [sum(flat(g[i])[k] ** 2 for g in grads) / 3 for k in range(grads[0][i].numel())]
        torch.testing.assert_close(fisher[i].flatten(), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_der_loss_is_mean_squared_distance_to_stored_projections(dtype):
    z, stored = rand(6, 5, seed=1, dtype=dtype), rand(6, 5, seed=2, dtype=dtype)
    expected = sum(sum((a - b) ** 2 for a, b in zip(r, s)) for r, s in zip(z.tolist(), stored.tolist())) / (6 * 5)
    close(der_loss(z, stored), expected, dtype)


def test_lump_mixup_and_lambda_distribution():
    x, xb = rand(2, 3, 4, 4, seed=1), rand(2, 3, 4, 4, seed=2)
    expected = [0.3 * a + 0.7 * b for a, b in zip(flat(x), flat(xb))]
    torch.testing.assert_close(mixup(x, xb, 0.3).flatten(), torch.tensor(expected, dtype=torch.float64))
    torch.manual_seed(0)
    lams = torch.stack([sample_mixup_lambda(0.4) for _ in range(1500)]).double()
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.1389 for a = 0.4 (uniform would be 0.0833)
    assert abs(lams.mean() - 0.5) < 0.035
    assert abs(lams.var() - 1 / (4 * 1.8)) < 0.02
    with pytest.raises(ValueError, match="lump_alpha"):
        sample_mixup_lambda(0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_less_forget_is_mean_cosine_distance(dtype):
    f, old = rand(6, 5, seed=1, dtype=dtype), rand(6, 5, seed=2, dtype=dtype)
    expected = sum(1 - cos(a, b) for a, b in zip(f.tolist(), old.tolist())) / 6
    close(less_forget_loss(f, old), expected, dtype)
    assert adaptive_weight(5.0, 40, 10) == pytest.approx(10.0)  # 5 * sqrt(40 / 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pfr_is_negative_cosine_similarity(dtype):
    p, old = rand(6, 5, seed=1, dtype=dtype), rand(6, 5, seed=2, dtype=dtype)
    expected = -sum(cos(a, b) for a, b in zip(p.tolist(), old.tolist())) / 6
    close(pfr_loss(p, old), expected, dtype)


def naive_pod(stages, stages_old):
    total = 0.0
    for h, g in zip(stages, stages_old):
        h, g = h.tolist(), g.tolist()
        per_image = []
        for hb, gb in zip(h, g):

            def embed(a):
                C, H, W = len(a), len(a[0]), len(a[0][0])
                # PODNet squares the maps before pooling them (pod(): a = torch.pow(a, 2))
                width = [sum(a[c][y][w] ** 2 for w in range(W)) for c in range(C) for y in range(H)]
                height = [sum(a[c][y][w] ** 2 for y in range(H)) for c in range(C) for w in range(W)]
                v = width + height
                n = math.sqrt(sum(x * x for x in v))
                return [x / n for x in v]

            e, o = embed(hb), embed(gb)
            per_image.append(math.sqrt(sum((a - b) ** 2 for a, b in zip(e, o))))
        total += sum(per_image) / len(per_image)
    return total / len(stages)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pod_spatial_against_pooled_width_height_distance(dtype):
    new = [rand(3, 4, 5, 6, seed=1, dtype=dtype), rand(3, 2, 3, 3, seed=2, dtype=dtype)]
    old = [rand(3, 4, 5, 6, seed=3, dtype=dtype), rand(3, 2, 3, 3, seed=4, dtype=dtype)]
    close(pod_spatial_loss(new, old), naive_pod(new, old), dtype)
    # Pooling loses positions along the pooled axis: a permutation of the width changes only the
    # height-pooled part, so the loss is not zero, but a model equal to the old one gives zero.
    assert float(pod_spatial_loss(old, old)) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------ the reservoir buffer
def _stream(buffer, n_items, batch, task_of=lambda i: 0):
    for start in range(0, n_items, batch):
        idx = torch.arange(start, min(start + batch, n_items))
        z = idx.float()[:, None].expand(-1, buffer.z_dim) if buffer.z_dim else None
        buffer.add(idx, idx % 7, task=int(task_of(start)), z=z)


def test_reservoir_fills_first_then_keeps_every_item_with_equal_probability():
    buf = ReservoirBuffer(50)
    _stream(buf, 30, 8)
    assert buf.num_filled() == 30 and buf.indices[:30].tolist() == list(range(30))
    # Inclusion frequency of each stream block over many streams: uniform (chi-square test).
    torch.manual_seed(0)
    trials, n_items, blocks = 150, 400, 10
    counts = torch.zeros(blocks)
    for _ in range(trials):
        buf = ReservoirBuffer(50)
        _stream(buf, n_items, 25)
        kept = buf.indices[:50]
        assert len(set(kept.tolist())) == 50  # each item offered once -> no duplicates
        counts += torch.bincount(kept // (n_items // blocks), minlength=blocks).float()
    expected = trials * 50 / blocks
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9, f"reservoir is not uniform over the stream: chi2 {chi2:.1f} (df 9, p 0.001)"
    # A first-come buffer (no replacement) keeps block 0 only: the test can fail.
    assert float(((torch.tensor([trials * 50.0] + [0] * 9) - expected) ** 2 / expected).sum()) > 27.9


def test_reservoir_balances_equal_size_tasks():
    torch.manual_seed(1)
    shares = torch.zeros(5)
    for _ in range(40):
        buf = ReservoirBuffer(100)
        _stream(buf, 1000, 20, task_of=lambda i: i // 200)  # 5 tasks of 200 images
        shares += torch.bincount(buf.tasks[:100], minlength=5).float()
    shares /= shares.sum()
    assert torch.allclose(shares, torch.full((5,), 0.2), atol=0.03), shares


def test_buffer_sample_and_state_round_trip():
    torch.manual_seed(2)
    buf = ReservoirBuffer(20, z_dim=3)
    idx = torch.arange(7)
    buf.add(idx, idx, task=0, z=torch.arange(21.0).view(7, 3))
    slots = buf.sample(7)
    assert sorted(slots.tolist()) == list(range(7))  # without replacement, filled slots only
    assert set(buf.sample(12).tolist()) == set(range(7))  # more than filled: cycles over them
    torch.testing.assert_close(buf.z[slots], torch.arange(21.0).view(7, 3)[buf.indices[slots]])
    _stream(buf, 200, 16)
    clone = ReservoirBuffer(20, z_dim=3)
    clone.load_state_dict(buf.state_dict())
    torch.manual_seed(3)
    a = buf.sample(10)
    torch.manual_seed(3)
    assert torch.equal(clone.sample(10), a) and torch.equal(clone.indices, buf.indices)
    assert int(clone.num_seen) == 207
