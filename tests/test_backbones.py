"""Backbones: feature dims, CIFAR stem, zero_init_residual, registry errors, tiny net learns."""

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from cassle.backbones import BACKBONES, build_backbone


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet50", 2048), ("tiny", 64)])
@pytest.mark.parametrize("cifar", [False, True])
def test_feature_dim(name, dim, cifar):
    torch.manual_seed(0)
    net, feat_dim = build_backbone(name, cifar=cifar)
    assert feat_dim == dim
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, dim)
    if name != "tiny":
        assert isinstance(net.fc, nn.Identity)


def _stem(net, x):
    return net.maxpool(net.relu(net.bn1(net.conv1(x))))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_cifar_stem(name):
    x = torch.randn(2, 3, 32, 32)
    net, _ = build_backbone(name, cifar=True)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert net.conv1.padding == (2, 2) and net.conv1.bias is None  # the reference's padding
    assert isinstance(net.maxpool, nn.Identity)
    assert _stem(net, x).shape == (2, 64, 34, 34)

    imagenet, _ = build_backbone(name, cifar=False)  # 7x7/2 conv + 3x3/2 pool: 32 -> 8
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert _stem(imagenet, x).shape == (2, 64, 8, 8)


@pytest.mark.parametrize("name,block_type,n_blocks", [("resnet18", BasicBlock, 8), ("resnet50", Bottleneck, 16)])
def test_zero_init_residual(name, block_type, n_blocks):
    def last_bns(net):
        blocks = [m for m in net.modules() if isinstance(m, block_type)]
        assert len(blocks) == n_blocks
        return [b.bn2 if block_type is BasicBlock else b.bn3 for b in blocks]

    net, _ = build_backbone(name, zero_init_residual=True)
    assert all(torch.all(bn.weight == 0) for bn in last_bns(net))
    assert torch.all(net.bn1.weight == 1)  # only the residual branches' last BN is zeroed

    default, _ = build_backbone(name)
    assert all(torch.all(bn.weight == 1) for bn in last_bns(default))


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet19'") as err:
        build_backbone("resnet19")
    for name in BACKBONES:
        assert name in str(err.value)
    assert set(BACKBONES) == {"resnet18", "resnet50", "tiny", "vit_tiny", "vit_small", "vit_base"}


@pytest.mark.parametrize("size", [8, 16, 32])
def test_tiny_sizes(size):
    net, dim = build_backbone("tiny")
    assert net(torch.randn(3, 3, size, size)).shape == (3, dim)


def test_tiny_learns_spatial_pattern():
    """Horizontal vs vertical stripes under noise: needs spatial filters, not colour statistics."""
    g = torch.Generator().manual_seed(0)
    n, size = 32, 8
    y = torch.arange(n) % 2
    stripes = (torch.arange(size) % 4 < 2).float()  # (size,)
    horiz = stripes[:, None].expand(size, size)
    imgs = torch.where(y[:, None, None].bool(), horiz.T, horiz)  # (n, size, size)
    x = imgs[:, None].expand(n, 3, size, size) + 0.5 * torch.randn(n, 3, size, size, generator=g)

    torch.manual_seed(0)
    net, dim = build_backbone("tiny")
    head = nn.Linear(dim, 2)
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.1, momentum=0.9)
    for _ in range(20):
        loss = nn.functional.cross_entropy(head(net(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (head(net(x)).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc
