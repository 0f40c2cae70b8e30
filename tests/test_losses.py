"""Losses against naive float64 loop implementations written from the papers' equations.

The naive versions work on Python floats (``tolist()``) so they share no code path with the
vectorised torch implementations.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cassle.losses import (
    barlow_loss_func,
    byol_loss_func,
    contrastive_distill_loss,
    decorrelative_distill_loss,
    knowledge_distill_loss,
    moco_loss_func,
    predictive_distill_loss,
    predictive_mse_distill_loss,
    simclr_distill_loss_func,
    simclr_loss_func,
    sinkhorn_knopp,
    supcon_pos_mask,
    swav_loss_func,
    vicreg_loss_func,
)

N, D, K = 6, 5, 4
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}
DTYPES = [torch.float64, torch.float32]


def rand(*shape, seed=0, dtype=torch.float64, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)


def close(value: torch.Tensor, expected: float, dtype=torch.float64):
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), **TOL[dtype])


# ----------------------------------------------------------------------------- naive versions
def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def unit(a):
    n = math.sqrt(dot(a, a))
    return [x / n for x in a]


def log_sum_exp(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def naive_barlow(z1, z2, lamb, scale_loss, eps=1e-5):
    z1, z2 = z1.tolist(), z2.tolist()
    n, d = len(z1), len(z1[0])

    def bn(z):
        out = [[0.0] * d for _ in range(n)]
        for j in range(d):
            mean = sum(z[i][j] for i in range(n)) / n
            var = sum((z[i][j] - mean) ** 2 for i in range(n)) / n  # biased
            for i in range(n):
                out[i][j] = (z[i][j] - mean) / math.sqrt(var + eps)
        return out

    a, b = bn(z1), bn(z2)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k][i] * b[k][j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lamb * c**2
    return scale_loss * loss


def naive_byol(p, z):
    p, z = p.tolist(), z.tolist()
    cos = [dot(a, b) / math.sqrt(dot(a, a) * dot(b, b)) for a, b in zip(p, z)]
    return 2 - 2 * sum(cos) / len(cos)


def naive_mse(a, b):
    a, b = a.tolist(), b.tolist()
    return sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (len(a) * len(a[0]))


def naive_vicreg(z1, z2, ws, wv, wc):
    sim = naive_mse(z1, z2)
    var = cov = 0.0
    for z in (z1.tolist(), z2.tolist()):
        n, d = len(z), len(z[0])
        means = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
        for j in range(d):
            v = sum((z[i][j] - means[j]) ** 2 for i in range(n)) / (n - 1)
            var += max(0.0, 1 - math.sqrt(v + 1e-4)) / d
        for a in range(d):
            for b in range(d):
                if a != b:
                    c = sum((z[i][a] - means[a]) * (z[i][b] - means[b]) for i in range(n)) / (n - 1)
                    cov += c**2 / d
    return ws * sim + wv * var + wc * cov


def naive_simclr(z1, z2, t, extra=None):
    z = [unit(r) for r in z1.tolist() + z2.tolist()]
    m2 = len(z)
    m = m2 // 2
    total = 0.0
    for i in range(m2):
        s = [dot(z[i], z[j]) / t for j in range(m2)]
        log_den = log_sum_exp([s[k] for k in range(m2) if k != i])
        pos = {(i + m) % m2}
        if extra is not None:
            pos |= {j for j in range(m2) if bool(extra[i][j])}
        pos.discard(i)
        total += sum(s[j] - log_den for j in pos) / len(pos)
    return -total / m2


def naive_moco(q, k, queue, t):
    q, k, queue = q.tolist(), k.tolist(), queue.tolist()
    total = 0.0
    for n in range(len(q)):
        logits = [dot(q[n], k[n]) / t]
        logits += [sum(q[n][d] * queue[d][c] for d in range(len(q[n]))) / t for c in range(len(queue[0]))]
        total += -(logits[0] - log_sum_exp(logits))
    return total / len(q)


def naive_cross_entropy_soft(targets, logits, t):
    """-1/N sum_n sum_k targets[n][k] * log softmax(logits[n] / t)_k (targets as probabilities)."""
    total = 0.0
    for q_row, p_row in zip(targets, logits):
        lse = log_sum_exp([x / t for x in p_row])
        total -= sum(qk * (pk / t - lse) for qk, pk in zip(q_row, p_row))
    return total / len(targets)


def naive_swav(preds, assignments, t):
    v = len(preds)
    terms = [
        naive_cross_entropy_soft(assignments[a].tolist(), preds[b].tolist(), t)
        for a in range(v)
        for b in range(v)
        if a != b
    ]
    return sum(terms) / len(terms)


def naive_sinkhorn(scores, eps, iters):
    s = scores.tolist()
    b, k = len(s), len(s[0])
    q = [[math.exp(s[j][i] / eps) for j in range(b)] for i in range(k)]  # (K, B)
    tot = sum(map(sum, q))
    q = [[x / tot for x in row] for row in q]
    for _ in range(iters):
        for i in range(k):
            r = sum(q[i])
            q[i] = [x / r / k for x in q[i]]
        for j in range(b):
            c = sum(q[i][j] for i in range(k))
            for i in range(k):
                q[i][j] = q[i][j] / c / b
    return [[q[i][j] * b for i in range(k)] for j in range(b)]  # (B, K)


def naive_simclr_distill(p1, p2, z1, z2, t):
    p = [unit(r) for r in p1.tolist() + p2.tolist()]
    z = [unit(r) for r in z1.tolist() + z2.tolist()]
    total = 0.0
    for i in range(len(p)):
        logits = [dot(p[i], z[j]) / t for j in range(len(z))]
        total -= logits[i] - log_sum_exp(logits)
    return total / len(p)


def naive_knowledge(students, teachers, t):
    total = 0.0
    for s, te in zip(students, teachers):
        probs = []
        for row in te.tolist():
            lse = log_sum_exp([x / t for x in row])
            probs.append([math.exp(x / t - lse) for x in row])
        total += naive_cross_entropy_soft(probs, s.tolist(), t)
    return total / len(students)


# ----------------------------------------------------------------------------- Barlow Twins
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lamb,scale", [(0.005, 0.025), (0.3, 1.0)])
def test_barlow_matches_naive(dtype, lamb, scale):
    z1, z2 = rand(N, D, seed=1, dtype=dtype), rand(N, D, seed=2, dtype=dtype, scale=3.0, shift=1.0)
    close(barlow_loss_func(z1, z2, lamb=lamb, scale_loss=scale), naive_barlow(z1, z2, lamb, scale), dtype)


def test_barlow_defaults_and_symmetry():
    z1, z2 = rand(N, D, seed=3), rand(N, D, seed=4)
    close(barlow_loss_func(z1, z2), naive_barlow(z1, z2, 0.005, 0.025))
    # swapping the views transposes C: on- and off-diagonal sums are unchanged
    torch.testing.assert_close(barlow_loss_func(z1, z2), barlow_loss_func(z2, z1))


def test_barlow_hand_value_and_batchnorm_equivalence():
    # D = 1, z = [-1, 1]: mean 0, biased var 1, C = 1 / (1 + eps)
    z = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    close(barlow_loss_func(z, z, scale_loss=1.0), (1 - 1 / (1 + 1e-5)) ** 2)
    # the standardisation is BatchNorm1d(affine=False) in training mode: C from BN matches
    z1, z2 = rand(N, D, seed=5, dtype=torch.float32), rand(N, D, seed=6, dtype=torch.float32)
    bn = torch.nn.BatchNorm1d(D, affine=False)
    c = bn(z1).T @ bn(z2) / N
    expected = 0.025 * ((1 - c.diagonal()).pow(2).sum() + 0.005 * (c.pow(2).sum() - c.diagonal().pow(2).sum()))
    torch.testing.assert_close(barlow_loss_func(z1, z2), expected, rtol=1e-5, atol=1e-6)


def test_barlow_gradients_flow_to_both_views():
    z1, z2 = rand(N, D, seed=7).requires_grad_(), rand(N, D, seed=8).requires_grad_()
    barlow_loss_func(z1, z2).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- BYOL
@pytest.mark.parametrize("dtype", DTYPES)
def test_byol_matches_naive(dtype):
    p, z = rand(N, D, seed=9, dtype=dtype), rand(N, D, seed=10, dtype=dtype)
    close(byol_loss_func(p, z), naive_byol(p, z), dtype)


def test_byol_identical_is_zero_and_opposite_is_four():
    p = rand(N, D, seed=11)
    close(byol_loss_func(p, p.clone()), 0.0)
    close(byol_loss_func(p, -3 * p), 4.0)


def test_byol_no_gradient_into_target():
    p, z = rand(N, D, seed=12).requires_grad_(), rand(N, D, seed=13).requires_grad_()
    byol_loss_func(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None


# ----------------------------------------------------------------------------- VICReg
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 2.0, 3.0)])
def test_vicreg_matches_naive(dtype, weights):
    # scale 0.5 keeps some std below 1 so the hinge is active for part of the dimensions
    z1, z2 = rand(N, D, seed=14, dtype=dtype, scale=0.5), rand(N, D, seed=15, dtype=dtype, scale=2.0)
    expected = naive_vicreg(z1, z2, *weights)
    close(vicreg_loss_func(z1, z2, *weights), expected, dtype)


def test_vicreg_symmetric_and_terms():
    z1, z2 = rand(N, D, seed=16), rand(N, D, seed=17)
    torch.testing.assert_close(vicreg_loss_func(z1, z2), vicreg_loss_func(z2, z1))
    # only the invariance term: MSE
    close(vicreg_loss_func(z1, z2, 1.0, 0.0, 0.0), naive_mse(z1, z2))
    # large, decorrelated dims: std >> 1 so the variance hinge is exactly 0
    big = 10 * rand(N, D, seed=18)
    close(vicreg_loss_func(big, big, 0.0, 1.0, 0.0), 0.0)


# ----------------------------------------------------------------------------- SimCLR / SupCon
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_simclr_matches_naive(dtype, temperature):
    z1, z2 = rand(N, D, seed=19, dtype=dtype), rand(N, D, seed=20, dtype=dtype)
    close(simclr_loss_func(z1, z2, temperature), naive_simclr(z1, z2, temperature), dtype)


def test_simclr_symmetric_and_single_image_is_zero():
    z1, z2 = rand(N, D, seed=21), rand(N, D, seed=22)
    torch.testing.assert_close(simclr_loss_func(z1, z2), simclr_loss_func(z2, z1))
    # one image: each anchor's only candidate is its positive -> log softmax = 0
    close(simclr_loss_func(rand(1, D, seed=23), rand(1, D, seed=24)), 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_supcon_matches_naive(dtype):
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    z1, z2 = rand(N, D, seed=25, dtype=dtype), rand(N, D, seed=26, dtype=dtype)
    mask = supcon_pos_mask(labels)
    assert mask.shape == (2 * N, 2 * N) and mask.dtype == torch.bool
    assert bool(mask[0, 2]) and bool(mask[0, N + 2]) and not bool(mask[0, 1])
    close(simclr_loss_func(z1, z2, 0.2, extra_pos_mask=mask), naive_simclr(z1, z2, 0.2, mask.tolist()), dtype)
    # distinct labels add no positive: SupCon reduces to SimCLR
    distinct = supcon_pos_mask(torch.arange(N))
    torch.testing.assert_close(simclr_loss_func(z1, z2, 0.2, distinct), simclr_loss_func(z1, z2, 0.2))


def test_simclr_gradients_are_finite():
    # the self-similarity is masked with -inf; it must not leak NaN into the backward
    z1, z2 = rand(N, D, seed=27).requires_grad_(), rand(N, D, seed=28).requires_grad_()
    simclr_loss_func(z1, z2, 0.1, supcon_pos_mask(torch.tensor([0, 0, 1, 1, 2, 2]))).backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    assert z1.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- MoCo
@pytest.mark.parametrize("dtype", DTYPES)
def test_moco_matches_naive(dtype):
    q = F.normalize(rand(N, D, seed=29, dtype=dtype), dim=1)
    k = F.normalize(rand(N, D, seed=30, dtype=dtype), dim=1)
    queue = F.normalize(rand(D, 7, seed=31, dtype=dtype), dim=0)
    close(moco_loss_func(q, k, queue, 0.2), naive_moco(q, k, queue, 0.2), dtype)


def test_moco_hand_value_and_constant_key_queue():
    # q = k = e1, one orthogonal negative: logits [1/T, 0] -> log(1 + exp(-1/T))
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    queue = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    loss = moco_loss_func(q, k, queue, temperature=0.5)
    close(loss, math.log(1 + math.exp(-2.0)))
    loss.backward()
    assert q.grad is not None and k.grad is None


# ----------------------------------------------------------------------------- SwAV
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("views", [2, 3])
def test_swav_matches_naive(dtype, views):
    preds = [rand(N, K, seed=32 + v, dtype=dtype) for v in range(views)]
    codes = [torch.softmax(rand(N, K, seed=40 + v, dtype=dtype), dim=1) for v in range(views)]
    close(swav_loss_func(preds, codes, 0.1), naive_swav(preds, codes, 0.1), dtype)


def test_swav_uniform_codes_and_equal_scores_give_log_k():
    preds = [torch.zeros(N, K, dtype=torch.float64) for _ in range(2)]
    codes = [torch.full((N, K), 1.0 / K, dtype=torch.float64) for _ in range(2)]
    close(swav_loss_func(preds, codes), math.log(K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps,iters", [(0.05, 3), (0.5, 1), (0.3, 7)])
def test_sinkhorn_matches_naive(dtype, eps, iters):
    scores = F.normalize(rand(N, K, seed=50, dtype=dtype), dim=1)  # cosine scores in [-1, 1]
    expected = torch.tensor(naive_sinkhorn(scores, eps, iters), dtype=torch.float64)
    got = sinkhorn_knopp(scores, eps, iters)
    assert got.shape == (N, K) and got.dtype == dtype
    torch.testing.assert_close(got.double(), expected, **TOL[dtype])


def test_sinkhorn_marginals():
    b = 12
    scores = F.normalize(rand(b, K, seed=51), dim=1)
    q = sinkhorn_knopp(scores, epsilon=0.5, num_iters=3)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(b, dtype=torch.float64))  # samples: exact
    # prototypes: equipartition B / K, reached as the iterations converge
    q = sinkhorn_knopp(scores, epsilon=0.5, num_iters=200)
    torch.testing.assert_close(q.sum(dim=0), torch.full((K,), b / K, dtype=torch.float64))


def test_sinkhorn_shift_invariant_and_overflow_safe():
    scores = rand(N, K, seed=52, dtype=torch.float32)
    q = sinkhorn_knopp(scores, epsilon=0.05)
    torch.testing.assert_close(sinkhorn_knopp(scores + 100.0, epsilon=0.05), q)  # exp(2000) unshifted
    assert torch.isfinite(q).all()
    q16 = sinkhorn_knopp(scores.half(), epsilon=0.05)
    assert q16.dtype == torch.float32 and torch.isfinite(q16).all()


def test_sinkhorn_has_no_gradient():
    scores = rand(N, K, seed=53).requires_grad_()
    assert not sinkhorn_knopp(scores).requires_grad


# ----------------------------------------------------------------------------- distill terms
@pytest.mark.parametrize("dtype", DTYPES)
def test_simclr_distill_matches_naive(dtype):
    p1, p2, z1, z2 = (rand(N, D, seed=60 + i, dtype=dtype) for i in range(4))
    close(simclr_distill_loss_func(p1, p2, z1, z2, 0.2), naive_simclr_distill(p1, p2, z1, z2, 0.2), dtype)


def test_contrastive_distill_symmetrised_and_frozen_detached():
    p1, p2 = rand(N, D, seed=64).requires_grad_(), rand(N, D, seed=65).requires_grad_()
    zb1, zb2 = rand(N, D, seed=66).requires_grad_(), rand(N, D, seed=67).requires_grad_()
    loss = contrastive_distill_loss(p1, p2, zb1, zb2, temperature=0.2)
    expected = 0.5 * (naive_simclr_distill(p1, p2, zb1, zb2, 0.2) + naive_simclr_distill(zb1, zb2, p1, p2, 0.2))
    close(loss, expected)
    loss.backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    assert zb1.grad is None and zb2.grad is None


def test_decorrelative_distill():
    p1, p2 = rand(N, D, seed=68).requires_grad_(), rand(N, D, seed=69)
    zb1, zb2 = rand(N, D, seed=70).requires_grad_(), rand(N, D, seed=71)
    loss = decorrelative_distill_loss(p1, p2, zb1, zb2)
    close(loss, 0.5 * (naive_barlow(p1, zb1, 0.005, 0.1) + naive_barlow(p2, zb2, 0.005, 0.1)))
    close(
        decorrelative_distill_loss(p1, p2, zb1, zb2, 0.2, 1.0),
        0.5 * (naive_barlow(p1, zb1, 0.2, 1.0) + naive_barlow(p2, zb2, 0.2, 1.0)),
    )
    loss.backward()
    assert p1.grad.abs().sum() > 0 and zb1.grad is None


def test_predictive_distills():
    p1, p2 = rand(N, D, seed=72).requires_grad_(), rand(N, D, seed=73)
    zb1, zb2 = rand(N, D, seed=74).requires_grad_(), rand(N, D, seed=75)
    loss = predictive_distill_loss(p1, p2, zb1, zb2)
    close(loss, 0.5 * (naive_byol(p1, zb1) + naive_byol(p2, zb2)))
    mse = predictive_mse_distill_loss(p1, p2, zb1, zb2)
    close(mse, 0.5 * (naive_mse(p1, zb1) + naive_mse(p2, zb2)))
    (loss + mse).backward()
    assert p1.grad.abs().sum() > 0 and zb1.grad is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_knowledge_distill_matches_naive_and_teacher_gets_no_grad(dtype):
    students = [rand(N, K, seed=80 + v, dtype=dtype).requires_grad_() for v in range(2)]
    teachers = [rand(N, K, seed=90 + v, dtype=dtype).requires_grad_() for v in range(2)]
    loss = knowledge_distill_loss(students, teachers, temperature=0.1)
    close(loss, naive_knowledge(students, teachers, 0.1), dtype)
    loss.backward()
    assert all(s.grad.abs().sum() > 0 for s in students)
    assert all(t.grad is None for t in teachers)


def test_knowledge_distill_self_is_entropy_minimum():
    # CE(p, p) = H(p) <= CE(p, q): the student matching the teacher is the minimum
    t = [rand(N, K, seed=95)]
    assert knowledge_distill_loss(t, t) < knowledge_distill_loss([rand(N, K, seed=96)], t)


# ----------------------------------------------------------------------------- float32 autograd sanity
def test_float64_gradcheck_of_batch_statistic_losses():
    z1, z2 = rand(4, 3, seed=97).requires_grad_(), rand(4, 3, seed=98).requires_grad_()
    for fn in (barlow_loss_func, vicreg_loss_func, simclr_loss_func):
        assert torch.autograd.gradcheck(fn, (z1, z2))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: barlow_loss_func(torch.randn(4, 3), torch.randn(4, 2)), "same shape"),
        (lambda: barlow_loss_func(torch.randn(1, 3), torch.randn(1, 3)), "at least 2"),
        (lambda: vicreg_loss_func(torch.randn(4), torch.randn(4)), "2-D"),
        (lambda: byol_loss_func(torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64)), "dtype"),
        (lambda: simclr_loss_func(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0), "temperature"),
        (
            lambda: simclr_loss_func(torch.randn(4, 3), torch.randn(4, 3), 0.1, torch.ones(4, 4, dtype=torch.bool)),
            r"\(8, 8\)",
        ),
        (lambda: moco_loss_func(torch.randn(4, 3), torch.randn(4, 3), torch.randn(5, 10)), "queue"),
        (lambda: swav_loss_func([torch.randn(4, 3)], [torch.randn(4, 3)]), "at least 2"),
        (lambda: swav_loss_func(torch.randn(4, 3), torch.randn(4, 3)), "list or tuple"),
        (lambda: sinkhorn_knopp(torch.randn(4, 3), num_iters=0), "num_iters"),
        (lambda: sinkhorn_knopp(torch.randn(4, 3), epsilon=-1.0), "epsilon"),
        (lambda: knowledge_distill_loss([torch.randn(4, 3)], [torch.randn(4, 3)] * 2), "as many views"),
        (lambda: supcon_pos_mask(torch.zeros(2, 2)), "1-D"),
        (
            lambda: barlow_loss_func(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long)),
            "floating",
        ),
    ],
)
def test_bad_input_raises_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_losses_run_in_float32_under_bf16_autocast():
    """Under autocast, half inputs are upcast: the value matches the float32 loss."""
    from cassle.losses import barlow_loss_func, vicreg_loss_func

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    for fn in (barlow_loss_func, vicreg_loss_func):
        expected = fn(z1, z2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fn(z1.bfloat16(), z2.bfloat16())
        assert got.dtype == torch.float32
        ref = fn(z1.bfloat16().float(), z2.bfloat16().float())
        assert torch.allclose(got, ref, rtol=1e-6, atol=1e-6)
        assert torch.allclose(got, expected, rtol=0.05)
