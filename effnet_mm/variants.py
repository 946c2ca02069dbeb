"""The single source of truth for per-variant EfficientNet settings.

Everything that depends on the variant (backbone widths and depths, head dropout, native resolution, eval crop,
normalisation constants, TF checkpoint scope) is derived from :data:`VARIANTS` and the block table
:data:`BASE_BLOCKS`; configs and the model-zoo metafile are checked against it by tests.  This module imports
neither MindSpore nor mmengine, so configs, tools, tests and docs can use it cheaply.

The numbers follow the TensorFlow reference (``efficientnet_builder.efficientnet_params`` and
``_DEFAULT_BLOCKS_ARGS``) which mmpretrain and timm reproduce.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

#: ImageNet mean / std of the baseline, AutoAugment, RandAugment and NoisyStudent checkpoints, RGB, 0..255 scale.
IMAGENET_MEAN: Tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: Tuple[float, float, float] = (58.395, 57.12, 57.375)
#: AdvProp ("01norm") checkpoints expect ``x * 2 / 255 - 1``, i.e. mean = std = 127.5.
ADVPROP_MEAN: Tuple[float, float, float] = (127.5, 127.5, 127.5)
ADVPROP_STD: Tuple[float, float, float] = (127.5, 127.5, 127.5)

#: TF's eval crop takes ``S / (S + CROP_PADDING)`` of the short side (the value used by every released checkpoint).
CROP_PADDING = 32

BN_EPS = 1e-3
#: MindSpore keeps ``momentum`` of the old moving statistic, like TF's ``decay``.
BN_MOMENTUM = 0.99
#: The TF network's normalisation as an mmpretrain ``norm_cfg``: ``momentum`` there is PyTorch's convention, the
#: weight of the new batch statistic (``1 - decay``).
NORM_CFG = {'type': 'BN', 'eps': BN_EPS, 'momentum': 0.01}
#: Conv padding styles: TF's static "SAME" (every TF-trained checkpoint) and PyTorch's symmetric ``k // 2`` (timm's
#: own ``efficientnet_*`` trainings).
PADDINGS = ('same', 'symmetric')
CHANNEL_DIVISOR = 8
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class BlockArgs:
    """One TF block-args row of the base (B0) network: a stage of ``repeats`` blocks."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int
    se_ratio: float = 0.25


#: TF ``_DEFAULT_BLOCKS_ARGS`` (r, k, s, e, i, o, se) for B0; other variants scale channels and repeats.
BASE_BLOCKS: Tuple[BlockArgs, ...] = (
    BlockArgs(1, 3, 1, 1, 32, 16),
    BlockArgs(2, 3, 2, 6, 16, 24),
    BlockArgs(2, 5, 2, 6, 24, 40),
    BlockArgs(3, 3, 2, 6, 40, 80),
    BlockArgs(3, 5, 1, 6, 80, 112),
    BlockArgs(4, 5, 2, 6, 112, 192),
    BlockArgs(1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class Variant:
    """Scaling coefficients and evaluation settings of one EfficientNet variant.

    Attributes:
        name: arch name used in configs (``'b0'`` ... ``'b8'``, ``'l2'``).
        width: channel multiplier.
        depth: repeat multiplier.
        resolution: native input resolution (square).
        dropout: dropout before the classifier, as in the TF reference.
    """

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float

    @property
    def tf_scope(self) -> str:
        """Top-level variable scope of the official TF checkpoint, e.g. ``'efficientnet-b0'``."""
        return f'efficientnet-{self.name}'

    @property
    def crop_pct(self) -> float:
        """Fraction of the short side kept by the TF eval centre crop."""
        return self.resolution / (self.resolution + CROP_PADDING)

    @property
    def stem_channels(self) -> int:
        return round_channels(STEM_CHANNELS, self.width)

    @property
    def head_channels(self) -> int:
        return round_channels(HEAD_CHANNELS, self.width)

    def stages(self) -> List[BlockArgs]:
        """The seven stages with scaled channels and repeats."""
        return [
            BlockArgs(
                repeats=round_repeats(b.repeats, self.depth),
                kernel_size=b.kernel_size,
                stride=b.stride,
                expand_ratio=b.expand_ratio,
                in_channels=round_channels(b.in_channels, self.width),
                out_channels=round_channels(b.out_channels, self.width),
                se_ratio=b.se_ratio,
            ) for b in BASE_BLOCKS
        ]

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages())


#: Per-variant settings (TF ``efficientnet_params``).  L2 also has a 475 px release (the ``-475px`` config).
VARIANTS: Dict[str, Variant] = {
    v.name: v
    for v in (
        Variant('b0', 1.0, 1.0, 224, 0.2),
        Variant('b1', 1.0, 1.1, 240, 0.2),
        Variant('b2', 1.1, 1.2, 260, 0.3),
        Variant('b3', 1.2, 1.4, 300, 0.3),
        Variant('b4', 1.4, 1.8, 380, 0.4),
        Variant('b5', 1.6, 2.2, 456, 0.4),
        Variant('b6', 1.8, 2.6, 528, 0.5),
        Variant('b7', 2.0, 3.1, 600, 0.5),
        Variant('b8', 2.2, 3.6, 672, 0.5),
        Variant('l2', 4.3, 5.3, 800, 0.5),
    )
}


def get_variant(arch: str) -> Variant:
    """Look up a variant by name (``'b0'``, ``'efficientnet-b0'`` and ``'B0'`` are all accepted)."""
    key = str(arch).lower()
    if key.startswith('efficientnet-') or key.startswith('efficientnet_'):
        key = key[len('efficientnet-'):]
    if key not in VARIANTS:
        raise KeyError(f'Unknown EfficientNet arch {arch!r}; expected one of {sorted(VARIANTS)}')
    return VARIANTS[key]


def round_channels(channels: int, width: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """TF ``round_filters``: scale by ``width`` and round to a multiple of ``divisor``, never below 90 %."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """TF ``round_repeats``: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))
