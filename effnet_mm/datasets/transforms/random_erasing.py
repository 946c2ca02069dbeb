"""Random Erasing (Zhong et al. 2017) with timm's sampling rule and mmpretrain's config keys."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from effnet_mm.registry import TRANSFORMS

from ._rng import get_rng

_MODES = ('const', 'rand')


@TRANSFORMS.register_module()
class RandomErasing:
    """Erase random rectangles of the uint8 image (before normalisation), as timm's ``--reprob`` / mmpretrain's
    ``RandomErasing``.

    Sampling follows timm's ``RandomErasing``: with probability ``erase_prob`` the image gets ``count`` boxes
    (``min_count``, or uniform in ``[min_count, max_count]``); each box makes up to ``max_attempts`` tries of an area
    ``uniform(min_area_ratio, max_area_ratio) * H * W / count`` and an aspect ratio (height / width) log-uniform in
    ``aspect_range``, ``h = round(sqrt(area * aspect))``, ``w = round(sqrt(area / aspect))``; the first try with
    ``h < H`` and ``w < W`` is placed at a uniform ``top`` in ``[0, H - h]`` and ``left`` in ``[0, W - w]``.  Every
    draw comes from ``results['rng']``, so erasing depends only on ``(seed, epoch, sample_idx)``.

    The fill works on pixel values like mmpretrain's: ``mode='const'`` paints ``fill_color``; ``mode='rand'`` paints
    per-pixel noise, ``normal(fill_color, fill_std)`` rounded and clipped to 0..255, or uniform 0..255 without
    ``fill_std``.  timm erases the normalised tensor: its ``--remode pixel`` is ``mode='rand'`` with ``fill_color``
    and ``fill_std`` set to the normalisation mean and std (BGR order, as the image is), and its ``const`` (zeros)
    is ``fill_color`` = the mean.  Records ``erased_boxes``: the ``(top, left, height, width)`` painted.

    Example config (timm's ``--reprob 0.25 --remode pixel --recount 1``, images in BGR order)::

        dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
             fill_color=[103.53, 116.28, 123.675], fill_std=[57.375, 57.12, 58.395])

    Args:
        erase_prob: probability that the image is erased at all.
        min_area_ratio, max_area_ratio: range of the erased area as a fraction of the image (divided by ``count``).
        aspect_range: ``(min, max)`` of height / width; one value ``a`` means ``(a, 1 / a)``.
        mode: ``'const'`` or ``'rand'``.
        fill_color: one value or one per channel.
        fill_std: per-pixel standard deviation for ``mode='rand'`` (one value or one per channel); None draws
            uniform noise.
        min_count, max_count: number of boxes (``max_count=None``: always ``min_count``).
        max_attempts: tries per box before giving it up.
    """

    def __init__(self,
                 erase_prob: float = 0.5,
                 min_area_ratio: float = 0.02,
                 max_area_ratio: float = 0.4,
                 aspect_range: Sequence[float] = (3 / 10, 10 / 3),
                 mode: str = 'const',
                 fill_color: Sequence[float] = (128, 128, 128),
                 fill_std: Optional[Sequence[float]] = None,
                 min_count: int = 1,
                 max_count: Optional[int] = None,
                 max_attempts: int = 10) -> None:
        if not 0 <= erase_prob <= 1:
            raise ValueError(f'RandomErasing: erase_prob must be in [0, 1], got {erase_prob}')
        if not 0 < min_area_ratio <= max_area_ratio <= 1:
            raise ValueError(f'RandomErasing: need 0 < min_area_ratio <= max_area_ratio <= 1, '
                             f'got {min_area_ratio}, {max_area_ratio}')
        if isinstance(aspect_range, (int, float)):
            aspect_range = (aspect_range, 1 / aspect_range)
        lo, hi = (float(a) for a in aspect_range)
        if not 0 < lo <= hi:
            raise ValueError(f'RandomErasing: aspect_range must satisfy 0 < min <= max, got {tuple(aspect_range)}')
        if mode not in _MODES:
            raise ValueError(f'RandomErasing: mode must be one of {_MODES}, got {mode!r}')
        max_count = min_count if max_count is None else max_count
        if not 1 <= min_count <= max_count:
            raise ValueError(f'RandomErasing: need 1 <= min_count <= max_count, got {min_count}, {max_count}')
        if max_attempts < 1:
            raise ValueError(f'RandomErasing: max_attempts must be >= 1, got {max_attempts}')
        self.erase_prob = float(erase_prob)
        self.min_area_ratio = float(min_area_ratio)
        self.max_area_ratio = float(max_area_ratio)
        self.aspect_range = (lo, hi)
        self.mode = mode
        self.fill_color = np.atleast_1d(np.asarray(fill_color, np.float64))
        self.fill_std = None if fill_std is None else np.atleast_1d(np.asarray(fill_std, np.float64))
        self.min_count = int(min_count)
        self.max_count = int(max_count)
        self.max_attempts = int(max_attempts)

    def _patch(self, rng: np.random.Generator, h: int, w: int, channels: int, dtype) -> np.ndarray:
        color = np.broadcast_to(self.fill_color, (channels, ))
        if self.mode == 'const':
            values = np.broadcast_to(color, (h, w, channels))
        elif self.fill_std is None:
            values = rng.integers(0, 256, (h, w, channels))
        else:
            values = rng.normal(color, np.broadcast_to(self.fill_std, (channels, )), (h, w, channels))
        if np.issubdtype(dtype, np.integer):
            values = np.clip(np.rint(values), 0, 255)
        return values.astype(dtype)

    def __call__(self, results: dict) -> dict:
        rng = get_rng(results)
        img = results['img']
        results['erased_boxes'] = []
        if rng.random() > self.erase_prob:
            return results
        img_h, img_w = img.shape[:2]
        channels = img.shape[2] if img.ndim == 3 else 1
        count = self.min_count if self.min_count == self.max_count else int(
            rng.integers(self.min_count, self.max_count + 1))
        log_lo, log_hi = math.log(self.aspect_range[0]), math.log(self.aspect_range[1])
        img = img.copy()
        for _ in range(count):
            for _ in range(self.max_attempts):
                area = rng.uniform(self.min_area_ratio, self.max_area_ratio) * img_h * img_w / count
                aspect = math.exp(rng.uniform(log_lo, log_hi))
                h = int(round(math.sqrt(area * aspect)))
                w = int(round(math.sqrt(area / aspect)))
                if h < img_h and w < img_w:
                    top = int(rng.integers(0, img_h - h + 1))
                    left = int(rng.integers(0, img_w - w + 1))
                    patch = self._patch(rng, h, w, channels, img.dtype)
                    img[top:top + h, left:left + w] = patch if img.ndim == 3 else patch[:, :, 0]
                    results['erased_boxes'].append((top, left, h, w))
                    break
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(erase_prob={self.erase_prob}, min_area_ratio={self.min_area_ratio}, '
                f'max_area_ratio={self.max_area_ratio}, aspect_range={self.aspect_range}, mode={self.mode!r}, '
                f'fill_color={self.fill_color.tolist()}, '
                f'fill_std={None if self.fill_std is None else self.fill_std.tolist()}, '
                f'min_count={self.min_count}, max_count={self.max_count})')
