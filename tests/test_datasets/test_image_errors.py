"""Broken image files: one line naming the file and the problem, for every kind; which files are images."""
import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from effnet_mm.datasets import CorruptImageError, CustomDataset, find_images, is_image_file
from effnet_mm.datasets.transforms import imread
from effnet_mm.datasets.transforms.loading import DEFAULT_MAX_IMAGE_PIXELS, header_size


def _jpeg(h=60, w=80):
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def _huge_png(side=40000):
    """A valid 8-bit grey PNG header of side x side pixels (a few hundred bytes: the decoder must refuse it)."""
    header = struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', header) + _png_chunk(b'IDAT', zlib.compress(b'\0' * 4096)) +
            _png_chunk(b'IEND', b''))


def _broken_files():
    jpeg = _jpeg()
    png = cv2.imencode('.png', np.zeros((30, 40, 3), np.uint8))[1].tobytes()
    return {
        'empty.jpg': (b'', 'empty file (0 bytes)'),
        'truncated.jpg': (jpeg[:len(jpeg) // 2], f'truncated JPEG: {len(jpeg) // 2} bytes, no end-of-image marker'),
        'truncated.png': (png[:len(png) - 20], 'truncated PNG'),
        'corrupt.jpg': (jpeg[:20] + bytes(range(256)) * 4 + b'\xff\xd9', 'corrupt JPEG data'),
        'notes.jpg': (b'just some text, not a picture', "not an image: 29 bytes in no image format OpenCV reads (they "
                      "start with b'just som')"),
        'huge.png': (_huge_png(), f'image too large: 40000x40000 = 1600000000 pixels, over the decoder limit of '
                     f'{DEFAULT_MAX_IMAGE_PIXELS} pixels'),
    }


@pytest.mark.parametrize('name', sorted(_broken_files()))
def test_each_broken_kind_is_one_line_naming_the_file(tmp_path, name):
    data, reason = _broken_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CorruptImageError) as info:
        imread(str(path))
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'cannot decode image {path}: {reason}')
    assert info.value.path == str(path) and message.endswith(info.value.reason)
    assert isinstance(info.value, ValueError)  # command-line tools print it as one "error:" line


def test_missing_file_and_header_sizes(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'image file not found: .*gone\.png'):
        imread(str(tmp_path / 'gone.png'))
    assert header_size(_jpeg(60, 80)) == (60, 80)
    assert header_size(_huge_png(123)) == (123, 123)
    assert header_size(cv2.imencode('.bmp', np.zeros((7, 9, 3), np.uint8))[1].tobytes()) == (7, 9)
    assert header_size(b'nothing') is None


def test_hidden_files_are_not_images(tmp_path):
    for name in ('a.jpg', '._a.jpg', '.hidden.png', 'B.JPEG', 'notes.txt'):
        assert is_image_file(name) == (name in ('a.jpg', 'B.JPEG'))
    root = tmp_path / 'set'
    jpeg = _jpeg()
    for rel in ('cat/a.jpg', 'cat/._a.jpg', 'cat/.DS_Store', 'cat/.thumbs/b.jpg', 'dog/sub/c.jpg',
                '.ipynb_checkpoints/d.jpg', '__MACOSX/cat/._a.jpg'):
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        (root / rel).write_bytes(jpeg)
    assert [os.path.relpath(p, root) for p in find_images(str(root / 'cat'))] == ['cat/a.jpg']
    assert find_images(str(root / 'cat'), recursive=False) == [str(root / 'cat' / 'a.jpg')]
    with pytest.raises(ValueError, match='__MACOSX.* has no images'):  # an AppleDouble-only folder has no images
        CustomDataset(data_root=str(root))
    ds = CustomDataset(data_root=str(root), classes=['cat', 'dog'])
    assert [os.path.relpath(d['img_path'], root) for d in ds.data_list] == ['cat/a.jpg', 'dog/sub/c.jpg']
    import shutil
    shutil.rmtree(root / '__MACOSX')
    assert CustomDataset(data_root=str(root)).metainfo['classes'] == ('cat', 'dog')  # no '.ipynb_checkpoints'
