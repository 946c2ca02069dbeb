"""Which files are images: the one rule that datasets scanning folders and ``tools/infer.py`` share."""
from __future__ import annotations

import os
from typing import List, Sequence

#: File extensions read as images (compared case-insensitively): the formats OpenCV decodes.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def is_hidden(name: str) -> bool:
    """A dot-file or dot-folder: macOS AppleDouble ``._x.jpg`` and ``.DS_Store``, ``.ipynb_checkpoints``, ``.git``."""
    return os.path.basename(name).startswith('.')


def is_image_file(name: str, extensions: Sequence[str] = IMG_EXTENSIONS) -> bool:
    """True for a visible file name with an image extension (``._cat.jpg`` is AppleDouble metadata, not an image)."""
    return not is_hidden(name) and name.lower().endswith(tuple(e.lower() for e in extensions))


def find_images(folder: str, extensions: Sequence[str] = IMG_EXTENSIONS, recursive: bool = True) -> List[str]:
    """Image files below ``folder`` in sorted order (hidden files and folders skipped), so that the sample order
    never depends on the file system."""
    if not recursive:
        return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                      if is_image_file(f, extensions) and os.path.isfile(os.path.join(folder, f)))
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_image_file(f, extensions))
    return found
