"""ResNet-18 in plain PyTorch (no torchvision): BasicBlock, [2, 2, 2, 2], widths 64-128-256-512.

Stem: ``Conv 7x7 stride 2 -> BatchNorm -> ReLU -> MaxPool 3x3 stride 2`` (ImageNet layout, as
torchvision's ``resnet18``, which the BIV code used with random initialisation), or with
``small_input=True`` a ``Conv 3x3 stride 1 -> BatchNorm -> ReLU`` stem without max-pool, the usual
choice for 32-64 px images (it keeps 4x4-8x8 maps in the last stage instead of 1x1-2x2, at about
16 times the compute). Then four stages, global average pooling and flatten: 512 features, which
the head maps to the outputs. Initialisation as torchvision: He-normal (fan_out) convolutions,
BatchNorm weight 1 and bias 0.
"""

from __future__ import annotations

from torch import Tensor, nn

WIDTHS = (64, 128, 256, 512)
BLOCKS = (2, 2, 2, 2)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; 1x1 conv shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet18_body(
    input_shape: tuple[int, ...],
    *,
    small_input: bool = False,
    blocks: tuple[int, ...] | list[int] = BLOCKS,
    widths: tuple[int, ...] | list[int] = WIDTHS,
    zero_init_residual: bool = False,
) -> tuple[nn.Module, int]:
    """ResNet trunk + global average pooling for inputs ``(C, H, W)``; returns ``(body, features)``.

    Args:
        input_shape: ``(C, H, W)``.
        small_input: 3x3 stride-1 stem without max-pool (for 32-64 px images).
        blocks: BasicBlocks per stage (default ``(2, 2, 2, 2)``: ResNet-18).
        widths: channels per stage (default ``(64, 128, 256, 512)``).
        zero_init_residual: start every block's last BatchNorm at weight 0 (each block is then
            the identity at initialisation).
    """
    blocks, widths = tuple(blocks), tuple(widths)
    if len(blocks) != len(widths) or not blocks:
        raise ValueError(f"blocks and widths must be non-empty and of equal length, got {blocks} and {widths}")
    c_in = input_shape[0]
    if small_input:
        stem: list[nn.Module] = [_conv3x3(c_in, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
    else:
        stem = [
            nn.Conv2d(c_in, widths[0], kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]
    layers = list(stem)
    c = widths[0]
    for stage, (n_blocks, width) in enumerate(zip(blocks, widths)):
        for i in range(n_blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(c, width, stride))
            c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    body = nn.Sequential(*layers)
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in body.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
    return body, c
