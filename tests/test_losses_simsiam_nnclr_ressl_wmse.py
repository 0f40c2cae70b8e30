"""SimSiam, NNCLR, ReSSL and W-MSE losses, W-MSE's whitening and the relational distillation term
against loops written from the papers' equations (float64, fixed tensors, 1e-6).

The loops work on Python floats (``tolist()``), sharing no code path with the vectorised losses.
"""

from __future__ import annotations

import math

import pytest
import torch

from cassle.losses import nnclr_loss_func, relational_distill_loss, ressl_loss_func, simsiam_loss_func, wmse_loss_func
from cassle.methods.wmse import whiten

TOL = dict(rtol=1e-6, atol=1e-6)


def _t(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _cos(a, b):
    return _dot(a, b) / math.sqrt(_dot(a, a) * _dot(b, b))


def _unit(a):
    n = math.sqrt(_dot(a, a))
    return [x / n for x in a]


def _log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


# --------------------------------------------------------------------------- SimSiam
@pytest.mark.parametrize("simplified", [True, False])
def test_simsiam_is_negative_cosine_with_stop_gradient(simplified):
    p, z = _t(5, 4, seed=0).requires_grad_(), _t(5, 4, seed=1).requires_grad_()
    loss = simsiam_loss_func(p, z, simplified=simplified)
    expected = -sum(_cos(a, b) for a, b in zip(p.tolist(), z.tolist())) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    loss.backward()
    assert z.grad is None and p.grad is not None  # sg(z)


def test_simsiam_simplified_and_explicit_forms_agree_in_gradient():
    p = _t(6, 3, seed=2)
    z = _t(6, 3, seed=3)
    grads = []
    for simplified in (True, False):
        pi = p.clone().requires_grad_()
        simsiam_loss_func(pi, z, simplified=simplified).backward()
        grads.append(pi.grad)
    torch.testing.assert_close(grads[0], grads[1], **TOL)


# --------------------------------------------------------------------------- NNCLR
def test_nnclr_is_infonce_of_neighbours_against_predictions():
    nn, p = _t(5, 4, seed=4), _t(5, 4, seed=5)
    T = 0.3
    a, b = [_unit(r) for r in nn.tolist()], [_unit(r) for r in p.tolist()]
    expected = -sum(_log_softmax([_dot(a[i], b[k]) / T for k in range(5)])[i] for i in range(5)) / 5
    assert nnclr_loss_func(nn, p, temperature=T).item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # the default temperature is the original's 0.1
    expected01 = -sum(_log_softmax([_dot(a[i], b[k]) / 0.1 for k in range(5)])[i] for i in range(5)) / 5
    assert nnclr_loss_func(nn, p).item() == pytest.approx(expected01, rel=1e-6)


# --------------------------------------------------------------------------- ReSSL
def test_ressl_is_cross_entropy_of_relations_to_the_queue_rows():
    n, d, k = 4, 3, 7  # K != D: the queue's rows (not columns) are the keys
    q = torch.nn.functional.normalize(_t(n, d, seed=6), dim=1).requires_grad_()
    key = torch.nn.functional.normalize(_t(n, d, seed=7), dim=1).requires_grad_()
    queue = torch.nn.functional.normalize(_t(k, d, seed=8), dim=1)
    tq, tk = 0.2, 0.05
    expected = 0.0
    for qi, ki in zip(q.tolist(), key.tolist()):
        target = [math.exp(x) for x in _log_softmax([_dot(ki, u) / tk for u in queue.tolist()])]
        pred = _log_softmax([_dot(qi, u) / tq for u in queue.tolist()])
        expected -= sum(t * lp for t, lp in zip(target, pred)) / n
    loss = ressl_loss_func(q, key, queue, temperature_q=tq, temperature_k=tk)
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    loss.backward()
    assert key.grad is None and q.grad is not None  # the key is a target
    with pytest.raises(ValueError, match=r"queue must be \(K, D\)"):
        ressl_loss_func(q, key, queue.T)


def test_ressl_default_temperatures_are_the_originals():
    q, key = _t(3, 4, seed=9), _t(3, 4, seed=10)
    queue = _t(6, 4, seed=11)
    torch.testing.assert_close(ressl_loss_func(q, key, queue), ressl_loss_func(q, key, queue, 0.1, 0.04))


# --------------------------------------------------------------------------- W-MSE
def test_wmse_is_mse_of_normalised_views_and_simplified_detaches_the_second():
    z1, z2 = _t(6, 3, seed=12), _t(6, 3, seed=13)
    expected = sum(sum((x - y) ** 2 for x, y in zip(_unit(a), _unit(b))) for a, b in zip(z1.tolist(), z2.tolist())) / 6
    grads = {}
    for simplified in (True, False):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss = wmse_loss_func(a, b, simplified=simplified)
        assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
        loss.backward()
        grads[simplified] = (a.grad, b.grad)
    assert grads[True][1] is None  # the original's simplified form: z2 detached
    assert grads[False][1] is not None and grads[False][1].abs().sum() > 0
    torch.testing.assert_close(grads[True][0], grads[False][0], **TOL)


def test_whiten_gives_identity_covariance_from_the_cholesky_factor():
    x = _t(12, 4, seed=14) @ _t(4, 4, seed=15)  # correlated dimensions
    w = whiten(x)
    m = x.shape[0]
    torch.testing.assert_close(w.T @ w / (m - 1), torch.eye(4, dtype=torch.float64), **TOL)
    torch.testing.assert_close(w.mean(0), torch.zeros(4, dtype=torch.float64), **TOL)
    # written out: W = L^-1 with L lower-triangular, L L^T = cov, rows (x - mean) W^T
    xc = [[v - mu for v, mu in zip(row, x.mean(0).tolist())] for row in x.tolist()]
    cov = [[sum(r[i] * r[j] for r in xc) / (m - 1) for j in range(4)] for i in range(4)]
    chol = [[0.0] * 4 for _ in range(4)]
    for i in range(4):
        for j in range(i + 1):
            s = cov[i][j] - sum(chol[i][k] * chol[j][k] for k in range(j))
            chol[i][j] = math.sqrt(s) if i == j else s / chol[j][j]
    # forward substitution L y = xc_row for each row
    expected = []
    for r in xc:
        y = []
        for i in range(4):
            y.append((r[i] - sum(chol[i][k] * y[k] for k in range(i))) / chol[i][i])
        expected.append(y)
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64), **TOL)
    # shrinkage: (1 - eps) cov + eps I
    eps = 0.3
    ws = whiten(x, eps=eps)
    cov_t = torch.tensor(cov, dtype=torch.float64)
    shrunk = (1 - eps) * cov_t + eps * torch.eye(4, dtype=torch.float64)
    # ws = xc L_eps^-T  <=>  L_eps ws^T = xc^T
    torch.testing.assert_close(torch.linalg.cholesky(shrunk) @ ws.T, (x - x.mean(0)).T, **TOL)


# --------------------------------------------------------------------------- relational distillation
def test_relational_distill_is_ressl_over_the_other_images_frozen_projections():
    n, d = 3, 4
    p1, p2, zb1, zb2 = (_t(n, d, seed=s) for s in (16, 17, 18, 19))
    tq, tk = 0.2, 0.05
    P = [_unit(r) for r in torch.cat([p1, p2]).tolist()]
    A = [_unit(r) for r in torch.cat([zb1, zb2]).tolist()]
    expected = 0.0
    for i in range(2 * n):
        others = [j for j in range(2 * n) if j % n != i % n]  # not the image's own two projections
        target = [math.exp(x) for x in _log_softmax([_dot(A[i], A[j]) / tk for j in others])]
        pred = _log_softmax([_dot(P[i], A[j]) / tq for j in others])
        expected -= sum(t * lp for t, lp in zip(target, pred)) / (2 * n)
    p1g = p1.clone().requires_grad_()
    zb1g = zb1.clone().requires_grad_()
    loss = relational_distill_loss(p1g, p2, zb1g, zb2, temperature_q=tq, temperature_k=tk)
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    loss.backward()
    assert zb1g.grad is None and torch.isfinite(p1g.grad).all()  # the frozen side is a target
    with pytest.raises(ValueError, match="at least 2"):
        relational_distill_loss(p1[:1], p2[:1], zb1[:1], zb2[:1])
