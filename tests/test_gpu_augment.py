"""Tests of the batched augmentation (cassle/data/gpu_augment.py) on CPU.

Per-op results are compared with torchvision's tensor functional ops (an independent
implementation) and with hand-computed values; the random parameters are compared with
torchvision's samplers / the documented distributions statistically, with fixed seeds.
"""

import itertools
import math

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from cassle.data import augment_ops
from cassle.data import gpu_augment as ga

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
TV_LUMA = (0.2989, 0.587, 0.114)  # torchvision's tensor grayscale weights

try:
    from scipy import stats
except ImportError:  # pragma: no cover - scipy is installed in the dev env
    stats = None


def settings(**kw):
    s = dict(
        crop_size=16,
        min_scale=0.08,
        max_scale=1.0,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        color_jitter_prob=0.8,
        gray_scale_prob=0.2,
        horizontal_flip_prob=0.5,
        gaussian_prob=0.5,
        solarization_prob=0.2,
    )
    s.update(kw)
    return s


def identity_settings(size, **kw):
    s = settings(
        crop_size=size,
        min_scale=1.0,
        max_scale=1.0,
        color_jitter_prob=0.0,
        gray_scale_prob=0.0,
        horizontal_flip_prob=0.0,
        gaussian_prob=0.0,
        solarization_prob=0.0,
    )
    s.update(kw)
    return s


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images_hwc(b=8, h=20, w=24, seed=0):
    return torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=gen(seed))


def normalize(x):
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def assert_rate(flags, p, n_sigma=4.0):
    n = flags.numel()
    rate = flags.float().mean().item()
    assert abs(rate - p) <= n_sigma * math.sqrt(p * (1 - p) / n) + 1e-9, (rate, p)


# ----------------------------------------------------------------------------- module behaviour
def test_shapes_dtype_range_and_normalisation():
    aug = ga.BatchAugment(settings(crop_size=12), MEAN, STD)
    x = images_hwc()
    raw = aug(x, gen(1), normalize=False)
    out = aug(x, gen(1))
    assert out.shape == (8, 3, 12, 12) and out.dtype == torch.float32
    assert raw.min() >= 0 and raw.max() <= 1
    torch.testing.assert_close(out, normalize(raw))


def test_layouts_and_float_input_agree():
    aug = ga.BatchAugment(settings(), MEAN, STD)
    x = images_hwc()
    hwc = aug(x, gen(3))
    chw = aug(x.permute(0, 3, 1, 2).contiguous(), gen(3))
    flt = aug(x.permute(0, 3, 1, 2).float() / 255, gen(3))
    assert torch.equal(hwc, chw)
    torch.testing.assert_close(flt, hwc)


def test_determinism_and_per_sample_randomness():
    views = ga.MultiViewBatchAugment([settings(), settings(solarization_prob=0.0)], MEAN, STD)
    x = images_hwc(b=4, h=16, w=16)
    same = torch.cat([x[:1]] * 6)  # identical images must still get different augmentations
    a, b = views(same, gen(7)), views(same, gen(7))
    assert len(a) == 2 and all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], views(same, gen(8))[0])
    assert len({a[0][k].sum().item() for k in range(6)}) == 6


@pytest.mark.parametrize("interpolation", ga.INTERPOLATIONS)
@pytest.mark.parametrize("size", [16, 32])
def test_all_probabilities_zero_is_identity_crop(size, interpolation):
    x = images_hwc(b=16, h=size, w=size, seed=4)
    aug = ga.BatchAugment(identity_settings(size, interpolation=interpolation), MEAN, STD)
    out = aug(x, gen(5))
    expected = normalize(x.permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    # torchvision's sampler agrees: with scale (1, 1) only the whole square image fits.
    boxes = ga.sample_crop_boxes(200, size, size, (1.0, 1.0), generator=gen(6))
    assert (boxes == torch.tensor([0, 0, size, size])).all()


# ----------------------------------------------------------------------------- crop
@pytest.mark.skipif(stats is None, reason="scipy not installed")
@pytest.mark.parametrize("height,width,scale", [(30, 50, (0.08, 1.0)), (32, 32, (0.2, 1.0)), (40, 24, (0.6, 1.0))])
def test_crop_sampler_matches_torchvision(height, width, scale):
    n = 2000
    ours = ga.sample_crop_boxes(n, height, width, scale, generator=gen(11)).double()
    torch.manual_seed(12)
    img = torch.empty(3, height, width)
    ref = torch.tensor([T.RandomResizedCrop.get_params(img, list(scale), [3 / 4, 4 / 3]) for _ in range(n)]).double()
    for name, f in [
        ("area", lambda b: b[:, 2] * b[:, 3] / (height * width)),
        ("ratio", lambda b: b[:, 3] / b[:, 2]),
        ("rel_top", lambda b: b[:, 0] / (height - b[:, 2] + 1)),
        ("rel_left", lambda b: b[:, 1] / (width - b[:, 3] + 1)),
    ]:
        p = stats.ks_2samp(f(ours).numpy(), f(ref).numpy()).pvalue
        assert p > 1e-3, (name, p)
    assert (ours[:, 0] + ours[:, 2] <= height).all() and (ours[:, 1] + ours[:, 3] <= width).all()
    assert (ours[:, 2:] > 0).all()


def test_crop_sampler_rejects_like_torchvision_by_its_area_law():
    # Sanity that the KS test can fail: a wrong law (area fraction ~ sqrt(U)) is detected.
    if stats is None:
        pytest.skip("scipy not installed")
    ours = ga.sample_crop_boxes(2000, 32, 32, (0.08, 1.0), generator=gen(1)).double()
    area = ours[:, 2] * ours[:, 3] / 1024
    wrong = 0.08 + 0.92 * torch.rand(2000, generator=gen(2), dtype=torch.float64).sqrt()
    assert stats.ks_2samp(area.numpy(), wrong.numpy()).pvalue < 1e-6


@pytest.mark.parametrize("height,width", [(20, 40), (40, 20), (30, 20)])
def test_crop_fallback_is_torchvision_central_crop(height, width):
    # scale (1, 1) on an image with aspect ratio outside [3/4, 4/3]: no candidate fits, torchvision
    # falls back to the central crop with the ratio clamped to [3/4, 4/3]; deterministic.
    img = torch.empty(3, height, width)
    torch.manual_seed(0)
    ref = T.RandomResizedCrop.get_params(img, [1.0, 1.0], [3 / 4, 4 / 3])
    ours = ga.sample_crop_boxes(50, height, width, (1.0, 1.0), generator=gen(0))
    assert (ours == torch.tensor(ref)).all(), (ours[0].tolist(), ref)


def test_crop_resize_matches_torchvision_resized_crop_and_flip():
    x = torch.rand(3, 3, 20, 24, generator=gen(1))
    boxes = torch.tensor([[2, 3, 10, 8], [0, 0, 20, 24], [5, 10, 15, 14]])
    out = ga.crop_resize(x, boxes, 16)
    for k, (i, j, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(x[k], i, j, h, w, [16, 16], interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
        # the border row/column may read one pixel outside the box (documented); interior equal
        torch.testing.assert_close(out[k, :, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5, rtol=0)
    flipped = ga.crop_resize(x, boxes, 16, flip=torch.tensor([True, False, True]))
    torch.testing.assert_close(flipped[[0, 2]], out[[0, 2]].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(flipped[1], out[1])


# ----------------------------------------------------------------------------- random rates
def test_parameter_rates_and_ranges():
    aug = ga.BatchAugment(
        settings(
            brightness=1.5,
            contrast=0.4,
            saturation=0.8,
            hue=0.2,
            color_jitter_prob=0.8,
            gray_scale_prob=0.2,
            horizontal_flip_prob=0.3,
            gaussian_prob=0.6,
            solarization_prob=0.1,
        ),
        MEAN,
        STD,
    )
    n = 6000
    p = aug.sample_params(n, 32, 32, gen(21))
    assert_rate(p.flip, 0.3)
    assert_rate(p.jitter, 0.8)
    assert_rate(p.gray, 0.2)
    assert_rate(p.blur, 0.6)
    assert_rate(p.solarize, 0.1)
    # factor ~ U[max(0, 1 - v), 1 + v] (brightness 1.5 clips at 0), hue ~ U[-h, h], sigma ~ U[.1, 2]
    ranges = [(0.0, 2.5), (0.6, 1.4), (0.2, 1.8), (-0.2, 0.2)]
    cols = [p.factors[:, k] for k in range(4)] + [p.sigma]
    for col, (lo, hi) in zip(cols, ranges + [(0.1, 2.0)]):
        assert col.min() >= lo and col.max() <= hi
        assert col.min() < lo + 0.01 * (hi - lo) and col.max() > hi - 0.01 * (hi - lo)
        if stats is not None:
            assert stats.kstest(col.numpy(), stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    # the jitter order is a uniformly random permutation per sample
    assert (p.order.sort(dim=1).values == torch.arange(4)).all()
    perms = list(itertools.permutations(range(4)))
    counts = torch.tensor([(p.order == torch.tensor(q)).all(1).sum().item() for q in perms])
    assert counts.sum() == n
    if stats is not None:
        assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_end_to_end_flip_grayscale_solarize_rates():
    n, size = 1500, 6
    x = images_hwc(b=n, h=size, w=size, seed=9)
    base = x.permute(0, 3, 1, 2).float() / 255
    flip = ga.BatchAugment(identity_settings(size, horizontal_flip_prob=0.5), MEAN, STD)
    out = flip(x, gen(1), normalize=False)
    is_id = (out - base).abs().amax(dim=(1, 2, 3)) < 1e-4
    is_flip = (out - base.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-4
    assert (is_id ^ is_flip).all()
    assert_rate(is_flip, 0.5)

    gray = ga.BatchAugment(identity_settings(size, gray_scale_prob=0.25), MEAN, STD)
    out = gray(x, gen(2), normalize=False)
    is_gray = (out.amax(1) - out.amin(1)).amax(dim=(1, 2)) == 0
    assert_rate(is_gray, 0.25)
    torch.testing.assert_close(out[~is_gray], base[~is_gray], atol=1e-4, rtol=0)

    sol = ga.BatchAugment(identity_settings(size, solarization_prob=0.3), MEAN, STD)
    out = sol(x, gen(3), normalize=False)
    changed = (out - base).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert_rate(changed, 0.3)
    torch.testing.assert_close(out[changed], TF.solarize(base[changed], 0.5), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- per-op exactness
@pytest.fixture
def tv_luma(monkeypatch):
    """Use torchvision's luma weights so that contrast/saturation/grayscale compare exactly."""
    monkeypatch.setattr(augment_ops, "LUMA", TV_LUMA)  # where the ops read it


def batch(b=6, h=7, w=9, seed=0):
    x = torch.rand(b, 3, h, w, generator=gen(seed))
    x[0, :, :2] = 0.5  # gray pixels (chroma 0)
    x[1, 0] = x[1, 1]  # ties in max between channels
    return x


def test_grayscale_is_itu_601_and_close_to_torchvision():
    x = batch()
    ref64 = 0.299 * x[:, 0].double() + 0.587 * x[:, 1].double() + 0.114 * x[:, 2].double()
    torch.testing.assert_close(ga.rgb_to_grayscale(x)[:, 0].double(), ref64, atol=1e-6, rtol=0)
    torch.testing.assert_close(ga.rgb_to_grayscale(x), TF.rgb_to_grayscale(x), atol=1.1e-4, rtol=0)
    white = torch.ones(1, 3, 2, 2)
    assert (ga.rgb_to_grayscale(white) == 1).all()  # 601-2 weights sum to 1


def test_random_grayscale_exact_vs_torchvision(tv_luma):
    x = batch()
    apply = torch.tensor([True, False, True, True, False, True])
    out = ga.random_grayscale(x, apply)
    torch.testing.assert_close(out[apply], TF.rgb_to_grayscale(x[apply], 3), atol=1e-7, rtol=0)
    assert torch.equal(out[~apply], x[~apply])


@pytest.mark.parametrize(
    "name,factors",
    [
        ("brightness", [0.0, 0.5, 1.0, 1.3, 1.9, 2.5]),
        ("contrast", [0.0, 0.5, 1.0, 1.3, 1.9, 2.5]),
        ("saturation", [0.0, 0.5, 1.0, 1.3, 1.9, 2.5]),
        ("hue", [-0.5, -0.2, 0.0, 0.05, 0.3, 0.5]),
    ],
)
def test_colour_ops_match_torchvision(tv_luma, name, factors):
    x = batch()
    ours = getattr(ga, f"adjust_{name}")(x, torch.tensor(factors))
    ref = torch.stack([getattr(TF, f"adjust_{name}")(x[k], f) for k, f in enumerate(factors)])
    torch.testing.assert_close(ours, ref, atol=2e-6 if name != "hue" else 1e-5, rtol=0)


def test_colour_ops_hand_computed():
    px = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.6, 0.6], [0.2, 0.4, 0.8]]).T.reshape(1, 3, 1, 3)
    rgb = lambda t: t[0, :, 0].T  # noqa: E731  (pixels as rows)
    # brightness 1.5: x * 1.5 clamped to 1
    torch.testing.assert_close(
        rgb(ga.adjust_brightness(px, torch.tensor([1.5]))),
        torch.tensor([[1.0, 0, 0], [0.9, 0.9, 0.9], [0.3, 0.6, 1.0]]),
    )
    # hue +1/3 turns red into green, -1/3 into blue; gray stays gray
    up = rgb(ga.adjust_hue(px, torch.tensor([1 / 3])))
    torch.testing.assert_close(up[:2], torch.tensor([[0.0, 1, 0], [0.6, 0.6, 0.6]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        rgb(ga.adjust_hue(px, torch.tensor([-1 / 3])))[0], torch.tensor([0.0, 0, 1]), atol=1e-6, rtol=0
    )
    # saturation 0 is grayscale: 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8 = 0.3858
    torch.testing.assert_close(rgb(ga.adjust_saturation(px, torch.tensor([0.0])))[2], torch.full((3,), 0.3858))
    # contrast 0: every pixel becomes the image's mean luma (0.299 + 0.6 + 0.3858) / 3
    torch.testing.assert_close(
        ga.adjust_contrast(px, torch.tensor([0.0])), torch.full_like(px, (0.299 + 0.6 + 0.3858) / 3)
    )


def test_color_jitter_follows_each_samples_order(tv_luma):
    perms = list(itertools.permutations(range(4)))
    b = len(perms)
    x = torch.rand(b, 3, 5, 6, generator=gen(3))
    f = torch.tensor([1.8, 0.3, 1.7, 0.2])  # strong factors: clamping makes order matter
    factors = f.repeat(b, 1)
    apply = torch.ones(b, dtype=torch.bool)
    apply[5] = False
    out = ga.color_jitter(x, factors, torch.tensor(perms), apply)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    results = []
    for k, perm in enumerate(perms):
        ref = x[k]
        if apply[k]:
            for op in perm:
                ref = fns[op](ref, f[op].item())
        torch.testing.assert_close(out[k], ref, atol=2e-5, rtol=0)
        results.append(ref)
    # and the order does change the result (else this test could not fail)
    assert (torch.stack(results[:4]) - results[0]).abs().amax() > 1e-2


def test_solarize_exact_vs_torchvision():
    x = batch()
    x[2, :, 0, 0] = 0.5  # exactly at the threshold: inverted (>=)
    apply = torch.tensor([True, True, True, False, True, False])
    out = ga.solarize(x, apply)
    assert torch.equal(out[apply], TF.solarize(x[apply], 0.5))
    assert torch.equal(out[~apply], x[~apply])


def test_blur_matches_torchvision_per_sample_sigma():
    x = torch.rand(4, 3, 12, 15, generator=gen(4))
    sigma = torch.tensor([0.1, 0.7, 1.3, 2.0])
    apply = torch.tensor([True, True, False, True])
    out = ga.gaussian_blur(x, sigma, 5, apply)
    for k in range(4):
        ref = TF.gaussian_blur(x[k], [5, 5], [sigma[k].item()] * 2) if apply[k] else x[k]
        torch.testing.assert_close(out[k], ref, atol=1e-6, rtol=0)
    assert torch.equal(out[2], x[2])
    assert (out[3] - x[3]).abs().amax() > 1e-2


def test_blur_kernel_sizes_and_bad_kernel():
    assert ga.blur_kernel_size(224) == 23 and ga.blur_kernel_size(32) == 3
    assert ga.blur_kernel_size(96) == 9
    with pytest.raises(ValueError, match="odd"):
        ga.gaussian_blur(torch.rand(1, 3, 8, 8), torch.ones(1), 4)
    with pytest.raises(ValueError, match="too large"):
        ga.gaussian_blur(torch.rand(1, 3, 4, 4), torch.ones(1), 9)


# ----------------------------------------------------------------------------- eval transform
def test_eval_transform_batch():
    x = images_hwc(b=3, h=30, w=40, seed=2)
    base = x.permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(ga.eval_transform_batch(x, MEAN, STD), normalize(base))
    out = ga.eval_transform_batch(x, MEAN, STD, size=24, resize=28)
    ref = TF.center_crop(TF.resize(base, 28, antialias=True), [24, 24])
    assert out.shape == (3, 3, 24, 24)
    torch.testing.assert_close(out, normalize(ref.clamp(0, 1)), atol=1e-5, rtol=0)
    square = ga.eval_transform_batch(x[:, :24, :24], MEAN, STD, size=24)
    torch.testing.assert_close(square, normalize(base[:, :, :24, :24]))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "change,match",
    [
        (lambda s: s.pop("hue"), "miss"),
        (lambda s: s.update(crop_type="x"), "unknown augmentation settings"),
        (lambda s: s.update(gaussian_prob=1.5), "gaussian_prob"),
        (lambda s: s.update(min_scale=0.9, max_scale=0.5), "min_scale"),
        (lambda s: s.update(hue=0.7), "hue"),
        (lambda s: s.update(crop_size=0), "crop_size"),
        (lambda s: s.update(interpolation="nearest"), "valid"),
    ],
)
def test_bad_settings_raise(change, match):
    s = settings()
    change(s)
    with pytest.raises(ValueError, match=match):
        ga.BatchAugment(s, MEAN, STD)


def test_bad_inputs_raise():
    aug = ga.BatchAugment(settings(), MEAN, STD)
    with pytest.raises(ValueError, match="3 channels"):
        aug(torch.zeros(2, 8, 8, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ambiguous"):
        aug(torch.zeros(2, 3, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="4-D"):
        aug(torch.zeros(8, 8, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        aug(torch.zeros(2, 8, 8, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="3 values"):
        ga.BatchAugment(settings(), (0.5, 0.5), STD)
    with pytest.raises(ValueError, match="non-empty list"):
        ga.MultiViewBatchAugment(settings(), MEAN, STD)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_device_and_determinism():  # pragma: no cover - no GPU in CI
    aug = ga.MultiViewBatchAugment([settings(), settings()], MEAN, STD)
    x = images_hwc(b=64).cuda()
    a = aug(x, torch.Generator(device="cuda").manual_seed(0))
    b = aug(x, torch.Generator(device="cuda").manual_seed(0))
    assert a[0].device.type == "cuda" and all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="generator"):
        aug(x, gen(0))
