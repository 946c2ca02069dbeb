"""Data transforms: plain callables on a results dict, registered in ``effnet_mm.registry.TRANSFORMS``.

Nothing here imports MindSpore.  Random transforms draw from ``results['rng']`` (see ``docs/design.md``).
"""
from .auto_augment import AutoAugment, RandAugment
from .compose import Compose
from .formatting import PackInputs
from .loading import CorruptImageError, LoadImageFromFile, imread
from .processing import (
    CenterCrop,
    EfficientNetCenterCrop,
    EfficientNetRandomCrop,
    RandomFlip,
    ResizeEdge,
    center_crop_box,
)
from .random_erasing import RandomErasing

__all__ = [
    'AutoAugment', 'RandAugment', 'Compose', 'PackInputs', 'CorruptImageError', 'LoadImageFromFile', 'imread',
    'CenterCrop', 'EfficientNetCenterCrop', 'EfficientNetRandomCrop', 'RandomFlip', 'ResizeEdge', 'center_crop_box',
    'RandomErasing'
]
