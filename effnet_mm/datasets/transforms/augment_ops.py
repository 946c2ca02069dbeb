"""Image operations of AutoAugment / RandAugment, on HWC uint8 BGR arrays (numpy + OpenCV, no PIL).

Each follows the TensorFlow reference (tensorflow/tpu ``models/official/efficientnet/autoaugment.py``), which is
what the released AutoAugment / RandAugment EfficientNet checkpoints were trained with: nearest-neighbour geometry
with a constant fill, TF's ``blend`` (truncating cast between the two images, clipping when extrapolating) and
PIL-style equalize.  Every function returns a new array and leaves its input untouched.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import cv2
import numpy as np

Fill = Union[int, Sequence[int]]

# TF's rgb_to_grayscale weights (R, G, B), reversed because images here are BGR.
_GRAY_WEIGHTS_BGR = np.array([0.1140, 0.5870, 0.2989], np.float32)


def _channels(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 3 else img[:, :, None]


def _fill_value(fill: Fill, channels: int) -> tuple:
    values = [fill] * channels if np.isscalar(fill) else list(fill)
    if len(values) != channels:
        raise ValueError(f'fill must be a scalar or have {channels} values, got {fill!r}')
    return tuple(float(v) for v in values) + (0.0, ) * (4 - channels)


def blend(img1: np.ndarray, img2: np.ndarray, factor: float) -> np.ndarray:
    """TF ``blend``: ``img1 + factor * (img2 - img1)``; truncated to uint8, clipped only when extrapolating."""
    if factor == 0.0:
        return img1.copy()
    if factor == 1.0:
        return img2.copy()
    a = img1.astype(np.float32)
    out = a + np.float32(factor) * (img2.astype(np.float32) - a)
    if 0.0 < factor < 1.0:
        return out.astype(np.uint8)
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def grayscale(img: np.ndarray) -> np.ndarray:
    """TF ``rgb_to_grayscale`` then ``grayscale_to_rgb`` (as uint8, 3 channels; its float->uint8 scales by 255.5)."""
    gray = _channels(img).astype(np.float32) @ _GRAY_WEIGHTS_BGR
    gray = (gray * np.float32(255.5 / 255.0)).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def auto_contrast(img: np.ndarray) -> np.ndarray:
    """Stretch each channel to 0..255 (channels with a single value are left as they are)."""
    img = _channels(img)
    out = img.copy()
    for c in range(img.shape[2]):
        ch = img[:, :, c].astype(np.float32)
        lo, hi = ch.min(), ch.max()
        if hi > lo:
            scale = 255.0 / (hi - lo)
            out[:, :, c] = np.clip(ch * scale - lo * scale, 0.0, 255.0).astype(np.uint8)
    return out


def equalize(img: np.ndarray) -> np.ndarray:
    """PIL-style per-channel histogram equalisation (TF ``equalize``)."""
    img = _channels(img)
    out = img.copy()
    for c in range(img.shape[2]):
        ch = img[:, :, c]
        hist = np.bincount(ch.ravel(), minlength=256)
        nonzero = hist[hist > 0]
        step = (int(nonzero.sum()) - int(nonzero[-1])) // 255
        if step == 0:
            continue
        lut = (np.cumsum(hist) + step // 2) // step
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255).astype(np.uint8)
        out[:, :, c] = lut[ch]
    return out


def invert(img: np.ndarray) -> np.ndarray:
    return 255 - img


def posterize(img: np.ndarray, bits: int) -> np.ndarray:
    """Keep the ``bits`` high bits.  The shift is clamped to 0..7 like TF's uint8 ``bitwise`` kernels (so
    ``bits=0`` keeps one bit, ``bits>=8`` is the identity)."""
    shift = min(max(8 - int(bits), 0), 7)
    return ((img >> shift) << shift).astype(np.uint8)


def solarize(img: np.ndarray, threshold: float) -> np.ndarray:
    """Invert the pixels ``>= threshold``."""
    return np.where(img < threshold, img, 255 - img).astype(np.uint8)


def solarize_add(img: np.ndarray, addition: int, threshold: float = 128) -> np.ndarray:
    """Add ``addition`` (clipped to 0..255) to the pixels ``< threshold``."""
    added = np.clip(img.astype(np.int32) + int(addition), 0, 255).astype(np.uint8)
    return np.where(img < threshold, added, img)


def color(img: np.ndarray, factor: float) -> np.ndarray:
    """Saturation: blend from the grayscale image (factor 0) to the image (factor 1)."""
    return blend(grayscale(img), _channels(img), factor)


def contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """TF ``contrast``: blend from a constant image to the image.

    The constant is TF's ``sum(histogram) / 256``, i.e. the pixel count / 256 clipped to 255, not the mean grey
    level: a quirk of the reference kept on purpose so that RandAugment matches the released checkpoints' training.
    """
    img = _channels(img)
    mean = min(img.shape[0] * img.shape[1] / 256.0, 255.0)
    degenerate = np.full_like(img, int(mean))
    return blend(degenerate, img, factor)


def brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend from black (factor 0) to the image (factor 1)."""
    return blend(np.zeros_like(img), img, factor)


def sharpness(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend from a smoothed image (3x3 kernel [[1,1,1],[1,5,1],[1,1,1]]/13, border pixels kept) to the image."""
    img = _channels(img)
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
    smooth = cv2.filter2D(img.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    smooth = _channels(np.clip(smooth, 0.0, 255.0).astype(np.uint8))
    degenerate = img.copy()
    degenerate[1:-1, 1:-1] = smooth[1:-1, 1:-1]
    return blend(degenerate, img, factor)


def _warp(img: np.ndarray, inverse_map: np.ndarray, fill: Fill) -> np.ndarray:
    """Apply ``out(x, y) = img(inverse_map @ (x, y, 1))`` with nearest neighbour and a constant fill, as TF's
    ``contrib.image.transform`` on the wrapped image followed by ``unwrap``."""
    img = _channels(img)
    h, w, c = img.shape
    if c > 4:
        raise ValueError(f'geometric ops support up to 4 channels, got {c}')
    out = cv2.warpAffine(img, inverse_map.astype(np.float64), (w, h),
                         flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=_fill_value(fill, c))
    return _channels(out)


def rotate(img: np.ndarray, degrees: float, fill: Fill = 128) -> np.ndarray:
    """Rotate counter-clockwise by ``degrees`` around the image centre (TF ``angles_to_projective_transforms``)."""
    h, w = img.shape[:2]
    rad = math.radians(degrees)
    cos, sin = math.cos(rad), math.sin(rad)
    x_off = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_off = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    return _warp(img, np.array([[cos, -sin, x_off], [sin, cos, y_off]]), fill)


def shear_x(img: np.ndarray, level: float, fill: Fill = 128) -> np.ndarray:
    """``out(x, y) = img(x + level * y, y)``."""
    return _warp(img, np.array([[1.0, level, 0.0], [0.0, 1.0, 0.0]]), fill)


def shear_y(img: np.ndarray, level: float, fill: Fill = 128) -> np.ndarray:
    """``out(x, y) = img(x, level * x + y)``."""
    return _warp(img, np.array([[1.0, 0.0, 0.0], [level, 1.0, 0.0]]), fill)


def translate_x(img: np.ndarray, pixels: float, fill: Fill = 128) -> np.ndarray:
    """``out(x, y) = img(x + pixels, y)``: the content moves left by ``pixels``."""
    return _warp(img, np.array([[1.0, 0.0, pixels], [0.0, 1.0, 0.0]]), fill)


def translate_y(img: np.ndarray, pixels: float, fill: Fill = 128) -> np.ndarray:
    """``out(x, y) = img(x, y + pixels)``: the content moves up by ``pixels``."""
    return _warp(img, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, pixels]]), fill)


def cutout(img: np.ndarray, pad_size: int, rng: np.random.Generator, fill: Fill = 128) -> np.ndarray:
    """Fill a ``2 * pad_size`` square (clipped at the borders) centred on a uniformly drawn pixel."""
    img = _channels(img)
    h, w, c = img.shape
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    out = img.copy()
    out[max(0, cy - pad_size):min(h, cy + pad_size), max(0, cx - pad_size):min(w, cx + pad_size)] = \
        np.array(_fill_value(fill, c)[:c], np.float32).astype(np.uint8)
    return out
