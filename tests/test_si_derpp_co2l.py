"""SI, DER++ and Co2L's relation distillation against their papers' equations written out here
(float64 Python arithmetic on fixed tensors via ``tolist()``, tolerance 1e-6), sharing no code with
the implementations; plus each strategy's own invariants."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from torch import nn

from cassle.losses.ird import ird_loss
from cassle.losses.si import si_consolidate, si_omega_path, si_omega_sgd, si_penalty
from cassle.strategies.si import SI

TOL = {"rtol": 1e-6, "atol": 1e-6}


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def flat(t):
    return t.detach().flatten().tolist()


def close(value, expected):
    torch.testing.assert_close(
        torch.as_tensor(value, dtype=torch.float64).reshape(()),
        torch.tensor(float(expected), dtype=torch.float64),
        **TOL,
    )


# ------------------------------------------------------------------ SI (Zenke et al. 2017)
def test_si_penalty_is_c_times_importance_weighted_squared_distance():
    params = [rand(3, 4, seed=1).requires_grad_(), rand(5, seed=2).requires_grad_()]
    anchors, importance = [rand(3, 4, seed=3), rand(5, seed=4)], [rand(3, 4, seed=5).abs(), rand(5, seed=6).abs()]
    # eq. 4: c * sum_k Omega_k (theta~_k - theta_k)^2, no 1/2
    expected = 0.4 * sum(
        w * (p - a) ** 2 for P, A, W in zip(params, anchors, importance) for p, a, w in zip(flat(P), flat(A), flat(W))
    )
    value = si_penalty(params, anchors, importance, 0.4)
    close(value, expected)
    value.backward()
    grad = [2 * 0.4 * w * (p - a) for p, a, w in zip(flat(params[1]), flat(anchors[1]), flat(importance[1]))]
    torch.testing.assert_close(params[1].grad, torch.tensor(grad, dtype=torch.float64), **TOL)


def test_si_path_integral_and_ucl_shortcut_one_step():
    omega, g = [rand(2, 3, seed=1).abs()], [rand(2, 3, seed=2)]
    before, after = [rand(2, 3, seed=3)], [rand(2, 3, seed=4)]
    start = flat(omega[0])
    si_omega_path(omega, g, before, after)  # omega += -g (theta(t+1) - theta(t))
    expected = [w - gi * (a - b) for w, gi, a, b in zip(start, flat(g[0]), flat(after[0]), flat(before[0]))]
    torch.testing.assert_close(omega[0].flatten(), torch.tensor(expected, dtype=torch.float64), **TOL)
    si_omega_sgd(omega, g, 0.03)  # UCL: omega += base_lr * g^2
    expected = [w + 0.03 * gi**2 for w, gi in zip(expected, flat(g[0]))]
    torch.testing.assert_close(omega[0].flatten(), torch.tensor(expected, dtype=torch.float64), **TOL)


def test_si_importance_is_summed_over_tasks_not_overwritten():
    """eq. 5: Omega^mu = sum over finished tasks of omega / (Delta^2 + xi). UCL's first commit
    assigned (``big_omega = ...``): after two tasks only the second task's importance remained."""
    importance = [torch.zeros(4, dtype=torch.float64)]
    tasks = [(rand(4, seed=s).abs(), rand(4, seed=s + 10), rand(4, seed=s + 20)) for s in range(2)]
    for omega, theta, anchor in tasks:
        si_consolidate(importance, [omega], [theta], [anchor], 1.0)
    expected = [sum(flat(w)[k] / ((flat(t)[k] - flat(a)[k]) ** 2 + 1.0) for w, t, a in tasks) for k in range(4)]
    torch.testing.assert_close(importance[0], torch.tensor(expected, dtype=torch.float64), **TOL)
    last_only = [flat(tasks[1][0])[k] / ((flat(tasks[1][1])[k] - flat(tasks[1][2])[k]) ** 2 + 1.0) for k in range(4)]
    assert not torch.allclose(importance[0], torch.tensor(last_only, dtype=torch.float64))


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Linear(3, 2).double()
        self.projector = nn.Linear(2, 2).double()


def _si_args(**kw):
    return argparse.Namespace(
        **{"task_idx": 1, "si_c": 0.4, "si_xi": 1.0, "si_params": "backbone", "si_omega": "path", "lr": 0.1, **kw}
    )


def test_si_strategy_path_integral_over_sgd_steps_uses_the_unregularised_gradient():
    """Plain SGD: theta(t+1) - theta(t) = -lr (g + g_pen), so omega = sum_t lr * g(t) . (g(t) + g_pen(t))
    with g the task loss's own gradient (autograd here, the closed form there)."""
    model = _Model()
    si = SI(model, _si_args())
    for i, w in enumerate(si._tensors("importance")):
        w.copy_(rand(*w.shape, seed=30 + i).abs())
    si.on_task_start(model)
    anchors = [a.clone() for a in si._tensors("anchor")]
    importance = [w.clone() for w in si._tensors("importance")]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = rand(5, 3, seed=7)
    expected = [[0.0] * p.numel() for p in model.backbone.parameters()]
    for step in range(3):
        params = list(model.backbone.parameters())
        task_loss = (model.projector(model.backbone(x)) ** 2).sum() * (step + 1)
        g = torch.autograd.grad(task_loss, params, retain_graph=True)
        pen = si.loss(model, None, None, {})[0]
        g_total = torch.autograd.grad(task_loss + pen, params, retain_graph=True)
        for e, gi, gt in zip(expected, g, g_total):
            for k, (a, b) in enumerate(zip(flat(gi), flat(gt))):
                e[k] += 0.1 * a * b
        opt.zero_grad()
        (task_loss + pen).backward()
        si.before_optimizer_step(model)
        opt.step()
        si.after_optimizer_step(model)
    for w, e in zip(si._tensors("omega"), expected):
        torch.testing.assert_close(w.flatten().double(), torch.tensor(e, dtype=torch.float64), **TOL)
    omega = [w.clone() for w in si._tensors("omega")]
    si.on_task_end(model, None)
    for big, old, w, p, a in zip(si._tensors("importance"), importance, omega, model.backbone.parameters(), anchors):
        exp = [o + wi / ((pi - ai) ** 2 + 1.0) for o, wi, pi, ai in zip(flat(old), flat(w), flat(p), flat(a))]
        torch.testing.assert_close(big.flatten().double(), torch.tensor(exp, dtype=torch.float64), **TOL)
    assert all(not w.any() for w in si._tensors("omega"))  # reset for the next task
    assert set(si.task_end_metrics(model)) == {"si/omega_sum", "si/importance_mean", "si/importance_max"}


def test_si_ucl_mode_accumulates_base_lr_times_the_squared_full_gradient():
    """divyam3897/UCL: small_omega += base_lr * g^2, g the gradient of the loss *with* the penalty."""
    model = _Model()
    si = SI(model, _si_args(si_omega="ucl", lr=0.03))
    for i, w in enumerate(si._tensors("importance")):
        w.copy_(rand(*w.shape, seed=40 + i).abs())
    si.on_task_start(model)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.5)  # away from the anchor: the penalty has a gradient
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = rand(5, 3, seed=8)
    expected = [[0.0] * p.numel() for p in model.backbone.parameters()]
    for _ in range(2):
        opt.zero_grad()
        (model.projector(model.backbone(x)) ** 2).sum().add(si.loss(model, None, None, {})[0]).backward()
        for e, p in zip(expected, model.backbone.parameters()):
            for k, gk in enumerate(flat(p.grad)):
                e[k] += 0.03 * gk**2
        si.before_optimizer_step(model)
        opt.step()
        si.after_optimizer_step(model)
    for w, e in zip(si._tensors("omega"), expected):
        torch.testing.assert_close(w.flatten(), torch.tensor(e, dtype=torch.float64), **TOL)


def test_si_regularises_the_backbone_only_by_default_and_checks_its_flags():
    model = _Model()
    assert len(SI(model, _si_args()).param_names) == 2  # backbone weight and bias (UCL)
    with pytest.raises(ValueError, match="--si_xi must be > 0"):
        SI(model, _si_args(si_xi=0.0))
    with pytest.raises(ValueError, match="--si_c must be >= 0"):
        SI(model, _si_args(si_c=-1.0))


# ------------------------------------------------------------------ Co2L's IRD (Cha et al. 2021)


def naive_ird(z, z_past, kc, kp):
    def norm(rows):
        return [[x / math.sqrt(sum(y * y for y in r)) for x in r] for r in rows]

    def relations(rows, t):
        rows = norm(rows)
        out = []
        for i, a in enumerate(rows):
            e = {j: math.exp(sum(x * y for x, y in zip(a, b)) / t) for j, b in enumerate(rows) if j != i}
            s = sum(e.values())
            out.append({j: v / s for j, v in e.items()})
        return out

    p, q = relations(z.tolist(), kc), relations(z_past.tolist(), kp)
    return sum(-q[i][j] * math.log(p[i][j]) for i in range(len(p)) for j in p[i]) / len(p)


def test_ird_is_cross_entropy_of_past_and_current_relation_distributions():
    z, z_past = rand(6, 5, seed=1), rand(6, 5, seed=2)
    close(ird_loss(z, z_past, 0.2, 0.01), naive_ird(z, z_past, 0.2, 0.01))
    close(ird_loss(z, z_past, 0.5, 0.3), naive_ird(z, z_past, 0.5, 0.3))
    # Invariant: with equal temperatures the current relations equal to the past ones minimise
    # the cross-entropy, so the gradient vanishes at z = z_past (and not elsewhere).
    at = z_past.clone().requires_grad_()
    ird_loss(at, z_past, 0.3, 0.3).backward()
    assert float(at.grad.abs().max()) < 1e-10
    away = z.clone().requires_grad_()
    ird_loss(away, z_past, 0.3, 0.3).backward()
    assert float(away.grad.abs().max()) > 1e-3


def _built(*flags):
    from main_continual import build_model
    from tests.helpers import tiny_args

    args = tiny_args("barlow_twins", "--num_tasks", "2", *flags)
    args.num_classes = 4
    return build_model(args)


def test_co2l_strategy_is_lamb_ird_over_all_views_with_the_frozen_backbone_and_projector():
    model = _built("--task_idx", "1", "--cl_strategy", "co2l", "--co2l_lamb", "0.7").double()
    co2l = model.strategies["co2l"]
    with torch.no_grad():  # the previous task's model differs from the current one
        for p in model.projector.parameters():
            p.add_(0.1)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(8, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(2)]
    out = model.method_cls.ssl_step(model, views, torch.zeros(8, dtype=torch.long))
    term, _ = co2l.loss(model, views, out, {})
    with torch.no_grad():
        past = torch.cat([co2l.frozen_projector(model.frozen_backbone(v)) for v in views])
    close(term.detach(), 0.7 * naive_ird(torch.cat(out.z).detach(), past, 0.2, 0.01))
    # task 0: inactive, and nothing is built (the plain method's state and parameters)
    plain = _built("--task_idx", "0")
    with_co2l = _built("--task_idx", "0", "--cl_strategy", "co2l")
    assert set(with_co2l.state_dict()) == set(plain.state_dict())


# ------------------------------------------------------------------ DER++ (Buzzega et al. 2020)
class _Source:
    """Buffer indices -> fixed float64 views (stands in for the datamodule's ReplaySource)."""

    def __init__(self):
        g = torch.Generator().manual_seed(5)
        self.images = [torch.randn(16, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(2)]
        self.calls = []

    def views(self, indices):
        self.calls.append(indices.clone())
        return [im[indices] for im in self.images]


def test_derpp_is_der_plus_beta_times_the_ssl_loss_of_a_second_buffer_batch():
    model = _built(
        "--task_idx",
        "1",
        "--cl_strategy",
        "derpp",
        "--derpp_alpha",
        "0.3",
        "--derpp_beta",
        "0.5",
        "--buffer_size",
        "16",
        "--replay_batch_size",
        "4",
    ).double()
    derpp = model.strategies["derpp"]
    derpp.buffer.add(torch.arange(12), torch.arange(12) % 4, 0, z=rand(12, derpp.buffer.z.shape[1], seed=3))
    derpp.buffer.z = derpp.buffer.z.double()
    source = _Source()
    derpp.__dict__.update(source=source, has_data=True)
    views = [torch.zeros(8, 3, 16, 16, dtype=torch.float64)] * 2
    out = model.method_cls.ssl_step(model, views, torch.zeros(8, dtype=torch.long))
    torch.manual_seed(11)
    term, logs = derpp.loss(model, views, out, {})
    first, second = source.calls
    assert len(first) == len(second) == 4 and not torch.equal(first, second)  # two independent draws
    # alpha * (DER's own term with weight 1, on the same first draw) ...
    der_unit = type(derpp).__mro__[1]
    derpp.alpha = 1.0
    torch.manual_seed(11)
    unit, _ = der_unit.loss(derpp, model, views, out, {})
    # ... + beta * the method's SSL loss on the second draw's views (Barlow Twins, written out)
    x = [im[second] for im in source.images]
    z1, z2 = (model.projector(model.backbone(v)) for v in x)
    replay = naive_barlow(z1, z2, lamb=model.hparams.lamb, scale=model.hparams.scale_loss)
    close(term.detach(), 0.3 * float(unit.detach()) + 0.5 * replay)
    close(logs["derpp_replay"], 0.5 * replay)


def naive_barlow(z1, z2, lamb, scale):
    """Zbontar et al. 2021: scale * [sum_i (1 - c_ii)^2 + lamb sum_{i != j} c_ij^2], c from batch-standardised z."""

    def standardise(z):
        cols = list(zip(*z.tolist()))
        n = len(cols[0])
        out = []
        for c in cols:
            m = sum(c) / n
            sd = math.sqrt(sum((x - m) ** 2 for x in c) / n + 1e-5)  # BatchNorm1d's eps, as the reference
            out.append([(x - m) / sd for x in c])
        return out  # D x N

    a, b = standardise(z1), standardise(z2)
    n = len(a[0])
    c = [[sum(x * y for x, y in zip(ai, bj)) / n for bj in b] for ai in a]
    d = len(c)
    return scale * (
        sum((1 - c[i][i]) ** 2 for i in range(d))
        + lamb * sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    )


# ------------------------------------------------------------------ every strategy shows it is active
def test_replay_share_loss_terms_and_buffer_report_reach_metrics_csv_and_the_console(tmp_path, capsys):
    import csv

    from tests.test_strategies import _sequence

    _sequence(tmp_path, ["--cl_strategy", "derpp", "si"])
    console = capsys.readouterr().out
    with open(next((tmp_path / "task1").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    cols = set(rows[0])
    assert {
        "train/replay_share",
        "train/derpp_loss",
        "train/derpp_der",
        "train/derpp_replay",
        "train/si_loss",
        "buffer/fill",
        "buffer/size",
        "buffer/task_0",
        "buffer/task_1",
        "si/importance_mean",
    } <= cols
    share = [float(r["train/replay_share"]) for r in rows if r["train/replay_share"]]
    # batch 16, two buffer batches of 16 (--replay_batch_size = batch size): 32 / 48 once the buffer has data
    assert share and max(share) == pytest.approx(32 / 48, abs=1e-6)
    report = [r for r in rows if r["buffer/fill"]]
    assert len(report) == 1 and float(report[0]["buffer/fill"]) == 1.0  # 16 slots, 64 images seen
    counts = [float(report[0][k]) for k in cols if k.startswith("buffer/class_") and report[0][k]]
    assert sum(counts) == 16
    assert "task 1 buffer (derpp): 16/16 | task 0:" in console and "derpp_replay" in console
    assert "task 1 si: omega_sum" in console


def test_lump_logs_its_lambda_and_the_buffer_weight_as_replay_share(tmp_path):
    from tests.test_strategies import _sequence

    (_, trainer1), _ = _sequence(tmp_path, ["--cl_strategy", "lump"])
    m = trainer1.callback_metrics
    lam, share = float(m["train/lump_lambda"]), float(m["train/replay_share"])
    assert 0.0 < lam < 1.0 and share == pytest.approx(1.0 - lam, abs=1e-6)  # task 1: every step mixes
    assert {"train/lump_loss", "train/lump_lambda", "train/replay_share"} <= set(
        trainer1.lightning_module.console_metrics
    )
