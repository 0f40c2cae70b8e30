"""Each strategy against its source's formula, written out here (float64, fixed tensors, 1e-6):
PODNet's POD-spatial / POD-flat and its weight, LUCIR's Less-Forget on pre-ReLU features, the
pre-ReLU stage maps of our backbones, EWC's per-sample Fisher (mammoth's ``ewc_on``) and LUMP's
buffer views (UCL's ``mixup.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cassle.backbones import build_backbone
from cassle.losses.pod import pod_flat_loss, pod_spatial_loss
from cassle.strategies.frozen import podnet_factor
from cassle.strategies.stages import PreReluRecorder
from main_continual import build_model
from tests.helpers import fake_batch, tiny_args

ATOL = 1e-6


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------ POD (PODNet)
def podnet_spatial(old_maps, new_maps):
    """PODNet's pod(collapse_channels="spatial", normalize=True) written out with Python floats."""
    total = 0.0
    for a_map, b_map in zip(old_maps, new_maps):
        per_image = []
        for a, b in zip(a_map.tolist(), b_map.tolist()):

            def pooled(m):
                C, H, W = len(m), len(m[0]), len(m[0][0])
                sq = [[[m[c][y][x] ** 2 for x in range(W)] for y in range(H)] for c in range(C)]
                a_h = [sum(sq[c][y][x] for x in range(W)) for c in range(C) for y in range(H)]  # sum(dim=3)
                a_w = [sum(sq[c][y][x] for y in range(H)) for c in range(C) for x in range(W)]  # sum(dim=2)
                v = a_h + a_w
                norm = math.sqrt(sum(t * t for t in v))
                return [t / norm for t in v]

            pa, pb = pooled(a), pooled(b)
            per_image.append(math.sqrt(sum((x - y) ** 2 for x, y in zip(pa, pb))))  # frobenius_norm(a - b)
        total += sum(per_image) / len(per_image)
    return total / len(old_maps)


def test_pod_spatial_is_podnets_formula():
    new = [rand(3, 4, 5, 6, seed=1), rand(3, 2, 3, 3, seed=2)]
    old = [rand(3, 4, 5, 6, seed=3), rand(3, 2, 3, 3, seed=4)]
    assert float(pod_spatial_loss(new, old)) == pytest.approx(podnet_spatial(old, new), abs=ATOL)
    # signs are lost by the squares: a map and its negative are the same attention
    assert float(pod_spatial_loss([-old[0]], [old[0]])) == pytest.approx(0.0, abs=ATOL)


def test_pod_flat_is_a_cosine_embedding_loss_of_the_pooled_maps():
    new, old = rand(4, 3, 2, 2, seed=5), rand(4, 3, 2, 2, seed=6)
    expected = 0.0
    for a, b in zip(new.tolist(), old.tolist()):
        fa = [sum(sum(row) for row in ch) / 4 for ch in a]
        fb = [sum(sum(row) for row in ch) / 4 for ch in b]
        dot = sum(x * y for x, y in zip(fa, fb))
        expected += 1 - dot / (math.sqrt(sum(x * x for x in fa)) * math.sqrt(sum(y * y for y in fb)))
    assert float(pod_flat_loss(new, old)) == pytest.approx(expected / 4, abs=ATOL)


def test_pod_weight_counts_the_current_task():
    # PODNet: scheduled_factor * sqrt(n_classes / task_size), n_classes including the new task's
    for t in range(5):
        assert podnet_factor(t) == pytest.approx(math.sqrt((t + 1) * 20 / 20))
    args = tiny_args(
        "barlow_twins", "--num_tasks", "5", "--task_idx", "2", "--cl_strategy", "pod", "--pod_flat_lamb", "1"
    )
    args.num_classes = 4
    pod = build_model(args).strategies["pod"]
    assert pod.lamb == pytest.approx(3 * math.sqrt(3)) and pod.flat_lamb == pytest.approx(math.sqrt(3))


# ------------------------------------------------------------------ pre-ReLU stage maps
def test_tiny_stage_maps_are_taken_before_the_relu():
    net, _ = build_backbone("tiny", cifar=True)
    net = net.double()
    rec = PreReluRecorder(net)
    x = rand(2, 3, 8, 8, seed=7)
    maps = rec.record(lambda: net(x))
    h, expected = x, []
    for stage in net.features:
        pre = stage[1](stage[0](h))  # conv, BN: the map before the ReLU
        expected.append(pre)
        h = torch.relu(pre)
    assert len(maps) == 3 and any((m < 0).any() for m in maps)
    for m, e in zip(maps, expected):
        torch.testing.assert_close(m, e, atol=ATOL, rtol=0)


def test_resnet_stage_maps_are_out_plus_identity_before_the_last_relu():
    net, _ = build_backbone("resnet18", cifar=True)
    net = net.double().eval()
    rec = PreReluRecorder(net, stages=[-1])
    x = rand(2, 3, 16, 16, seed=8)
    (m,) = rec.record(lambda: net(x))
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    h = net.layer3(net.layer2(net.layer1(h)))
    h = net.layer4[0](h)
    block = net.layer4[1]  # torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)
    pre = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(h))))) + h
    torch.testing.assert_close(m, pre, atol=ATOL, rtol=0)
    assert (m < 0).any()


def test_an_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="no known stages before a final ReLU"):
        PreReluRecorder(nn.Sequential(nn.Conv2d(3, 4, 3)))


# ------------------------------------------------------------------ Less-Forget (LUCIR)
def test_less_forget_compares_pooled_pre_relu_features_as_lucir():
    """LUCIR: CosineEmbeddingLoss(cur_features, ref_features, 1) * lamda_base * sqrt(old / new),
    the features being the pooled last-block output without its ReLU."""
    args = tiny_args("barlow_twins", "--num_tasks", "4", "--task_idx", "2", "--cl_strategy", "less_forget")
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args).double()
    with torch.no_grad():  # a frozen model that differs from the current one
        for p in model.frozen_backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, views, targets = fake_batch()
    views = [v.double() for v in views]
    model._step_indexes = torch.arange(8)
    out = model.ssl_step(views, targets)
    expected = 0.0
    for v in views:
        feats = []
        for net in (model.backbone, model.frozen_backbone):
            h = v
            for stage in net.features[:-1]:
                h = stage(h)
            last = net.features[-1]
            feats.append(last[1](last[0](h)).mean(dim=(2, 3)).tolist())  # no final ReLU
        cos = [
            sum(a * b for a, b in zip(fa, fb)) / (math.sqrt(sum(a * a for a in fa)) * math.sqrt(sum(b * b for b in fb)))
            for fa, fb in zip(*feats)
        ]
        expected += sum(1 - c for c in cos) / len(cos)
    expected = 5.0 * math.sqrt(2) * expected / len(views)
    assert float(out.logs["less_forget_loss"]) == pytest.approx(expected, abs=ATOL)


# ------------------------------------------------------------------ EWC: per-sample Fisher
def _net():
    from cassle.methods.prototypes import Prototypes

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(inplace=True),
        Prototypes(5, 3),
    ).double()


def _two_view_loss(net, x1, x2):
    """mean_i l_i with l_i = sum(tanh(net(x1_i))^2) + sum(sin(net(x2_i))): a per-sample loss."""
    return ((torch.tanh(net(x1)) ** 2).sum(1) + torch.sin(net(x2)).sum(1)).mean()


def test_per_sample_fisher_is_the_mean_squared_per_sample_gradient():
    """mammoth's ewc_on loop written out: for each example alone, backward, fish += grad^2; / N."""
    from cassle.strategies.fisher import sample_fisher

    net = _net()
    net.train()
    for m in net.modules():  # running statistics: each sample's loss depends on that sample only
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.eval()
    params = dict(net.named_parameters())
    batches = [(rand(6, 3, 5, 5, seed=s), rand(6, 3, 5, 5, seed=s + 10)) for s in range(2)]
    sums, seen = sample_fisher(
        net, params, [(6, lambda b=b: _two_view_loss(net, *b)) for b in batches], max_samples=10, chunk=4
    )
    assert seen == 10  # 6 + the first 4 of the second batch
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for b, (x1, x2) in enumerate(batches):
        for i in range(6 if b == 0 else 4):
            g = torch.autograd.grad(_two_view_loss(net, x1[i : i + 1], x2[i : i + 1]), list(params.values()))
            for n, gi in zip(params, g):
                expected[n] += gi**2
    for n in params:
        torch.testing.assert_close(sums[n].double() / seen, expected[n] / 10, atol=ATOL, rtol=1e-6)


def test_per_sample_contributions_of_a_coupled_loss_add_up_to_the_batch_gradient():
    """Train-mode BatchNorm and a Barlow-like cross-correlation couple the batch: B * g_i is image
    i's share, and mean_i B * g_i = sum_i g_i is the gradient of the batch loss."""
    from cassle.strategies.fisher import PerSampleGrads

    net = _net()
    x1, x2 = rand(6, 3, 5, 5, seed=1), rand(6, 3, 5, 5, seed=2)

    def loss():
        a, b = net(x1), net(x2)
        a, b = (a - a.mean(0)) / a.std(0), (b - b.mean(0)) / b.std(0)
        c = a.T @ b / 6
        return ((1 - c.diagonal()) ** 2).sum() + 0.1 * (c**2).sum()

    params = dict(net.named_parameters())
    batch_grad = dict(zip(params, torch.autograd.grad(loss(), list(params.values()))))
    taps = PerSampleGrads(net, params, chunk=4)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for name, _, g in taps.per_sample(loss, batch_size=6):
        total[name] += g.sum(dim=0)
    for n in params:
        torch.testing.assert_close(total[n], batch_grad[n], atol=ATOL, rtol=1e-6)


def test_online_ewc_decays_the_old_fisher(monkeypatch):
    from cassle.strategies import ewc as ewc_module

    args = tiny_args("barlow_twins", "--num_tasks", "2", "--cl_strategy", "ewc", "--ewc_gamma", "0.25")
    args.num_classes = 4
    ewc = build_model(args).strategies["ewc"]
    model = build_model(args)
    ewc = model.strategies["ewc"]
    for f in ewc._tensors("fisher"):
        f.fill_(4.0)

    def fake_fisher(root, named, batches, max_samples):  # sum 6 over 3 samples: F_task = 2
        return {n: torch.full_like(p, 6.0) for n, p in named.items()}, 3

    monkeypatch.setattr(ewc_module, "sample_fisher", fake_fisher)
    monkeypatch.setattr(ewc_module.EWC, "_batches", lambda self, model, trainer: iter(()))
    ewc.on_task_end(model, trainer=None)
    for f in ewc._tensors("fisher"):  # 0.25 * 4 + 6 / 3
        assert torch.all(f == 3.0)


# ------------------------------------------------------------------ LUMP: UCL's buffer views
def test_lump_ucl_views_are_a_fresh_crop_flip_and_the_stored_second_view():
    """UCL mixup.py: mixed_x = lam x1 + (1 - lam) transform(buffered image),
    mixed_x_aug = lam x2 + (1 - lam) (x2 stored when the image was buffered)."""
    from cassle.data import ContinualDataModule

    args = tiny_args("barlow_twins", "--num_tasks", "2", "--cl_strategy", "lump", "--lump_views", "ucl")
    args.num_classes = 4
    model = build_model(args)
    lump = model.strategies["lump"]
    dm = ContinualDataModule(args)
    lump.stored_views.on_train_start(dm, "cpu")
    color = torch.tensor([200, 40, 90], dtype=torch.uint8)

    class Source:  # one flat colour per image: any crop + flip of it is that colour
        def gather(self, indices):
            return color.expand(len(indices), 20, 20, 3).clone()

    lump.__dict__["source"] = Source()
    idx, views_a, targets = fake_batch(seed=1)
    ctx = {}
    assert lump.batch_hook(model, views_a, ctx) is views_a  # empty buffer: nothing mixed
    lump.after_step(model, idx, targets, None, ctx)
    lump.__dict__["has_data"] = True
    slots = torch.tensor([3, 1, 0, 2, 7, 6, 5, 4])
    lump.buffer.sample = lambda n: slots
    _, views_b, _ = fake_batch(seed=2)
    ctx = {}
    mixed = lump.batch_hook(model, views_b, ctx)
    lam = float(ctx["lump_lambda"])
    mean, std = torch.tensor(dm.mean).view(3, 1, 1), torch.tensor(dm.std).view(3, 1, 1)
    fresh = ((color.float() / 255).view(3, 1, 1) - mean) / std
    torch.testing.assert_close(mixed[0], lam * views_b[0] + (1 - lam) * fresh.expand_as(views_b[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[1], lam * views_b[1] + (1 - lam) * views_a[1][slots], atol=1e-6, rtol=0)


def test_der_ucl_views_replay_a_crop_flip_of_the_buffered_image():
    """UCL der.py: buf_outputs = backbone(transform(buffered image)), transform = crop + flip."""
    from cassle.data import ContinualDataModule
    from cassle.strategies.lump_views import crop_flip_augment

    args = tiny_args("barlow_twins", "--num_tasks", "2", "--cl_strategy", "der", "--der_views", "ucl")
    args.num_classes = 4
    der = build_model(args).strategies["der"]
    dm = ContinualDataModule(args)
    der.__dict__["crop_flip"] = crop_flip_augment(dm, 16, "cpu")
    color = torch.tensor([10, 250, 128], dtype=torch.uint8)

    class Source:
        def gather(self, indices):
            return color.expand(len(indices), 20, 20, 3).clone()

    der.__dict__["source"] = Source()
    der.buffer.add(torch.arange(8), torch.zeros(8, dtype=torch.long), 0, z=torch.zeros(8, 64))
    x, slots = der.replay_input(8)
    mean, std = torch.tensor(dm.mean).view(3, 1, 1), torch.tensor(dm.std).view(3, 1, 1)
    expected = ((color.float() / 255).view(3, 1, 1) - mean) / std
    assert x.shape == (8, 3, 16, 16) and sorted(slots.tolist()) == list(range(8))
    torch.testing.assert_close(x, expected.expand_as(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["simclr", "mocov2plus", "byol", "barlow_twins", "swav", "vicreg"])
def test_every_methods_per_sample_contributions_add_up_to_its_batch_gradient(method):
    """EWC's per-sample pass on each method's real SSL loss (queues, predictors, prototypes, two
    views per image): sum_i g_i is the batch gradient (float32 model: 1e-5 of the largest entry)."""
    import copy

    from cassle.strategies.ewc import ssl_parameters
    from cassle.strategies.fisher import PerSampleGrads

    args = tiny_args(method, "--num_tasks", "2", "--cl_strategy", "ewc")
    args.num_classes = 4
    torch.manual_seed(0)
    model = build_model(args).train()
    _, views, targets = fake_batch()
    named = dict(ssl_parameters(model))
    saved = copy.deepcopy(model.state_dict())  # the loss enqueues keys (MoCo, SwAV): same state twice
    grads = torch.autograd.grad(model.plain_ssl_loss(views, targets), list(named.values()), allow_unused=True)
    model.load_state_dict(saved)
    total = {n: torch.zeros_like(p) for n, p in named.items()}
    for name, _, g in PerSampleGrads(model, named).per_sample(lambda: model.plain_ssl_loss(views, targets), 8):
        total[name] += g.sum(dim=0)
    scale = max(g.abs().max() for g in grads if g is not None)
    for (name, t), g in zip(total.items(), grads):
        expected = torch.zeros_like(t) if g is None else g
        torch.testing.assert_close(t, expected, atol=1e-5 * float(scale), rtol=0, msg=lambda m, n=name: f"{n}: {m}")
