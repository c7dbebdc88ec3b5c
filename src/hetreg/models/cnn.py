"""The BIV age CNN (``AgeModel``, "vanilla_cnn"), for square or rectangular images of any size.

Six blocks ``Conv2d 3x3 (stride 1, padding 1) -> BatchNorm2d -> ReLU -> MaxPool 2x2``, channels
3 -> 10 -> 20 -> 32 -> 64 -> 128 -> 256, then flatten; the head is a ``Linear`` on the flattened
map. At 200 px the map is 200 -> 100 -> 50 -> 25 -> 12 -> 6 -> 3, i.e. 256 * 3 * 3 = 2304
features, exactly the original model.

Other sizes: a block **skips its max-pool once the map is 1 pixel high or wide** (a 2x2 pool
cannot shrink it further), so every size works and the convolution stack is unchanged. From
64 px up all six pools run (64 px ends at 1x1, 256 features); at 32 px the sixth pool is skipped
(also 1x1, 256 features). We chose this over adaptive pooling because it keeps the original
architecture, parameter for parameter, at every size where the original pooling is possible.
"""

from __future__ import annotations

from torch import nn

CHANNELS = (10, 20, 32, 64, 128, 256)


def pooling_plan(height: int, width: int, blocks: int) -> tuple[tuple[bool, ...], tuple[int, int]]:
    """Which blocks pool, and the final map size.

    A 2x2 max-pool (stride 2, floor) runs in a block iff the map is at least 2x2 there.

    Returns:
        ``(pools, (h, w))``: one flag per block, and the map size after the last block.
    """
    pools = []
    h, w = height, width
    for _ in range(blocks):
        do_pool = h >= 2 and w >= 2
        pools.append(do_pool)
        if do_pool:
            h, w = h // 2, w // 2
    return tuple(pools), (h, w)


def cnn_body(input_shape: tuple[int, ...], *, channels: tuple[int, ...] | list[int] = CHANNELS) -> tuple[nn.Module, int]:
    """Convolution blocks + flatten for inputs ``(C, H, W)``; returns ``(body, features)``.

    Args:
        input_shape: ``(C, H, W)``.
        channels: output channels of the blocks (default the original six).
    """
    channels = tuple(channels)
    if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"channels must be a non-empty sequence of positive integers, got {channels!r}")
    c_in, height, width = input_shape
    pools, (h, w) = pooling_plan(height, width, len(channels))
    layers: list[nn.Module] = []
    for c_out, do_pool in zip(channels, pools):
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        if do_pool:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c_in * h * w
