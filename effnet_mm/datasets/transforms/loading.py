"""Image decoding."""
from __future__ import annotations

import os

import cv2
import numpy as np

from effnet_mm.registry import TRANSFORMS


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded (truncated, corrupt or not an image)."""


_IMREAD_FLAGS = {
    'color': cv2.IMREAD_COLOR,
    'grayscale': cv2.IMREAD_GRAYSCALE,
    'unchanged': cv2.IMREAD_UNCHANGED,
}


def imread(path: str, color_type: str = 'color') -> np.ndarray:
    """Decode an image file with OpenCV (BGR for colour images).

    ``np.fromfile`` + ``cv2.imdecode`` rather than ``cv2.imread``: the latter returns None without a reason and fails
    on non-ASCII paths on some platforms.

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptImageError: the bytes cannot be decoded as an image.
    """
    if color_type not in _IMREAD_FLAGS:
        raise ValueError(f'color_type must be one of {sorted(_IMREAD_FLAGS)}, got {color_type!r}')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, _IMREAD_FLAGS[color_type]) if data.size else None
    if img is None:
        raise CorruptImageError(f'cannot decode image file {path} ({data.size} bytes): '
                                f'it is corrupt, truncated or not an image')
    return img


@TRANSFORMS.register_module()
class LoadImageFromFile:
    """Load ``results['img_path']`` into ``results['img']`` (HWC uint8, BGR), as mmpretrain's transform of that name.

    Example config::

        dict(type='LoadImageFromFile')

    Args:
        to_float32: convert the image to float32 (the default keeps uint8, which the loaders ship).
        color_type: ``'color'`` (always 3 channels), ``'grayscale'`` or ``'unchanged'``.
        imdecode_backend: only ``'cv2'`` is supported (accepted for mmpretrain config compatibility).
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color', imdecode_backend: str = 'cv2') -> None:
        if imdecode_backend != 'cv2':
            raise ValueError(f"LoadImageFromFile: only imdecode_backend='cv2' is supported, got {imdecode_backend!r}")
        if color_type not in _IMREAD_FLAGS:
            raise ValueError(f'LoadImageFromFile: color_type must be one of {sorted(_IMREAD_FLAGS)}, '
                             f'got {color_type!r}')
        self.to_float32 = to_float32
        self.color_type = color_type

    def __call__(self, results: dict) -> dict:
        img = imread(results['img_path'], self.color_type)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(to_float32={self.to_float32}, color_type={self.color_type!r})'
