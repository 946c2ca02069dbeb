"""Image decoding, with one clear error line per kind of broken file."""
from __future__ import annotations

import os
import struct
from typing import Optional, Tuple

import cv2
import numpy as np

from effnet_mm.registry import TRANSFORMS


class CorruptImageError(OSError, ValueError):
    """An image file exists but cannot be read or decoded.  The message is one line: the file, then what is wrong.

    Also a ``ValueError`` (bad input data), so command-line tools report it as one ``error:`` line.

    Attributes:
        path: the image file.
        reason: what is wrong, e.g. ``'truncated JPEG: 8192 bytes, no end-of-image marker'``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f'cannot decode image {path}: {reason}')
        self.path = path
        self.reason = reason

    def __reduce__(self):  # picklable with its two arguments (worker processes send errors back)
        return type(self), (self.path, self.reason)


_IMREAD_FLAGS = {
    'color': cv2.IMREAD_COLOR,
    'grayscale': cv2.IMREAD_GRAYSCALE,
    'unchanged': cv2.IMREAD_UNCHANGED,
}

#: OpenCV refuses to decode images with more pixels than this (its ``CV_IO_MAX_IMAGE_PIXELS``, 2**30 by default;
#: the environment variable ``OPENCV_IO_MAX_IMAGE_PIXELS``, read when OpenCV first decodes, changes it).
DEFAULT_MAX_IMAGE_PIXELS = 1 << 30

_SIGNATURES = (
    (b'\xff\xd8\xff', 'JPEG'),
    (b'\x89PNG\r\n\x1a\n', 'PNG'),
    (b'BM', 'BMP'),
    (b'II*\x00', 'TIFF'),
    (b'MM\x00*', 'TIFF'),
    (b'GIF87a', 'GIF'),
    (b'GIF89a', 'GIF'),
    (b'\x00\x00\x00\x0cjP  ', 'JPEG 2000'),
)


def max_image_pixels() -> int:
    """The pixel limit OpenCV applies when decoding (see :data:`DEFAULT_MAX_IMAGE_PIXELS`)."""
    try:
        return int(os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS', DEFAULT_MAX_IMAGE_PIXELS))
    except ValueError:
        return DEFAULT_MAX_IMAGE_PIXELS


def image_format(data: bytes) -> Optional[str]:
    """The image format the leading bytes announce (``'JPEG'``, ``'PNG'``, ...), None for anything else."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'WebP'
    if len(data) > 2 and data[:1] == b'P' and data[1:2] in b'1234567' and data[2:3].isspace():
        return 'PNM'
    return None


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack('>HH', data[pos + 5:pos + 9])
            return height, width
        pos += 2 + struct.unpack('>H', data[pos + 2:pos + 4])[0]
    return None


def header_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(height, width)`` from the header of a JPEG, PNG or BMP file without decoding it; None when unknown."""
    fmt = image_format(data)
    if fmt == 'PNG' and len(data) >= 24:
        width, height = struct.unpack('>II', data[16:24])
        return height, width
    if fmt == 'BMP' and len(data) >= 26:
        width, height = struct.unpack('<ii', data[18:26])
        return abs(height), abs(width)
    if fmt == 'JPEG':
        return _jpeg_size(data)
    return None


def _undecodable_reason(data: bytes) -> str:
    """Why ``cv2.imdecode`` returned nothing for ``data``."""
    if not data:
        return 'empty file (0 bytes)'
    fmt = image_format(data)
    if fmt is None:
        return f'not an image: {len(data)} bytes in no image format OpenCV reads (they start with {data[:8]!r})'
    if fmt == 'JPEG' and b'\xff\xd9' not in data[-1024:]:
        return f'truncated JPEG: {len(data)} bytes, no end-of-image marker'
    if fmt == 'PNG' and b'IEND' not in data[-64:]:
        return f'truncated PNG: {len(data)} bytes, no IEND chunk'
    return f'corrupt {fmt} data ({len(data)} bytes) that OpenCV cannot decode'


def _too_large_reason(data: bytes) -> str:
    size = header_size(data)
    what = f'{size[1]}x{size[0]} = {size[0] * size[1]} pixels' if size else 'too many pixels'
    return (f'image too large: {what}, over the decoder limit of {max_image_pixels()} pixels '
            f'(set OPENCV_IO_MAX_IMAGE_PIXELS to raise it)')


def imread(path: str, color_type: str = 'color') -> np.ndarray:
    """Decode an image file with OpenCV (BGR for colour images).

    ``np.fromfile`` + ``cv2.imdecode`` rather than ``cv2.imread``: the latter returns None without a reason and fails
    on non-ASCII paths on some platforms.  Every failure is one line naming the file and the problem: empty file,
    not an image, truncated JPEG/PNG, corrupt data, unreadable file, or more pixels than OpenCV decodes
    (:func:`max_image_pixels`, 2**30 by default).

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptImageError: the file cannot be read or decoded.
    """
    if color_type not in _IMREAD_FLAGS:
        raise ValueError(f'color_type must be one of {sorted(_IMREAD_FLAGS)}, got {color_type!r}')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise CorruptImageError(path, f'cannot be read: {err.strerror or err}') from None
    img = None
    if data.size:
        try:
            img = cv2.imdecode(data, _IMREAD_FLAGS[color_type])
        except cv2.error as err:
            reason = (_too_large_reason(data.tobytes()) if 'CV_IO_MAX_IMAGE_PIXELS' in str(err) else
                      f'OpenCV error: {str(err).strip().splitlines()[-1]}')
            raise CorruptImageError(path, reason) from None
    if img is None:
        raise CorruptImageError(path, _undecodable_reason(data.tobytes()))
    return img


@TRANSFORMS.register_module()
class LoadImageFromFile:
    """Load ``results['img_path']`` into ``results['img']`` (HWC uint8, BGR), as mmpretrain's transform of that name.

    A missing file raises ``FileNotFoundError``, a broken one :class:`CorruptImageError`; both name the file (with
    the dataset's ``skip_corrupt=True`` the loader skips such samples and reports them, see docs/data.md).

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
