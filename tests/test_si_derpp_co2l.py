"""SI, DER++ and Co2L's relation distillation against their papers' equations written out here
(float64 Python arithmetic on fixed tensors via ``tolist()``, tolerance 1e-6), sharing no code with
the implementations; plus each strategy's own invariants."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
from torch import nn

from cassle.losses.si import si_consolidate, si_omega_path, si_omega_sgd, si_penalty
from cassle.strategies.si import SI

TOL = dict(rtol=1e-6, atol=1e-6)


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def flat(t):
    return t.detach().flatten().tolist()


def close(value, expected):
    torch.testing.assert_close(torch.as_tensor(value, dtype=torch.float64).reshape(()),
                               torch.tensor(float(expected), dtype=torch.float64), **TOL)


# ------------------------------------------------------------------ SI (Zenke et al. 2017)
def test_si_penalty_is_c_times_importance_weighted_squared_distance():
    params = [rand(3, 4, seed=1).requires_grad_(), rand(5, seed=2).requires_grad_()]
    anchors, importance = [rand(3, 4, seed=3), rand(5, seed=4)], [rand(3, 4, seed=5).abs(), rand(5, seed=6).abs()]
    # eq. 4: c * sum_k Omega_k (theta~_k - theta_k)^2, no 1/2
    expected = 0.4 * sum(w * (p - a) ** 2 for P, A, W in zip(params, anchors, importance)
                         for p, a, w in zip(flat(P), flat(A), flat(W)))
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
    expected = [w + 0.03 * gi ** 2 for w, gi in zip(expected, flat(g[0]))]
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
    return argparse.Namespace(**{"task_idx": 1, "si_c": 0.4, "si_xi": 1.0, "si_params": "backbone",
                                 "si_omega": "path", "lr": 0.1, **kw})


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


def test_si_regularises_the_backbone_only_by_default_and_checks_its_flags():
    model = _Model()
    assert len(SI(model, _si_args()).param_names) == 2  # backbone weight and bias (UCL)
    with pytest.raises(ValueError, match="--si_xi must be > 0"):
        SI(model, _si_args(si_xi=0.0))
    with pytest.raises(ValueError, match="--si_c must be >= 0"):
        SI(model, _si_args(si_c=-1.0))
