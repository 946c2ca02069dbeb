"""Class-per-folder or annotation-file image datasets."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from effnet_mm.registry import DATASETS

from .base_dataset import BaseDataset
from .image_files import IMG_EXTENSIONS, find_images, is_hidden


def class_folders(prefix: str) -> List[str]:
    """The visible sub-folders of ``prefix``, sorted (``.ipynb_checkpoints`` and the like are not classes)."""
    return sorted(d for d in os.listdir(prefix) if not is_hidden(d) and os.path.isdir(os.path.join(prefix, d)))


def scan_class_folders(prefix: str, classes: Optional[tuple], extensions: Tuple[str, ...], owner: str,
                       require_all: bool = True) -> Tuple[tuple, List[dict]]:
    """Samples of a ``prefix/<class>/**/<image>`` tree; class indices follow ``classes`` or the sorted names.

    Images are the files :func:`~effnet_mm.datasets.image_files.find_images` lists (hidden files and folders are
    not).  With ``require_all=False`` a class of ``classes`` without a folder simply has no samples (an existing but
    empty folder is still an error).
    """
    if not os.path.isdir(prefix):
        raise FileNotFoundError(f'{owner}: image folder {prefix!r} not found (expected {prefix}/<class>/<image>)')
    if classes is None:
        classes = tuple(class_folders(prefix))
        if not classes:
            raise ValueError(f'{owner}: no class folders in {prefix!r} (expected {prefix}/<class>/<image>, '
                             f'or give ann_file)')
    samples = []
    for label, name in enumerate(classes):
        folder = os.path.join(prefix, name)
        if not os.path.isdir(folder):
            if not require_all:
                continue
            raise FileNotFoundError(f'{owner}: class folder {folder!r} of class {name!r} not found')
        images = find_images(folder, extensions)
        if not images:
            raise ValueError(f'{owner}: class folder {folder!r} has no images with extensions {list(extensions)}')
        samples.extend({'img_path': p, 'gt_label': label} for p in images)
    return classes, samples


def read_annotation_file(ann_file: str, prefix: str, num_classes: Optional[int], owner: str) -> List[dict]:
    """Samples of an annotation file of ``<path relative to prefix> <int label>`` lines (blank lines skipped)."""
    if not os.path.isfile(ann_file):
        raise FileNotFoundError(f'{owner}: annotation file {ann_file!r} not found')
    samples = []
    with open(ann_file, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)  # the path may contain spaces, the label cannot
            where = f'{ann_file}:{lineno}'
            if len(parts) != 2:
                raise ValueError(f'{owner}: {where}: expected "<path> <label>", got {line!r}')
            path, label_str = parts
            try:
                label = int(label_str)
            except ValueError:
                raise ValueError(f'{owner}: {where}: label {label_str!r} is not an integer') from None
            if label < 0 or (num_classes is not None and label >= num_classes):
                bound = 'a non-negative int' if num_classes is None else f'in [0, {num_classes - 1}]'
                raise ValueError(f'{owner}: {where}: label {label} out of range (expected {bound})')
            img_path = os.path.join(prefix, path)
            if not os.path.isfile(img_path):
                raise FileNotFoundError(f'{owner}: {where}: image {img_path!r} not found')
            samples.append({'img_path': img_path, 'gt_label': label})
    return samples


@DATASETS.register_module()
class CustomDataset(BaseDataset):
    """Images in class folders (``data_prefix/<class>/**/*.png``) or listed in an annotation file.

    Without ``ann_file`` the classes are the sub-folders of ``data_prefix`` (sorted, hidden ones excluded), or
    ``classes`` (in that order, and only those); hidden files (``.x``, macOS ``._x.jpg``) are not images.  With
    ``ann_file``, each line is ``<path relative to data_prefix> <label>``; ``classes`` (if given) fixes the label
    range.  ``metainfo['classes']`` holds the class names.

    Example config::

        dataset = dict(type='CustomDataset', data_root='data/my_set', data_prefix='train',
                       pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
        dataset = dict(type='CustomDataset', data_root='data/my_set', ann_file='meta/val.txt', data_prefix='val',
                       classes=['cat', 'dog'], pipeline=[...])

    Args:
        extensions: image file extensions considered when scanning folders (case-insensitive; default
            :data:`~effnet_mm.datasets.image_files.IMG_EXTENSIONS`).
        **kwargs: see :class:`~effnet_mm.datasets.base_dataset.BaseDataset` (``data_root``, ``ann_file``,
            ``data_prefix``, ``classes``, ``metainfo``, ``pipeline``, ``skip_corrupt``).
    """

    #: Whether every class needs a folder when the classes are known beforehand (see ``scan_class_folders``).
    require_all_class_folders = True

    def __init__(self, *args, extensions: Sequence[str] = IMG_EXTENSIONS, **kwargs) -> None:
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(*args, **kwargs)

    def load_data_list(self, classes: Optional[tuple]) -> List[dict]:
        owner = type(self).__name__
        if self.ann_file:
            samples = read_annotation_file(self.ann_file, self.img_prefix,
                                           None if classes is None else len(classes), owner)
        else:
            classes, samples = scan_class_folders(self.img_prefix, classes, self.extensions, owner,
                                                  self.require_all_class_folders)
        self.metainfo['classes'] = classes
        return samples
