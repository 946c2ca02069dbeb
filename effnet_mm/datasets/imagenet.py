"""ImageNet-1k in its usual on-disk layouts."""
from __future__ import annotations

import os
from typing import List, Optional

from effnet_mm.registry import DATASETS

from .base_dataset import read_classes
from .custom import CustomDataset

NUM_IMAGENET_CLASSES = 1000


@DATASETS.register_module()
class ImageNet(CustomDataset):
    """ImageNet-1k: ``train/<wnid>/*.JPEG`` class folders, and ``val/`` with ``meta/val.txt`` or class folders.

    ``split`` picks the defaults as mmpretrain does: ``data_prefix=split`` and, when ``<data_root>/meta/<split>.txt``
    exists, that annotation file (lines ``ILSVRC2012_val_00000001.JPEG 65``).  Class names come from ``classes``,
    else ``<data_root>/meta/classes.txt`` (one per line), else the sorted wnid folders of ``<data_root>/train`` (the
    standard label order); without any of them they are ``'0'`` ... ``'999'``, which keeps labels checked to
    0..999.  With class folders, a class that has no folder in the split (e.g. a reduced val set) has no samples.

    Example config::

        dataset = dict(type='ImageNet', data_root='data/imagenet', split='val',
                       pipeline=[dict(type='LoadImageFromFile'),
                                 dict(type='EfficientNetCenterCrop', crop_size=224),
                                 dict(type='PackInputs')])

    Args:
        data_root: ImageNet root folder.
        split: ``'train'``, ``'val'`` or ``'test'``; ``''`` to give ``data_prefix`` / ``ann_file`` yourself.
        **kwargs: see :class:`CustomDataset`.
    """

    require_all_class_folders = False

    def __init__(self, data_root: str = '', split: str = '', data_prefix='', ann_file: str = '', **kwargs) -> None:
        if split not in ('', 'train', 'val', 'test'):
            raise ValueError(f"ImageNet: split must be 'train', 'val' or 'test', got {split!r}")
        if data_root and not os.path.isdir(data_root):
            raise FileNotFoundError(f'ImageNet: data_root {data_root!r} is not a directory (absolute: '
                                    f'{os.path.abspath(data_root)}); expected train/<wnid>/*.JPEG and val/')
        self.split = split
        if split:
            data_prefix = data_prefix or split
            default_ann = os.path.join('meta', f'{split}.txt')
            if not ann_file and os.path.isfile(os.path.join(data_root, default_ann)):
                ann_file = default_ann
        super().__init__(data_root=data_root, data_prefix=data_prefix, ann_file=ann_file, **kwargs)

    def load_data_list(self, classes: Optional[tuple]) -> List[dict]:
        if classes is None:
            classes = self._default_classes()
        return super().load_data_list(classes)

    def _default_classes(self) -> Optional[tuple]:
        names_file = os.path.join(self.data_root, 'meta', 'classes.txt')
        if os.path.isfile(names_file):
            return read_classes(names_file)
        train_dir = os.path.join(self.data_root, 'train')
        if os.path.isdir(train_dir):
            wnids = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)))
            if wnids:
                return tuple(wnids)
        if self.ann_file:
            return tuple(str(i) for i in range(NUM_IMAGENET_CLASSES))
        return None  # class folders of data_prefix decide
