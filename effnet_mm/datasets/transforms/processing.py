"""Geometric transforms: EfficientNet (TF-style) crops, resize-then-crop evaluation (other libraries), flips."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from effnet_mm.registry import TRANSFORMS

from ._rng import get_rng

INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}

#: ``(top, left, height, width)`` of a crop.
Box = Tuple[int, int, int, int]


def _check_backend(name: str, interpolation: str, backend: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f'{name}: interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}')
    if backend != 'cv2':
        raise ValueError(f"{name}: only backend='cv2' is supported, got {backend!r}")


def center_crop_box(height: int, width: int, size: int, crop_padding: int = 32) -> Box:
    """TF ``_decode_and_center_crop`` geometry: a centred square of ``int(size / (size + pad) * short_side)``.

    The ratio is float32 as in TF (``image_size / (image_size + CROP_PADDING)`` times a float32 tensor), which
    decides the rare sizes where the product lands on an integer boundary.
    """
    ratio = np.float32(size / (size + crop_padding))
    crop = int(ratio * np.float32(min(height, width)))
    crop = max(crop, 1)
    return ((height - crop) + 1) // 2, ((width - crop) + 1) // 2, crop, crop


def _resize(img: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    out = cv2.resize(img, (size, size), interpolation=INTERPOLATIONS[interpolation])
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return out


def _crop_resize(results: dict, box: Box, size: int, interpolation: str) -> dict:
    top, left, h, w = box
    img = results['img'][top:top + h, left:left + w]
    img = _resize(img, size, interpolation)
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    results['crop_bbox'] = box
    return results


@TRANSFORMS.register_module()
class EfficientNetCenterCrop:
    """EfficientNet evaluation crop (TF ``_decode_and_center_crop``): padded centre crop, then resize to a square.

    The crop side is ``int(S / (S + crop_padding) * min(h, w))``, its offsets ``((h - c) + 1) // 2`` and
    ``((w - c) + 1) // 2``; there is no aspect-preserving resize first.  ``crop_padding=32`` is the value of every
    released TF checkpoint.

    Example config::

        dict(type='EfficientNetCenterCrop', crop_size=224, crop_padding=32, interpolation='bicubic')

    Args:
        crop_size: output side ``S``.
        crop_padding: the ``pad`` of the crop ratio ``S / (S + pad)``.
        interpolation: OpenCV interpolation name (``'bicubic'`` as TF).
        backend: only ``'cv2'`` (accepted for mmpretrain config compatibility).
    """

    def __init__(self, crop_size: int, crop_padding: int = 32, interpolation: str = 'bicubic',
                 backend: str = 'cv2') -> None:
        if not isinstance(crop_size, int) or crop_size <= 0:
            raise ValueError(f'EfficientNetCenterCrop: crop_size must be a positive int, got {crop_size!r}')
        if crop_padding < 0:
            raise ValueError(f'EfficientNetCenterCrop: crop_padding must be >= 0, got {crop_padding}')
        _check_backend('EfficientNetCenterCrop', interpolation, backend)
        self.crop_size = crop_size
        self.crop_padding = crop_padding
        self.interpolation = interpolation

    def __call__(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        box = center_crop_box(h, w, self.crop_size, self.crop_padding)
        return _crop_resize(results, box, self.crop_size, self.interpolation)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(crop_size={self.crop_size}, crop_padding={self.crop_padding}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class ResizeEdge:
    """Resize so that one edge gets ``scale`` pixels, keeping the aspect ratio (mmpretrain ``ResizeEdge``).

    The other edge becomes ``int(scale * other / edge)`` (truncated, as mmpretrain and torchvision's ``Resize(int)``
    do).  With ``edge='short'`` followed by :class:`CenterCrop` this is the evaluation crop of timm, MindCV and the
    MindSpore model zoo (resize-then-crop), unlike TF's crop-then-resize :class:`EfficientNetCenterCrop`.

    Example config::

        dict(type='ResizeEdge', scale=256, edge='short', interpolation='bicubic')

    Args:
        scale: target length of the chosen edge.
        edge: ``'short'``, ``'long'``, ``'width'`` or ``'height'``.
        interpolation: OpenCV interpolation name.
        backend: only ``'cv2'`` (accepted for mmpretrain config compatibility).
    """

    EDGES = ('short', 'long', 'width', 'height')

    def __init__(self, scale: int, edge: str = 'short', interpolation: str = 'bilinear', backend: str = 'cv2') -> None:
        if not isinstance(scale, int) or scale <= 0:
            raise ValueError(f'ResizeEdge: scale must be a positive int, got {scale!r}')
        if edge not in self.EDGES:
            raise ValueError(f'ResizeEdge: edge must be one of {self.EDGES}, got {edge!r}')
        _check_backend('ResizeEdge', interpolation, backend)
        self.scale = scale
        self.edge = edge
        self.interpolation = interpolation

    def __call__(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        if (self.edge == 'short' and w < h) or (self.edge == 'long' and w > h) or self.edge == 'width':
            width, height = self.scale, int(self.scale * h / w)
        else:
            width, height = int(self.scale * w / h), self.scale
        out = cv2.resize(img, (width, height), interpolation=INTERPOLATIONS[self.interpolation])
        if img.ndim == 3 and out.ndim == 2:
            out = out[:, :, None]
        results['img'] = out
        results['img_shape'] = out.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, edge={self.edge!r}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class CenterCrop:
    """Crop the centre ``crop_size`` (mmpretrain/mmcv ``CenterCrop``; offsets ``round((h - ch) / 2)`` like
    torchvision and mmcv).  An image smaller than the crop is an error (no padding).

    Example config::

        dict(type='CenterCrop', crop_size=224)

    Args:
        crop_size: the output side, or ``(width, height)``.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]]) -> None:
        size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise ValueError(f'CenterCrop: crop_size must be a positive int or (width, height), got {crop_size!r}')
        self.crop_size = crop_size
        self.crop_w, self.crop_h = size

    def __call__(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        if h < self.crop_h or w < self.crop_w:
            raise ValueError(f'CenterCrop: image of {w}x{h} is smaller than the crop {self.crop_w}x{self.crop_h} '
                             f'({results.get("img_path", "in-memory image")})')
        top, left = int(round((h - self.crop_h) / 2)), int(round((w - self.crop_w) / 2))
        results['img'] = results['img'][top:top + self.crop_h, left:left + self.crop_w]
        results['img_shape'] = (self.crop_h, self.crop_w)
        results['crop_bbox'] = (top, left, self.crop_h, self.crop_w)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop_size={self.crop_size!r})'


def _lrint(x: float) -> int:
    # C lrintf under the default rounding mode: round half to even, like Python's round().
    return int(round(float(np.float32(x))))


def _generate_random_crop(rng: np.random.Generator, height: int, width: int, min_area_frac: float,
                          max_area_frac: float, aspect: float) -> Optional[Box]:
    """One try of TF's ``GenerateRandomCrop`` (sample_distorted_bounding_box_op.cc); None if it fails."""
    min_area = min_area_frac * width * height
    max_area = max_area_frac * width * height
    crop_h = _lrint(math.sqrt(min_area / aspect))
    max_h = _lrint(math.sqrt(max_area / aspect))
    if _lrint(max_h * aspect) > width:
        # The smallest max_h with round(max_h * aspect) <= width.
        max_h = int((width + 0.5 - 1e-7) / aspect)
        if _lrint(max_h * aspect) > width:
            max_h -= 1
    max_h = min(max_h, height)
    crop_h = min(crop_h, max_h)
    if crop_h < max_h:
        crop_h += int(rng.integers(0, max_h - crop_h + 1))
    crop_w = _lrint(crop_h * aspect)
    area = crop_w * crop_h
    # Rounding may leave the area just below the minimum: TF tries one and then two pixels taller.
    for _ in range(2):
        if area < min_area:
            crop_h += 1
            crop_w = _lrint(crop_h * aspect)
            area = crop_w * crop_h
    if area < min_area or area > max_area or crop_w > width or crop_h > height or crop_w <= 0 or crop_h <= 0:
        return None
    top = int(rng.integers(0, height - crop_h)) if crop_h < height else 0
    left = int(rng.integers(0, width - crop_w)) if crop_w < width else 0
    return top, left, crop_h, crop_w


@TRANSFORMS.register_module()
class EfficientNetRandomCrop:
    """EfficientNet training crop (TF ``_decode_and_random_crop``): distorted bounding box, then bicubic resize.

    Follows ``tf.image.sample_distorted_bounding_box`` with the whole image as the object box: up to
    ``max_attempts`` tries, each drawing an aspect ratio (width / height) uniformly from ``aspect_ratio_range`` and a
    height so that the area fraction is within ``area_range``; a try is accepted when the crop covers at least
    ``min_covered`` of the image.  When no try succeeds, or the accepted crop is the whole image, TF falls back to the
    padded centre crop of :class:`EfficientNetCenterCrop`, and so does this transform.

    ``results['crop_bbox']`` is set to ``(top, left, height, width)`` of the region used; ``results['crop_fallback']``
    tells whether the centre-crop fallback was taken.

    Example config::

        dict(type='EfficientNetRandomCrop', scale=224, min_covered=0.1, crop_padding=32, interpolation='bicubic')

    Args:
        scale: output side ``S``.
        min_covered: minimal fraction of the image the crop must cover (TF ``min_object_covered``).
        crop_padding: ``pad`` of the fallback centre crop ratio ``S / (S + pad)``.
        interpolation: OpenCV interpolation name (``'bicubic'`` as TF).
        aspect_ratio_range: range of width / height.
        area_range: range of the crop area as a fraction of the image area.
        max_attempts: tries before falling back.
        backend: only ``'cv2'`` (accepted for mmpretrain config compatibility).
    """

    def __init__(self,
                 scale: int,
                 min_covered: float = 0.1,
                 crop_padding: int = 32,
                 interpolation: str = 'bicubic',
                 aspect_ratio_range: Sequence[float] = (3. / 4., 4. / 3.),
                 area_range: Sequence[float] = (0.08, 1.0),
                 max_attempts: int = 10,
                 backend: str = 'cv2') -> None:
        if not isinstance(scale, int) or scale <= 0:
            raise ValueError(f'EfficientNetRandomCrop: scale must be a positive int, got {scale!r}')
        if not 0 <= min_covered <= 1:
            raise ValueError(f'EfficientNetRandomCrop: min_covered must be in [0, 1], got {min_covered}')
        lo_ar, hi_ar = aspect_ratio_range
        lo_area, hi_area = area_range
        if not 0 < lo_ar <= hi_ar:
            raise ValueError(f'EfficientNetRandomCrop: aspect_ratio_range must satisfy 0 < lo <= hi, '
                             f'got {tuple(aspect_ratio_range)}')
        if not 0 < lo_area <= hi_area <= 1:
            raise ValueError(f'EfficientNetRandomCrop: area_range must satisfy 0 < lo <= hi <= 1, '
                             f'got {tuple(area_range)}')
        if max_attempts < 1:
            raise ValueError(f'EfficientNetRandomCrop: max_attempts must be >= 1, got {max_attempts}')
        _check_backend('EfficientNetRandomCrop', interpolation, backend)
        self.scale = scale
        self.min_covered = float(min_covered)
        self.crop_padding = crop_padding
        self.interpolation = interpolation
        self.aspect_ratio_range = (float(lo_ar), float(hi_ar))
        self.area_range = (float(lo_area), float(hi_area))
        self.max_attempts = int(max_attempts)

    def sample_box(self, height: int, width: int, rng: np.random.Generator) -> Optional[Box]:
        """The distorted bounding box, or None when every attempt failed."""
        lo_ar, hi_ar = self.aspect_ratio_range
        for _ in range(self.max_attempts):
            aspect = float(np.float32(rng.random() * (hi_ar - lo_ar) + lo_ar))
            box = _generate_random_crop(rng, height, width, self.area_range[0], self.area_range[1], aspect)
            # The object box is the whole image, so its coverage is the crop's area fraction.
            if box is not None and box[2] * box[3] >= self.min_covered * height * width:
                return box
        return None

    def __call__(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        box = self.sample_box(h, w, get_rng(results))
        fallback = box is None or (box[2] == h and box[3] == w)
        if fallback:
            box = center_crop_box(h, w, self.scale, self.crop_padding)
        results['crop_fallback'] = fallback
        return _crop_resize(results, box, self.scale, self.interpolation)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, min_covered={self.min_covered}, '
                f'crop_padding={self.crop_padding}, interpolation={self.interpolation!r}, '
                f'aspect_ratio_range={self.aspect_ratio_range}, area_range={self.area_range}, '
                f'max_attempts={self.max_attempts})')


_FLIPS = {'horizontal': 1, 'vertical': 0, 'diagonal': -1}


@TRANSFORMS.register_module()
class RandomFlip:
    """Flip the image with probability ``prob`` (mmpretrain/mmcv ``RandomFlip``).

    Example config::

        dict(type='RandomFlip', prob=0.5, direction='horizontal')

    Args:
        prob: flip probability.
        direction: ``'horizontal'``, ``'vertical'`` or ``'diagonal'``, or a list of them (one is chosen uniformly
            when the flip happens).
    """

    def __init__(self, prob: float = 0.5, direction: Union[str, Sequence[str]] = 'horizontal') -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomFlip: prob must be in [0, 1], got {prob}')
        directions = [direction] if isinstance(direction, str) else list(direction)
        bad = [d for d in directions if d not in _FLIPS]
        if bad or not directions:
            raise ValueError(f'RandomFlip: direction must be in {sorted(_FLIPS)}, got {direction!r}')
        self.prob = float(prob)
        self.direction = direction
        self._directions = directions

    def __call__(self, results: dict) -> dict:
        rng = get_rng(results)
        flip = bool(rng.random() < self.prob)
        results['flip'] = flip
        results['flip_direction'] = None
        if flip:
            direction = self._directions[int(rng.integers(len(self._directions)))]
            img = cv2.flip(results['img'], _FLIPS[direction])
            if results['img'].ndim == 3 and img.ndim == 2:
                img = img[:, :, None]
            results['img'] = img
            results['flip_direction'] = direction
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, direction={self.direction!r})'
