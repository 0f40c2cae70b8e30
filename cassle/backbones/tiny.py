"""A tiny convolutional backbone for tests and the CPU demo.

Three conv-BN-ReLU blocks (3 -> 16 -> 32 -> 64 channels; strides 1, 2, 2) followed by global
average pooling, so the output is a (B, 64) feature vector for any input of at least 1x1 pixels
(8x8, 16x16 and 32x32 images all work). About 24k parameters: a training step on CPU takes
milliseconds, yet it is a real conv net with BatchNorm (which the SSL projectors and the frozen
snapshot of the distillers care about) and learns simple image statistics.
"""

from torch import nn

TINY_FEAT_DIM = 64


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    # bias=False: the following BatchNorm has its own shift
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyConvNet(nn.Module):
    """conv(3->16, s1) - conv(16->32, s2) - conv(32->64, s2) - global avg pool -> (B, 64)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(3, 16, stride=1), _conv_bn_relu(16, 32, stride=2), _conv_bn_relu(32, TINY_FEAT_DIM, stride=2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = TINY_FEAT_DIM
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # same init as torchvision's ResNets, so both backbones start alike
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):  # (B, 3, H, W) -> (B, 64)
        return self.pool(self.features(x)).flatten(1)


def tiny(cifar: bool = False, zero_init_residual: bool = False) -> tuple[nn.Module, int]:
    """Factory with the common backbone signature.

    `cifar` is ignored (the stem already keeps small images at full resolution) and so is
    `zero_init_residual` (the net has no residual branches).
    """
    return TinyConvNet(), TINY_FEAT_DIM
