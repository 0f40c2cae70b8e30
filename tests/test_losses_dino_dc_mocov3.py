"""DINO, DeepClusterV2 and MoCo v3 (issue 22): the losses against their equations written out here
(fixed tensors, float64), and the stateful parts (DINO's centre and teacher-temperature schedule,
DeepClusterV2's k-means memory) for their update rules and for exact resume."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from cassle.losses import DINOLoss, deepclusterv2_loss_func, mocov3_loss_func
from cassle.methods.kmeans import kmeans_generator, spherical_kmeans
from main_continual import build_model
from tests.helpers import fake_batch, tiny_args

TOL = dict(rtol=0, atol=1e-6)
D64 = torch.float64


def _t(rows):
    return torch.tensor(rows, dtype=D64)


def _log_softmax_row(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def _softmax_row(row):
    return [math.exp(x) for x in _log_softmax_row(row)]


def _normalise(row):
    n = math.sqrt(sum(x * x for x in row))
    return [x / n for x in row]


# --------------------------------------------------------------------------- MoCo v3
Q = [[1.0, 0.5, -0.2], [0.3, -1.2, 0.8], [-0.7, 0.1, 0.4]]
K = [[0.9, 0.4, 0.1], [0.2, -1.0, 1.1], [-0.3, 0.6, 0.2]]


def test_mocov3_loss_equation():
    T = 0.2
    q, k = [_normalise(r) for r in Q], [_normalise(r) for r in K]
    total = 0.0
    for n in range(3):  # 2T * mean_n -log softmax(q_n . k_m / T)_n
        logits = [sum(a * b for a, b in zip(q[n], k[m])) / T for m in range(3)]
        total += -_log_softmax_row(logits)[n]
    expected = 2 * T * total / 3
    query = _t(Q).requires_grad_()
    out = mocov3_loss_func(query, _t(K), temperature=T)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=D64), **TOL)
    out.backward()
    assert query.grad.abs().sum() > 0


def test_mocov3_key_is_a_constant():
    key = _t(K).requires_grad_()
    assert not mocov3_loss_func(_t(Q), key).requires_grad  # no gradient path to the keys


# --------------------------------------------------------------------------- DeepClusterV2
def test_deepclusterv2_loss_equation_with_unassigned_samples():
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(2, 2, 3, 4, generator=g, dtype=D64)  # heads x views x N x K
    assignments = torch.tensor([[1, -1, 3], [0, 2, 2]])
    T = 0.1
    heads = []
    for h in range(2):
        terms = [
            -_log_softmax_row((outputs[h, v, n] / T).tolist())[int(assignments[h, n])]
            for v in range(2)
            for n in range(3)
            if assignments[h, n] >= 0
        ]
        heads.append(sum(terms) / len(terms))
    expected = sum(heads) / 2
    out = deepclusterv2_loss_func(outputs, assignments, temperature=T)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=D64), **TOL)


def test_deepclusterv2_no_assignment_gives_zero_and_zero_gradient():
    outputs = torch.randn(3, 2, 4, 5, dtype=D64, requires_grad=True)
    out = deepclusterv2_loss_func(outputs, -torch.ones(3, 4, dtype=torch.long))
    assert out.item() == 0.0 and math.isfinite(out.item())
    out.backward()
    assert not outputs.grad.any()


def test_deepclusterv2_loss_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="assignments"):
        deepclusterv2_loss_func(torch.randn(2, 2, 3, 4), torch.zeros(2, 4, dtype=torch.long))


# --------------------------------------------------------------------------- DINO
S = [[0.5, -0.2, 1.0], [0.1, 0.3, -0.4], [-1.0, 0.7, 0.2], [0.6, 0.6, -0.3]]  # 2 views x N=2
TT = [[1.2, 0.1, -0.5], [0.0, 0.9, 0.4], [0.3, -0.2, 0.8], [-0.6, 1.1, 0.5]]


def test_dino_teacher_temperature_schedule():
    loss = DINOLoss(3, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=4, num_epochs=6)
    expected = [0.04, 0.05, 0.06, 0.07, 0.07, 0.07]  # numpy.linspace(0.04, 0.07, 4), then 0.07
    assert [loss.teacher_temp(e) for e in range(6)] == pytest.approx(expected, abs=1e-12)
    assert loss.teacher_temp(50) == pytest.approx(0.07)  # past the end: the last value
    loss.epoch = 2
    assert loss.teacher_temp() == pytest.approx(0.06)


def test_dino_loss_equation_and_centre_update():
    c0, m, tau_s = [0.2, -0.1, 0.05], 0.9, 0.1
    loss = DINOLoss(3, 0.04, 0.07, 4, 10, student_temp=tau_s, center_momentum=m).double()
    loss.center.copy_(_t([c0]))
    loss.epoch = 1
    tau_t = 0.05
    teacher = [_softmax_row([(x - c) / tau_t for x, c in zip(r, c0)]) for r in TT]
    student = [_log_softmax_row([x / tau_s for x in r]) for r in S]
    terms = []
    for u in range(2):  # teacher view u, student view v != u; N = 2 rows each
        for v in range(2):
            if u != v:
                terms.append(
                    sum(-sum(p * q for p, q in zip(teacher[2 * u + n], student[2 * v + n])) for n in range(2)) / 2
                )
    expected = sum(terms) / len(terms)
    out = loss(_t(S), _t(TT))
    torch.testing.assert_close(out, torch.tensor(expected, dtype=D64), **TOL)
    mean_t = [sum(r[j] for r in TT) / 4 for j in range(3)]  # c <- m c + (1 - m) mean(t)
    torch.testing.assert_close(loss.center, _t([[m * c + (1 - m) * t for c, t in zip(c0, mean_t)]]), **TOL)


def test_dino_loss_resumes_exactly_from_its_state_dict():
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)) for _ in range(3)]
    a = DINOLoss(5, 0.04, 0.07, 3, 10)
    a(*batches[0])
    b = DINOLoss(5, 0.04, 0.07, 3, 10)
    b.load_state_dict(a.state_dict())
    assert b.center.abs().sum() > 0
    for s, t in batches[1:]:
        torch.testing.assert_close(a(s, t), b(s, t), rtol=0, atol=0)
    torch.testing.assert_close(a.center, b.center, rtol=0, atol=0)


def test_dino_model_centre_in_checkpoint_and_resume():
    args = tiny_args("dino")
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args).train()
    _, views, targets = fake_batch()
    model.ssl_step(views, targets)
    resumed = build_model(args).train()
    resumed.load_state_dict(model.state_dict())
    torch.testing.assert_close(resumed.dino_loss.center, model.dino_loss.center, rtol=0, atol=0)
    _, views2, _ = fake_batch(seed=1)
    torch.testing.assert_close(
        model.ssl_step(views2, targets).loss, resumed.ssl_step(views2, targets).loss, rtol=0, atol=0
    )


# --------------------------------------------------------------------------- k-means memory
def _bank(seed=0, m=12, d=3):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(2, m, d, generator=g, dtype=D64), dim=-1)


def test_kmeans_one_iteration_by_hand():
    bank, index = _bank(), torch.arange(100, 112)
    init = [bank[0, [0, 5, 9]].clone(), bank[1, [1, 2]].clone()]
    assignments, centroids = spherical_kmeans(bank, index, [3, 2], iters=1, init=init)
    for h, (k, v) in enumerate(((3, 0), (2, 1))):  # head h clusters bank h mod V
        rows = bank[v].tolist()
        first = [max(range(k), key=lambda j: sum(a * b for a, b in zip(r, init[h][j].tolist()))) for r in rows]
        cents = []
        for j in range(k):
            members = [r for r, a in zip(rows, first) if a == j]
            cents.append(_normalise([sum(c) / len(members) for c in zip(*members)]) if members else init[h][j].tolist())
        torch.testing.assert_close(centroids[h], _t(cents), **TOL)
        final = [max(range(k), key=lambda j: sum(a * b for a, b in zip(r, cents[j]))) for r in rows]
        assert assignments.shape == (2, 112)
        assert assignments[h, 100:].tolist() == final and (assignments[h, :100] == -1).all()


def test_kmeans_draw_depends_only_on_seed_task_epoch():
    bank, index = _bank(2), torch.arange(12)
    a = spherical_kmeans(bank, index, [4], 3, kmeans_generator(5, 1, 7))
    b = spherical_kmeans(bank, index, [4], 3, kmeans_generator(5, 1, 7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1][0], b[1][0])


def _dc_model():
    args = tiny_args("deepclusterv2")
    args.num_classes = 4
    torch.manual_seed(0)
    return build_model(args).train()


def test_deepclusterv2_memory_update_rule():
    model = _dc_model()
    model.memory_index = torch.zeros(24, dtype=torch.long)
    model.memory_embeddings = torch.zeros(2, 24, 16)
    _, views, targets = fake_batch()
    model.batch_indexes, model.batch_slot = torch.arange(30, 38), 8  # the second batch of 8
    out = model.ssl_step(views, targets)
    assert model.memory_index[8:16].tolist() == list(range(30, 38))
    for v in range(2):
        torch.testing.assert_close(model.memory_embeddings[v, 8:16], out.z[v].detach())
        assert not model.memory_embeddings[v, :8].any() and not model.memory_embeddings[v, 16:].any()
    # the new centroids become the (fixed) prototypes, and the batch is scored against them
    model.cluster_memory(epoch=1)
    assert model.assignments_epoch == 1 and (model.assignments[:, 30:38] >= 0).all()
    assert not any(p.requires_grad for p in model.prototypes.parameters())


def test_deepclusterv2_resume_restores_memory_and_clusters_exactly():
    model = _dc_model()
    g = torch.Generator().manual_seed(3)
    model.memory_index = torch.randperm(40, generator=g)[:24]
    model.memory_embeddings = torch.nn.functional.normalize(torch.randn(2, 24, 16, generator=g), dim=-1)
    model.cluster_memory(epoch=3)
    ckpt = {"state_dict": copy.deepcopy(model.state_dict())}
    model.on_save_checkpoint(ckpt)
    resumed = _dc_model()
    resumed.load_state_dict(ckpt["state_dict"])
    resumed.on_load_checkpoint(ckpt)
    assert torch.equal(resumed.assignments, model.assignments) and resumed.assignments_epoch == 3
    assert torch.equal(resumed.memory_embeddings, model.memory_embeddings)
    for a, b in zip(resumed.prototypes, model.prototypes):
        assert torch.equal(a.weight, b.weight)
    # a resume at the epoch boundary re-clusters the restored memory: the same draw, same result
    again = _dc_model()
    again.on_load_checkpoint(ckpt)
    again.cluster_memory(epoch=3)
    assert torch.equal(again.assignments, model.assignments)
    # a new task starts a new memory and no clusters
    resumed.start_new_task()
    assert resumed.memory_embeddings is None and resumed.assignments.shape[1] == 0


@pytest.mark.parametrize("method", ["dino", "deepclusterv2", "mocov3"])
def test_bf16_autocast_step_is_float32_and_close_to_fp32(method):
    """Under bf16 autocast (the GPU default) the loss is computed in float32 from float32
    prototype scores and stays near the fp32 step (backbone rounding only)."""
    from tests.step_reference_more import prepare_step

    args = tiny_args(method)
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args).train()
    _, views, targets = fake_batch()
    prepare_step(method, model, views)
    ref = copy.deepcopy(model).ssl_step(views, targets).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.ssl_step(views, targets).loss
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)
