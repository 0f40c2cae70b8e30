"""POCON's merge terms (cassle/losses/pocon.py) against the equation written out element by element
on fixed float64 tensors (Gomez-Villa et al., WACV 2024, section 3; public code
alviur/pocon_wacv2024 src/approach/sslModels.py: torch.dist of F.normalize'd rows)."""

from __future__ import annotations

import math

import pytest
import torch

from cassle.losses import pocon_l2_term, pocon_merge_loss

TOL = dict(rtol=1e-9, atol=1e-9)


def _t(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _l2_written_out(p, e):
    """sqrt( sum_i sum_d ( p_id / |p_i| - e_id / |e_i| )^2 ): one Frobenius norm over the batch."""
    total = 0.0
    for i in range(p.shape[0]):
        np_ = math.sqrt(sum(float(x) ** 2 for x in p[i]))
        ne = math.sqrt(sum(float(x) ** 2 for x in e[i]))
        total += sum((float(a) / np_ - float(b) / ne) ** 2 for a, b in zip(p[i], e[i]))
    return math.sqrt(total)


def test_l2_term_is_the_frobenius_norm_of_normalised_rows():
    p, e = _t(6, 5, seed=0), _t(6, 5, seed=1)
    got = pocon_l2_term(p, e)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor(_l2_written_out(p, e), dtype=torch.float64), **TOL)
    # not averaged over the batch: B copies of the same rows give sqrt(B) times the value
    four = pocon_l2_term(p.repeat(4, 1), e.repeat(4, 1))
    torch.testing.assert_close(four, 2 * got, **TOL)


@pytest.mark.parametrize("task0", [True, False])
def test_merge_loss_is_lambda_exp_adapt_plus_lambda_ret_retro(task0):
    pa, pb, ea, eb, ra, rb, oa, ob = (_t(4, 3, seed=s) for s in range(2, 10))
    retro_p, old = (None, None) if task0 else ([ra, rb], [oa, ob])
    total, adapt, retro = pocon_merge_loss([pa, pb], [ea, eb], retro_p, old, adapt_lamb=1.5, retro_lamb=25.0)
    want_adapt = _l2_written_out(pa, ea) + _l2_written_out(pb, eb)
    want_retro = 0.0 if task0 else _l2_written_out(ra, oa) + _l2_written_out(rb, ob)
    torch.testing.assert_close(adapt, torch.tensor(want_adapt, dtype=torch.float64), **TOL)
    torch.testing.assert_close(retro, torch.tensor(want_retro, dtype=torch.float64), **TOL)
    want = 1.5 * want_adapt + 25.0 * want_retro
    torch.testing.assert_close(total, torch.tensor(want, dtype=torch.float64), **TOL)


def test_targets_get_no_gradient_and_the_prediction_does():
    p = _t(4, 3, seed=11).requires_grad_()
    e = _t(4, 3, seed=12).requires_grad_()
    pocon_l2_term(p, e).backward()
    assert e.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_identical_directions_cost_nothing_whatever_the_scale():
    p = _t(5, 4, seed=13)
    torch.testing.assert_close(pocon_l2_term(3.0 * p, p), torch.zeros((), dtype=torch.float64), **TOL)


def test_view_count_mismatch_is_an_error():
    a = _t(2, 3, seed=14)
    with pytest.raises(ValueError, match="views"):
        pocon_merge_loss([a, a], [a], None, None)
