"""Every registered continual strategy composes right with the method and a CaSSLe distiller: the
step's loss equals, in value, the SSL loss (on the batch the strategy builds: replayed or mixed
images) + distill_lamb x the distillation loss + each strategy's weighted term, all recomputed
here from the model's modules (each strategy with Barlow Twins + its distiller; all the loss-term
strategies together with every method + its paper distiller); and one SGD step on it lowers each
term on the same batch compared with the same step on the loss without that term (a term entering
with the wrong sign rises).

A strategy added to ``STRATEGIES`` without an entry in ``REFERENCE`` fails here with a message.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from cassle.distillers import DEFAULT_DISTILLER
from cassle.losses.barlow import barlow_loss_func
from cassle.losses.der import der_loss
from cassle.losses.ird import ird_loss
from cassle.losses.less_forget import less_forget_loss
from cassle.losses.osiris import osiris_cross_task_loss
from cassle.losses.pfr import pfr_loss
from cassle.losses.pod import pod_spatial_loss
from cassle.losses.simclr import simclr_loss_func
from cassle.methods import METHODS
from cassle.strategies import STRATEGIES
from tests.helpers import fake_batch
from tests.step_reference import distill_reference, sgd_step, ssl_reference, task1_model

LAMB, TASK = 0.7, 2
TOL = dict(rtol=1e-5, atol=1e-6)
# Non-default weights, so a weight that is dropped or taken from elsewhere shows.
FLAGS = [
    "--distill_lamb",
    str(LAMB),
    "--ewc_lamb",
    "3.0",
    "--less_forget_lamb",
    "2.0",
    "--pod_lamb",
    "1.5",
    "--pfr_lamb",
    "0.8",
    "--der_alpha",
    "0.3",
    "--lump_alpha",
    "0.4",
    "--buffer_size",
    "16",
    "--replay_batch_size",
    "4",
    "--si_c",
    "0.7",
    "--derpp_alpha",
    "0.25",
    "--derpp_beta",
    "0.6",
    "--co2l_lamb",
    "0.9",
    "--co2l_current_temp",
    "0.3",
    "--co2l_past_temp",
    "0.05",
    "--cromo_alpha",
    "0.5",
    "--cromo_lambda",
    "0.6",
    "--osiris_lamb",
    "0.4",
    "--osiris_temperature",
    "0.2",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads cost minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Source:
    """Stands in for the datamodule's ReplaySource: image ``i``'s views are a fixed function of i."""

    def views(self, indices):
        out = []
        for view in range(2):
            imgs = [
                torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(100 * int(i) + view)) for i in indices
            ]
            out.append(torch.stack(imgs))
        return out


def feats(model, views):
    return [model.backbone(v) for v in views]


def frozen_feats(model, views):
    with torch.no_grad():
        return [model.frozen_backbone(v) for v in views]


def pre_relu_stages(backbone, views):
    """The tiny net's three conv blocks before their ReLU (conv, BN), all views concatenated along
    the batch: what POD reads (PODNet's stage outputs before the final ReLU)."""
    per_view = []
    for v in views:
        h, out = v, []
        for block in backbone.features:
            pre = block[1](block[0](h))
            out.append(pre)
            h = torch.relu(pre)
        per_view.append(out)
    return [torch.cat(hs) for hs in zip(*per_view)]


def pooled_pre_relu(backbone, v):
    """LUCIR's features: the last block's map before its ReLU, globally average-pooled."""
    return pre_relu_stages(backbone, [v])[-1].mean(dim=(2, 3))


def ssl_params(model):  # EWC's weights: the trainable SSL model itself, its backbone and heads
    return [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and n.split(".")[0] in ("backbone", "projector", "predictor", "prototypes")
    ]


# name -> (views_fn(model, views, rec) -> views the SSL loss sees, term_fn(model, views, rec) -> term)
# ``rec`` holds what the step drew at random (replayed slots, the mixup lambda).
REFERENCE = {
    "ewc": (
        None,
        lambda m, v, rec: (
            0.5 * 3.0 * sum((f * (p - a) ** 2).sum() for p, a, f in zip(ssl_params(m), rec["anchor"], rec["fisher"]))
        ),
    ),
    "less_forget": (
        None,
        lambda m, v, rec: (
            2.0
            * math.sqrt(TASK)
            * torch.stack(
                [
                    less_forget_loss(pooled_pre_relu(m.backbone, x), pooled_pre_relu(m.frozen_backbone, x).detach())
                    for x in v
                ]
            ).mean()
        ),
    ),
    "pod": (
        None,
        lambda m, v, rec: (
            1.5
            * math.sqrt(TASK + 1)
            * pod_spatial_loss(
                pre_relu_stages(m.backbone, v), [h.detach() for h in pre_relu_stages(m.frozen_backbone, v)]
            )
        ),
    ),
    "pfr": (
        None,
        lambda m, v, rec: (
            0.8
            * torch.stack(
                [pfr_loss(m.strategies["pfr"].projector(f), o) for f, o in zip(feats(m, v), frozen_feats(m, v))]
            ).mean()
        ),
    ),
    "der": (None, lambda m, v, rec: der_term(m, rec, 0.3)),
    "replay": (lambda m, v, rec: [torch.cat([x, r]) for x, r in zip(v, rec["samples"][0][0])], None),
    "lump": (lambda m, v, rec: [rec["lam"] * x + (1 - rec["lam"]) * r for x, r in zip(v, rec["samples"][0][0])], None),
    # SI (default --si_params backbone): c * sum Omega (theta - theta~)^2, no 1/2
    "si": (
        None,
        lambda m, v, rec: (
            0.7
            * sum(
                (w * (p - a) ** 2).sum()
                for p, a, w in zip(m.backbone.parameters(), rec["si_anchor"], rec["importance"])
            )
        ),
    ),
    # DER++: alpha * DER on one buffer batch + beta * the method's SSL loss on another
    "derpp": (
        None,
        lambda m, v, rec: der_term(m, rec, 0.25) + 0.6 * ssl_reference(rec["method"], m, rec["samples"][1][0])[0],
    ),
    # Co2L: lamb * IRD between the current and the frozen projections of all views at once
    "co2l": (
        None,
        lambda m, v, rec: (
            0.9
            * ird_loss(
                torch.cat(ssl_reference(rec["method"], m, v)[1]),
                torch.cat([m.frozen_projector(m.frozen_backbone(x)) for x in v]).detach(),
                0.3,
                0.05,
            )
        ),
    ),
    # CroMo-Mixup (Barlow Twins, lambda 0.6, M = min(B, 4)): per view, the mixed images' projection
    # against the current images' (weight lambda) and the frozen model's of the buffer images (1 - lambda)
    "cromo_mixup": (None, lambda m, v, rec: cromo_term(m, v, rec, 0.6, 4)),
    # Osiris-R (lamb 0.4, T 0.2, 4 buffer images): the batch untouched; in h's space the cross-task loss
    # of the current views against the buffer views + NT-Xent of the buffer views
    "osiris": (None, lambda m, v, rec: osiris_term(m, v, rec, 0.4, 0.2)),
}


def osiris_term(model, views, rec, lamb, temp):
    h = model.strategies["osiris"].h
    z = [h(model.backbone(x)) for x in views]
    u = [h(model.backbone(r)) for r in rec["samples"][0][0]]
    cross = osiris_cross_task_loss(z[0], z[1], u[0], u[1], temp)
    return lamb * (cross + simclr_loss_func(u[0], u[1], temperature=temp))


def cromo_term(model, views, rec, lam, k):
    replayed = rec["samples"][0][0]
    z_new = ssl_reference(rec["method"], model, views)[1]
    hp = model.hparams
    terms = []
    for x, r, zn in zip(views, replayed, z_new):
        z_mix = model.projector(model.backbone(lam * x[:k] + (1 - lam) * r))
        z_old = model.frozen_projector(model.frozen_backbone(r)).detach()
        terms.append(
            lam * barlow_loss_func(z_mix, zn[:k], hp.lamb, hp.scale_loss)
            + (1 - lam) * barlow_loss_func(z_mix, z_old, hp.lamb, hp.scale_loss)
        )
    return sum(terms) / len(terms)


def der_term(model, rec, alpha):
    """alpha * MSE between today's backbone features of the first replayed batch and the stored ones
    (DER's default --der_target backbone, as UCL)."""
    views, stored_z = rec["samples"][0]
    return alpha * der_loss(model.backbone(views[0]), stored_z)


# each strategy with Barlow Twins; all the loss-term strategies at once with every method
CASES = {name: ("barlow_twins", [name]) for name in STRATEGIES}
CASES.update(
    {
        f"all_terms-{m}": (m, [n for n in ("ewc", "si", "less_forget", "pod", "pfr", "co2l", "der") if n in STRATEGIES])
        for m in METHODS
    }
)


def build(method, names):
    missing = [n for n in names if n not in REFERENCE]
    assert not missing, (
        f"strategy {missing[0]!r} has no reference in tests/test_strategy_composition.py: "
        "add how it changes the batch and its weighted term"
    )
    model = task1_model(
        method, *FLAGS, "--task_idx", str(TASK), "--cl_strategy", *names, distiller=DEFAULT_DISTILLER[method]
    )
    rec: dict = {"method": method}
    g = torch.Generator().manual_seed(1)
    for name, s in model.strategies.items():
        if name == "ewc":  # a non-zero Fisher and anchors away from the weights
            for f, a in zip(s._tensors("fisher"), s._tensors("anchor")):
                f.copy_(torch.rand(f.shape, generator=g))
                a.add_(0.1 * torch.randn(a.shape, generator=g))
            rec["fisher"] = [f.clone() for f in s._tensors("fisher")]
            rec["anchor"] = [a.clone() for a in s._tensors("anchor")]
        if name == "si":  # a non-zero importance and anchors away from the weights
            for w, a in zip(s._tensors("importance"), s._tensors("anchor")):
                w.copy_(torch.rand(w.shape, generator=g))
                a.add_(0.1 * torch.randn(a.shape, generator=g))
            rec["importance"] = [w.clone() for w in s._tensors("importance")]
            rec["si_anchor"] = [a.clone() for a in s._tensors("anchor")]
        if getattr(s, "buffer", None) is not None:
            s.__dict__.update(source=Source(), has_data=True)
            z = torch.randn(16, s.buffer.z_dim, generator=g) if s.buffer.z_dim else None
            s.buffer.add(torch.arange(50, 66), torch.zeros(16, dtype=torch.long), 0, z=z)
    return model, rec


def spy(model, rec, monkeypatch):
    """Record the slots each replay strategy samples and LUMP's lambda."""
    for s in model.strategies.values():
        if getattr(s, "buffer", None) is None:
            continue
        sample = s.buffer.sample

        def recording(n, sample=sample, s=s):
            slots = sample(n)
            stored_z = s.buffer.z[slots].clone() if s.buffer.z_dim else None
            rec.setdefault("samples", []).append((Source().views(s.buffer.indices[slots]), stored_z))
            return slots

        s.buffer.sample = recording
    import cassle.strategies.replay as replay

    draw = replay.sample_mixup_lambda

    def recording_lambda(*a, **k):
        rec["lam"] = draw(*a, **k)
        return rec["lam"]

    monkeypatch.setattr(replay, "sample_mixup_lambda", recording_lambda)


def reference_terms(method, model, names, views, rec):
    """{term: value} of the reference step; 'ssl' and 'distill' unweighted, the others weighted."""
    for n in names:
        if REFERENCE[n][0] is not None:
            views = REFERENCE[n][0](model, views, rec)
    ssl, z = ssl_reference(method, model, views)
    terms = {"ssl": ssl, "distill": distill_reference(DEFAULT_DISTILLER[method], model, z, views)}
    terms.update({n: REFERENCE[n][1](model, views, rec) for n in names if REFERENCE[n][1] is not None})
    return terms


def total(terms, without=None):
    return sum((LAMB * v if k == "distill" else v) for k, v in terms.items() if k != without)


@pytest.mark.parametrize("case", list(CASES))
def test_strategy_step_is_the_sum_of_its_weighted_terms(case, monkeypatch):
    method, names = CASES[case]
    model, rec = build(method, names)
    spy(model, rec, monkeypatch)
    indexes, views, targets = fake_batch()
    before = copy.deepcopy(model)
    model._step_indexes = indexes
    out = model.ssl_step(views, targets)

    terms = reference_terms(method, before, names, views, rec)
    for name, value in terms.items():
        assert name == "ssl" or abs(value.item()) > 1e-4, f"term {name} vanishes: its sign cannot show"
    torch.testing.assert_close(out.loss, total(terms), **TOL)
    for name in names:
        if name in terms:
            torch.testing.assert_close(out.logs[f"{name}_loss"], terms[name].detach(), **TOL)

    # One SGD step on the total lowers each non-SSL term, compared with a step without it.
    sgd_step(model, out.loss)
    after = reference_terms(method, model, names, views, rec)
    for name in terms:
        if name == "ssl":
            continue
        other = copy.deepcopy(before)
        sgd_step(other, total(reference_terms(method, other, names, views, rec), without=name))
        without = reference_terms(method, other, names, views, rec)[name]
        assert after[name] < without, (
            f"{name}: {terms[name].item():.6f} -> {after[name].item():.6f} after a "
            f"step on the total, {without.item():.6f} after a step without it"
        )
