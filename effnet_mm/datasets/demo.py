"""The demo dataset as a registered dataset that generates itself on first use."""
from __future__ import annotations

import warnings

from effnet_mm.registry import DATASETS

from .custom import CustomDataset
from .demo_generator import DEMO_CLASSES, DEMO_VERSION, make_demo_dataset


@DATASETS.register_module()
class DemoDataset(CustomDataset):
    """The embedded 10-class shapes dataset (72x72 PNG, 300 train / 50 val images per class).

    If ``data_root`` does not exist, the dataset is generated there first (a few seconds, deterministic, atomic:
    see :func:`~effnet_mm.datasets.demo_generator.make_demo_dataset`).  ``tools/make_demo_dataset.py`` writes the
    same files ahead of time.

    Example config::

        train_dataloader = dict(batch_size=32, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=True),
                                dataset=dict(type='DemoDataset', data_root='data/effnet_demo', split='train',
                                             pipeline=[dict(type='LoadImageFromFile'),
                                                       dict(type='EfficientNetRandomCrop', scale=64),
                                                       dict(type='PackInputs')]))

    Args:
        data_root: dataset folder (relative paths are relative to the working directory, as in mmpretrain).
        split: ``'train'`` or ``'val'``.
        seed: generation seed, used only when the folder has to be generated.
        **kwargs: ``pipeline``, ``skip_corrupt`` and the rest of :class:`CustomDataset` (``ann_file`` and
            ``data_prefix`` are fixed by ``split``).
    """

    METAINFO = {'classes': DEMO_CLASSES}

    def __init__(self, data_root: str = 'data/effnet_demo', split: str = 'train', seed: int = 0, **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"DemoDataset: split must be 'train' or 'val', got {split!r}")
        for key in ('ann_file', 'data_prefix', 'classes'):
            if key in kwargs:
                raise ValueError(f'DemoDataset: {key!r} is fixed by the demo layout; use CustomDataset to change it')
        meta = make_demo_dataset(data_root, seed=seed)
        if meta.get('version') != DEMO_VERSION:
            warnings.warn(f'DemoDataset: {data_root} was made by demo generator version {meta.get("version")}, '
                          f'the current one is {DEMO_VERSION}; delete the folder to regenerate it', stacklevel=2)
        self.split = split
        super().__init__(data_root=data_root, data_prefix=split, classes=DEMO_CLASSES, **kwargs)
