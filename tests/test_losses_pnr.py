"""PNR's losses (cassle/losses/pnr.py) against their equations written out here, element by
element, on fixed float64 tensors (Cha et al., ICML 2024; public code csm9493/PNR)."""

from __future__ import annotations

import math

import pytest
import torch

from cassle.losses import pnr_infonce_losses, pnr_moco_losses, pnr_negative_loss

TOL = dict(rtol=1e-6, atol=1e-6)


def _t(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _cos(a, b):
    return float((a @ b) / (a.norm() * b.norm()))


def _infonce_written_out(p1, p2, z1, z2, f1, f2, T):
    """Section 4.1, as the code computes it: the sums over j skip j = i in both blocks."""
    n = z1.shape[0]
    P, Z, Fr = (_unit(torch.cat(x)) for x in ((p1, p2), (z1, z2), (f1, f2)))
    s = lambda a, b: float(a @ b) / T  # noqa: E731
    main = reg = 0.0
    for i in range(2 * n):
        other = (i + n) % (2 * n)
        den = sum(math.exp(s(Z[i], Z[j])) + math.exp(s(Z[i], Fr[j])) for j in range(2 * n) if j != i)
        main += -(s(Z[i], Z[other]) - math.log(den)) / (2 * n)
        den = sum(math.exp(s(P[i], Fr[j])) + math.exp(s(P[i], Z[j])) for j in range(2 * n) if j != i)
        reg += -(s(P[i], Fr[i]) - math.log(den)) / (2 * n)
    return main, reg


def test_pnr_infonce_matches_the_equation_and_is_view_symmetric():
    p1, p2, z1, z2, f1, f2 = (_t(5, 4, seed=s) for s in range(6))
    main, reg = pnr_infonce_losses(p1, p2, z1, z2, f1, f2, temperature=0.3)
    want_main, want_reg = _infonce_written_out(p1, p2, z1, z2, f1, f2, 0.3)
    torch.testing.assert_close(main, torch.tensor(want_main, dtype=torch.float64), **TOL)
    torch.testing.assert_close(reg, torch.tensor(want_reg, dtype=torch.float64), **TOL)
    # the code averages with the view-swapped call: the same value
    swapped = pnr_infonce_losses(p2, p1, z2, z1, f2, f1, temperature=0.3)
    torch.testing.assert_close(swapped[0], main, **TOL)
    torch.testing.assert_close(swapped[1], reg, **TOL)


def _moco_written_out(q, k, p, f, Qk, Qf, T, Td):
    pn, fn = [_unit(x) for x in p], [_unit(x) for x in f]
    main = reg = 0.0
    n = q[0].shape[0]
    for v, w in ((0, 1), (1, 0)):
        neg = torch.cat([Qk[w], Qf[w]], dim=1)  # (D, 2K)
        for i in range(n):
            pos, negs = float(q[v][i] @ k[w][i]) / T, (q[v][i] @ neg) / T
            main += -(pos - math.log(math.exp(pos) + float(negs.exp().sum()))) / (2 * n)
            pos, negs = float(pn[v][i] @ fn[v][i]) / Td, (pn[v][i] @ neg) / Td
            reg += -(pos - math.log(math.exp(pos) + float(negs.exp().sum()))) / (2 * n)
    return main, reg


def test_pnr_moco_matches_the_equation():
    q = [_unit(_t(4, 3, seed=s)) for s in (0, 1)]
    k = [_unit(_t(4, 3, seed=s)) for s in (2, 3)]
    p = [_t(4, 3, seed=s) for s in (4, 5)]
    f = [_t(4, 3, seed=s) for s in (6, 7)]
    Qk, Qf = _unit(_t(2, 6, 3, seed=8)).transpose(1, 2), _unit(_t(2, 6, 3, seed=9)).transpose(1, 2)
    main, reg = pnr_moco_losses(q, k, p, f, Qk, Qf, temperature=0.2, distill_temperature=0.5)
    want_main, want_reg = _moco_written_out(q, k, p, f, Qk, Qf, 0.2, 0.5)
    torch.testing.assert_close(main, torch.tensor(want_main, dtype=torch.float64), **TOL)
    torch.testing.assert_close(reg, torch.tensor(want_reg, dtype=torch.float64), **TOL)


@pytest.mark.parametrize("kind", ["byol", "cosine", "mse"])
def test_pnr_negative_matches_the_equation(kind):
    p1, p2, f1, f2 = (_t(3, 4, seed=s) for s in range(4))
    got = pnr_negative_loss(p1, p2, f1, f2, kind=kind)
    terms = []
    for p, f in ((p1, f2), (p2, f1)):  # the anchor's prediction vs the frozen *other* view
        rows = range(p.shape[0])
        if kind == "byol":
            terms.append(sum(2 - 2 * _cos(p[i], f[i]) for i in rows) / len(rows))
        elif kind == "cosine":
            terms.append(sum(-_cos(p[i], f[i]) for i in rows) / len(rows))
        else:
            terms.append(float(((p - f) ** 2).sum()) / p.numel())
    torch.testing.assert_close(got, torch.tensor(sum(terms) / 2, dtype=torch.float64), **TOL)


def test_pnr_negative_is_detached_from_the_frozen_side_and_rejects_unknown_kinds():
    p1, p2 = (_t(3, 4, seed=s).requires_grad_() for s in (0, 1))
    f1, f2 = (_t(3, 4, seed=s).requires_grad_() for s in (2, 3))
    pnr_negative_loss(p1, p2, f1, f2, kind="mse").backward()
    assert f1.grad is None and f2.grad is None and p1.grad is not None
    with pytest.raises(ValueError, match="unknown pseudo-negative kind"):
        pnr_negative_loss(p1, p2, f1, f2, kind="l1")
