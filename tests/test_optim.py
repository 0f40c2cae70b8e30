"""LARS against hand-computed / naive float64 updates, and the lr schedules against their equations."""

import math

import pytest
import torch
from torch import nn

from cassle.utils.lars import LARS, exclude_bias_and_norm_param_groups
from cassle.utils.schedulers import SCHEDULERS, build_scheduler, warmup_cosine

D = torch.float64


# ----------------------------------------------------------------------------------------------
# LARS
# ----------------------------------------------------------------------------------------------
def _norm(v):
    return math.sqrt(sum(x * x for x in v))


def naive_lars(p, grads, *, lr, momentum, wd, eta, clip, eps=1e-8, excluded=False):
    """Pure-Python LARS (reference equations), one list of floats per step's gradient."""
    p, buf = list(p), None
    for g in grads:
        pn, gn = _norm(p), _norm(g)
        if excluded or pn == 0 or gn == 0:
            d = list(g)
        else:
            r = eta * pn / (gn + wd * pn + eps)
            if clip:
                r = min(r / lr, 1.0)
            d = [r * (gi + wd * pi) for gi, pi in zip(g, p)]
        buf = d if buf is None else [momentum * b + di for b, di in zip(buf, d)]
        p = [pi - lr * b for pi, b in zip(p, buf)]
    return p


def run_lars(p0, grads, group_extra=None, **opt_kwargs):
    p = nn.Parameter(torch.tensor(p0, dtype=D))
    opt = LARS([{"params": [p], **(group_extra or {})}], **opt_kwargs)
    for g in grads:
        p.grad = torch.tensor(g, dtype=D)
        opt.step()
    return p.detach().tolist()


def test_lars_first_step_by_hand():
    # p = (3, 4): ||p|| = 5; g = (0.6, 0.8): ||g|| = 1; wd = 0.1 -> g + wd p = (0.9, 1.2)
    # r = 0.02 * 5 / (1 + 0.1 * 5) = 1/15
    kw = dict(momentum=0.9, weight_decay=0.1, eta=0.02)
    no_clip = run_lars([3.0, 4.0], [[0.6, 0.8]], lr=0.5, clip_lr=False, **kw)
    assert no_clip == pytest.approx([3 - 0.5 * 0.06, 4 - 0.5 * 0.08], abs=1e-9)
    # clip: min(r / lr, 1) = 2/15 -> d = (0.12, 0.16)
    clip = run_lars([3.0, 4.0], [[0.6, 0.8]], lr=0.5, clip_lr=True, **kw)
    assert clip == pytest.approx([3 - 0.5 * 0.12, 4 - 0.5 * 0.16], abs=1e-9)
    # clip binding: r / lr = 6.67 -> 1, so d = g + wd p = (0.9, 1.2), step lr = 0.01
    bound = run_lars([3.0, 4.0], [[0.6, 0.8]], lr=0.01, clip_lr=True, **kw)
    assert bound == pytest.approx([3 - 0.009, 4 - 0.012], abs=1e-9)


GRADS = [[0.5, -1.0, 2.0], [0.1, 0.3, -0.2], [-1.5, 0.2, 0.7]]
P0 = [1.0, -2.0, 0.5]


@pytest.mark.parametrize("clip,lr", [(False, 0.3), (True, 0.3), (True, 0.005)])
@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_lars_three_steps_match_naive(clip, lr, wd):
    kw = dict(lr=lr, momentum=0.9, eta=0.02)
    got = run_lars(P0, GRADS, weight_decay=wd, clip_lr=clip, **kw)
    want = naive_lars(P0, GRADS, wd=wd, clip=clip, **kw)
    assert got == pytest.approx(want, abs=1e-12)
    # compare with torch SGD (same wd): LARS differs, unless clipping binds (r / lr >= 1 every step)
    sgd_p = nn.Parameter(torch.tensor(P0, dtype=D))
    sgd = torch.optim.SGD([sgd_p], lr=lr, momentum=0.9, weight_decay=wd)
    for g in GRADS:
        sgd_p.grad = torch.tensor(g, dtype=D)
        sgd.step()
    if lr == 0.005:  # eta ||p|| / ||g|| / lr >= 3 here
        assert got == pytest.approx(sgd_p.tolist(), abs=1e-12)
    else:
        assert got != pytest.approx(sgd_p.tolist(), abs=1e-6)


def test_excluded_group_is_plain_sgd_without_weight_decay():
    w = nn.Parameter(torch.tensor(P0, dtype=D))
    b = nn.Parameter(torch.tensor([0.7, -0.1], dtype=D))
    opt = LARS(
        [{"params": [w]}, {"params": [b], "exclude_from_lars": True}],
        lr=0.2,
        momentum=0.9,
        weight_decay=0.05,
        eta=0.02,
        clip_lr=True,
    )
    assert opt.param_groups[1]["weight_decay"] == 0.0  # the optimizer default does not leak in
    opt.param_groups[1]["weight_decay"] = 0.5  # set later by hand: still ignored for excluded groups
    b_grads = [[1.0, 2.0], [-0.5, 0.25], [0.0, 1.0]]
    sgd = torch.optim.SGD([b_ref := nn.Parameter(torch.tensor([0.7, -0.1], dtype=D))], lr=0.2, momentum=0.9)
    for g, gb in zip(GRADS, b_grads):
        w.grad, b.grad = torch.tensor(g, dtype=D), torch.tensor(gb, dtype=D)
        b_ref.grad = torch.tensor(gb, dtype=D)
        opt.step()
        sgd.step()
    # hand: buf1 = (1, 2); buf2 = (0.4, 2.05); buf3 = (0.36, 2.845); sum = (1.76, 6.895)
    assert b.tolist() == pytest.approx([0.7 - 0.2 * 1.76, -0.1 - 0.2 * 6.895], abs=1e-12)
    assert b.tolist() == pytest.approx(b_ref.tolist(), abs=1e-12)
    assert w.tolist() == pytest.approx(
        naive_lars(P0, GRADS, lr=0.2, momentum=0.9, wd=0.05, eta=0.02, clip=True), abs=1e-12
    )


def test_excluded_group_rejects_weight_decay():
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="exclude_from_lars=True must have weight_decay 0"):
        LARS([{"params": [p], "exclude_from_lars": True, "weight_decay": 1e-4}], lr=0.1)


def test_zero_norm_param_and_zero_grad():
    # zero weights (e.g. zero-init BN gamma): the raw grad is used, no trust ratio, no weight decay
    got = run_lars([0.0, 0.0], [[0.3, -0.4], [0.1, 0.1]], lr=0.5, momentum=0.9, weight_decay=0.1, clip_lr=True)
    # step 1: p = -0.5 (0.3, -0.4) = (-0.15, 0.2): now non-zero, so step 2 uses LARS
    assert got == pytest.approx(
        naive_lars([0.0, 0.0], [[0.3, -0.4], [0.1, 0.1]], lr=0.5, momentum=0.9, wd=0.1, eta=0.02, clip=True), abs=1e-12
    )
    one = run_lars([0.0, 0.0], [[0.3, -0.4]], lr=0.5, momentum=0.9, weight_decay=0.1, clip_lr=True)
    assert one == pytest.approx([-0.15, 0.2], abs=1e-15)
    # zero grad on non-zero weights: no weight decay either (reference), the parameter stays put
    assert run_lars([1.0, 2.0], [[0.0, 0.0]], lr=0.5, weight_decay=0.1) == [1.0, 2.0]
    assert all(math.isfinite(v) for v in got)


def test_grad_is_not_modified_and_no_grad_skipped():
    p = nn.Parameter(torch.tensor([3.0, 4.0], dtype=D))
    q = nn.Parameter(torch.tensor([1.0], dtype=D))  # never gets a grad
    opt = LARS([p, q], lr=0.5, weight_decay=0.1)
    p.grad = torch.tensor([0.6, 0.8], dtype=D)
    opt.step()
    assert p.grad.tolist() == [0.6, 0.8] and q.tolist() == [1.0]


class PerParameterLARS(LARS):
    """The earlier per-parameter loop of cassle's LARS, kept as the reference for the foreach
    version (same equations, one parameter at a time)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd, m = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["exclude_from_lars"]:
                    d = g.clone()
                else:
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    ratio = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                    if group["clip_lr"] and lr > 0:
                        ratio = torch.clamp(ratio / lr, max=1.0)
                    d = torch.where((p_norm > 0) & (g_norm > 0), g.add(p, alpha=wd).mul_(ratio), g)
                if m != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(m).add_(d, alpha=1 - group["dampening"])
                    d = d.add(buf, alpha=m) if group["nesterov"] else buf
                p.add_(d, alpha=-lr)


@pytest.mark.parametrize("clip,nesterov,momentum", [(True, False, 0.9), (False, True, 0.9), (False, False, 0.0)])
def test_foreach_lars_matches_the_per_parameter_loop(clip, nesterov, momentum):
    """Several steps on a small network with weight and bias/norm groups, a zero-initialised
    weight, a parameter whose grad is zero, one without grad and a float64 parameter."""

    def make():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        nn.init.zeros_(net[3].weight)  # zero norm: the raw grad, no trust ratio
        extra = nn.Parameter(torch.randn(4, dtype=D))  # another dtype: its own foreach list
        frozen = nn.Parameter(torch.randn(3))  # never gets a grad
        groups = exclude_bias_and_norm_param_groups(net, 1e-4, name="net")
        groups += [{"name": "extra", "params": [extra, frozen], "lr": 0.05}]
        return net, extra, groups

    nets = []
    for cls in (LARS, PerParameterLARS):
        net, extra, groups = make()
        opt = cls(groups, lr=0.3, momentum=momentum, weight_decay=1e-4, eta=0.02, clip_lr=clip, nesterov=nesterov)
        g = torch.Generator().manual_seed(1)
        for step in range(4):
            opt.zero_grad()
            x = torch.randn(16, 6, generator=g)
            loss = net(x).pow(2).mean() + (extra.float() * torch.randn(4, generator=g)).sum()
            loss.backward()
            net[1].bias.grad.zero_() if step == 2 else None  # an all-zero grad
            opt.step()
        nets.append((net, extra))
    (ours, ours_extra), (ref, ref_extra) = nets
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(ours_extra, ref_extra, rtol=1e-12, atol=1e-14)
    assert not torch.equal(ours[0].weight, make()[0][0].weight)  # it did train


def test_matches_timm_in_the_generic_case():
    """timm's Lars agrees when both norms are > 0 and weight_decay > 0 (see lars.py docstring)."""
    timm_optim = pytest.importorskip("timm.optim")
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(4, 3, dtype=D))
    b = nn.Parameter(a.detach().clone())
    ours = LARS([a], lr=0.4, momentum=0.9, weight_decay=1e-3, eta=0.02, clip_lr=True)
    theirs = timm_optim.Lars([b], lr=0.4, momentum=0.9, weight_decay=1e-3, trust_coeff=0.02, trust_clip=True)
    for _ in range(3):
        g = torch.randn(4, 3, dtype=D)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_param_group_helper():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2), nn.LayerNorm([2, 1]))
    groups = exclude_bias_and_norm_param_groups(net, weight_decay=1e-4, lr=0.3, name="backbone")
    assert len(groups) == 2
    ids = lambda ps: {id(x) for x in ps}  # noqa: E731
    assert ids(groups[0]["params"]) == ids([net[0].weight, net[3].weight])
    assert ids(groups[1]["params"]) == ids(
        [net[0].bias, net[1].weight, net[1].bias, net[3].bias, net[4].weight, net[4].bias]
    )  # 2-D LayerNorm params too
    assert groups[0]["weight_decay"] == 1e-4 and not groups[0].get("exclude_from_lars", False)
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["exclude_from_lars"] is True
    assert all(g["lr"] == 0.3 and g["name"] == "backbone" for g in groups)
    LARS(groups, lr=0.1, weight_decay=1e-4)  # builds without complaint

    named = exclude_bias_and_norm_param_groups(nn.Linear(3, 2).named_parameters(), weight_decay=0.1)
    assert [len(g["params"]) for g in named] == [1, 1]
    only_bias = exclude_bias_and_norm_param_groups([nn.Parameter(torch.zeros(3))], weight_decay=0.1)
    assert len(only_bias) == 1 and only_bias[0]["exclude_from_lars"]
    with pytest.raises(ValueError, match="may not set"):
        exclude_bias_and_norm_param_groups(net, weight_decay=0.1, weight_decay_extra=1, params=[])


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------
def _two_group_optimizer(lr0=0.4, lr1=0.1):
    params = [nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))]
    return torch.optim.SGD([{"params": [params[0]], "lr": lr0}, {"params": [params[1]], "lr": lr1}], lr=lr0)


def _lrs_over(sched, opt, n):
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def test_warmup_cosine_hand_values_two_groups():
    opt = _two_group_optimizer(0.4, 0.1)
    sched = warmup_cosine(opt, warmup_steps=5, total_steps=25, warmup_start_lr=0.003, min_lr=0.01)
    lrs = _lrs_over(sched, opt, 26)
    expected = {
        0: [0.003, 0.003],  # both start at the absolute warmup_start_lr
        2: [0.003 + 2 * 0.397 / 4, 0.003 + 2 * 0.097 / 4],  # (b - s) / (W - 1) per step
        4: [0.4, 0.1],  # warmup reaches b at W - 1
        5: [0.4, 0.1],  # cosine starts at b
        15: [0.01 + 0.5 * 0.39, 0.01 + 0.5 * 0.09],  # half way: cos(pi/2) = 0
        25: [0.01, 0.01],  # absolute min_lr at T
    }
    for k, want in expected.items():
        assert lrs[k] == pytest.approx(want, abs=1e-12), k
    # step 24 = last used step: cos(pi * 19/20)
    c = (1 + math.cos(math.pi * 19 / 20)) / 2
    assert lrs[24] == pytest.approx([0.01 + 0.39 * c, 0.01 + 0.09 * c], abs=1e-12)
    assert opt.param_groups[0]["initial_lr"] == 0.4  # base lrs unchanged


def test_warmup_cosine_edge_cases():
    # no warmup: plain cosine from b
    opt = _two_group_optimizer()
    lrs = _lrs_over(warmup_cosine(opt, 0, 4, min_lr=0.0), opt, 6)
    assert [r[0] for r in lrs] == pytest.approx(
        [0.4, 0.2 * (1 + math.cos(math.pi / 4)), 0.2, 0.2 * (1 + math.cos(3 * math.pi / 4)), 0.0, 0.0], abs=1e-12
    )
    # one warmup step: warmup_start_lr then b
    opt = _two_group_optimizer()
    lrs = _lrs_over(warmup_cosine(opt, 1, 3), opt, 2)
    assert lrs[0] == pytest.approx([0.003, 0.003], abs=1e-12)
    assert lrs[1] == pytest.approx([0.4, 0.1], abs=1e-12)
    # warmup longer than the run: the run ends inside the warmup (reference), with a warning
    opt = _two_group_optimizer()
    with pytest.warns(UserWarning, match="warmup"):
        sched = warmup_cosine(opt, 5, 2)
    lrs = _lrs_over(sched, opt, 2)
    assert lrs[1][0] == pytest.approx(0.003 + 0.397 / 4, abs=1e-12)
    with pytest.raises(ValueError, match="total_steps >= 1"):
        warmup_cosine(_two_group_optimizer(), 0, 0)
    with pytest.raises(ValueError, match="base lr 0"):
        warmup_cosine(_two_group_optimizer(0.4, 0.0), 2, 10)


def test_build_scheduler_all_names():
    opt = _two_group_optimizer()
    sched, interval = build_scheduler(
        "warmup_cosine", opt, steps_per_epoch=4, max_epochs=5, warmup_epochs=1, interval="step"
    )
    assert interval == "step"
    lrs = _lrs_over(sched, opt, 21)
    assert lrs[3] == pytest.approx([0.4, 0.1]) and lrs[20] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert lrs[1][0] == pytest.approx(0.003 + 0.397 / 3, abs=1e-12)

    opt = _two_group_optimizer()
    sched, interval = build_scheduler("cosine", opt, steps_per_epoch=2, max_epochs=5, min_lr=0.02, interval="step")
    lrs = _lrs_over(sched, opt, 11)
    assert interval == "step"
    assert lrs[0] == pytest.approx([0.4, 0.1])
    assert lrs[5] == pytest.approx([0.21, 0.06], abs=1e-12)  # (b + min) / 2 at T / 2
    assert lrs[10] == pytest.approx([0.02, 0.02], abs=1e-12)

    opt = _two_group_optimizer()
    sched, interval = build_scheduler("step", opt, steps_per_epoch=2, max_epochs=5, lr_decay_steps=[2, 4])
    lrs = _lrs_over(sched, opt, 5)
    assert interval == "epoch"
    assert [r[0] for r in lrs] == pytest.approx([0.4, 0.4, 0.04, 0.04, 0.004])

    opt = _two_group_optimizer()
    sched, interval = build_scheduler("exponential", opt, steps_per_epoch=2, max_epochs=5, gamma=0.5)
    assert interval == "epoch" and [r[1] for r in _lrs_over(sched, opt, 3)] == pytest.approx([0.1, 0.05, 0.025])

    assert build_scheduler("none", opt, steps_per_epoch=2, max_epochs=5) == (None, None)
    assert set(SCHEDULERS) == {"warmup_cosine", "cosine", "step", "exponential", "none"}


def test_build_scheduler_errors():
    opt = _two_group_optimizer()
    with pytest.raises(ValueError, match="unknown scheduler 'linear'") as err:
        build_scheduler("linear", opt, steps_per_epoch=2, max_epochs=5)
    assert all(name in str(err.value) for name in SCHEDULERS)
    with pytest.raises(ValueError, match="lr_decay_steps"):
        build_scheduler("step", opt, steps_per_epoch=2, max_epochs=5)
    with pytest.raises(ValueError, match="steps_per_epoch >= 1"):
        build_scheduler("cosine", opt, steps_per_epoch=0, max_epochs=5)
