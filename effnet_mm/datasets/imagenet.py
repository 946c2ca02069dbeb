"""ImageNet-1k in its usual on-disk layouts."""
from __future__ import annotations

import os
from typing import List, Optional

from effnet_mm.registry import DATASETS

from .base_dataset import read_classes
from .categories import IMAGENET_CATEGORIES, IMAGENET_WNIDS
from .custom import CustomDataset, class_folders, read_annotation_file, scan_class_folders


@DATASETS.register_module()
class ImageNet(CustomDataset):
    """ImageNet-1k: ``train/<wnid>/*.JPEG`` class folders, and ``val/`` with ``meta/val.txt`` or class folders.

    ``split`` picks the defaults as mmpretrain does: ``data_prefix=split`` and, when ``<data_root>/meta/<split>.txt``
    exists, that annotation file (lines ``ILSVRC2012_val_00000001.JPEG 65``).  Labels are the standard ones: class
    folders are WordNet ids and label ``i`` is ``IMAGENET_WNIDS[i]`` (the 1000 wnids in sorted order), whatever
    subset of the folders a split has; annotation labels must be in 0..999.  ``metainfo['classes']`` is
    ``IMAGENET_CATEGORIES`` (the class names of the released checkpoints, shipped in
    :mod:`effnet_mm.datasets.categories`) unless ``classes`` or ``<data_root>/meta/classes.txt`` gives others; then
    the class folders are named by those classes, as in :class:`CustomDataset`.

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

    METAINFO = {'classes': IMAGENET_CATEGORIES}
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
        names_file = os.path.join(self.data_root, 'meta', 'classes.txt')
        if classes is None and os.path.isfile(names_file):
            classes = read_classes(names_file)
        if classes is not None:
            return super().load_data_list(classes)
        self.metainfo['classes'] = IMAGENET_CATEGORIES
        if self.ann_file:
            return read_annotation_file(self.ann_file, self.img_prefix, len(IMAGENET_WNIDS), 'ImageNet')
        return self._scan_wnid_folders()

    def _scan_wnid_folders(self) -> List[dict]:
        if not os.path.isdir(self.img_prefix):
            ann = f'meta/{self.split or "<split>"}.txt'
            raise FileNotFoundError(f'ImageNet: image folder {self.img_prefix!r} not found '
                                    f'(expected {self.img_prefix}/<wnid>/<image>, or {ann})')
        known = set(IMAGENET_WNIDS)
        unknown = [d for d in class_folders(self.img_prefix) if d not in known]
        if unknown:
            raise ValueError(f'ImageNet: {len(unknown)} class folder(s) of {self.img_prefix!r} are not ImageNet-1k '
                             f'WordNet ids: {unknown[:5]} (expected names like n01440764); use CustomDataset for '
                             f'other class folders, or give classes=')
        _, samples = scan_class_folders(self.img_prefix, IMAGENET_WNIDS, self.extensions, 'ImageNet',
                                        require_all=False)
        return samples
