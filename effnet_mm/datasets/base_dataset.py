"""The random-access dataset every loader reads: a list of samples plus a pipeline."""
from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, List, Optional, Sequence, Union

import numpy as np

from .transforms import Compose, CorruptImageError

#: Errors of one sample's data (not of the code) that ``skip_corrupt=True`` skips.
SKIPPABLE_ERRORS = (CorruptImageError, FileNotFoundError)


def expand_path(root: str, path: str) -> str:
    """``path`` joined to ``root`` unless it is absolute (mmengine's rule for ``data_prefix`` / ``ann_file``)."""
    path = os.path.expanduser(path)
    return path if not root or os.path.isabs(path) else os.path.join(root, path)


def read_classes(classes: Union[str, Sequence[str], None]) -> Optional[tuple]:
    """Class names from a list, or from a text file with one name per line."""
    if classes is None:
        return None
    if isinstance(classes, str):
        if not os.path.isfile(classes):
            raise FileNotFoundError(f'classes file not found: {classes} (expected one class name per line)')
        with open(classes, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [str(c) for c in classes]
    if not names:
        raise ValueError(f'classes is empty: {classes!r}')
    if len(set(names)) != len(names):
        raise ValueError(f'classes has duplicates: {names}')
    return tuple(names)


class BaseDataset(ABC):
    """Samples ``{'img_path': str, 'gt_label': int}`` and the pipeline that turns one into a packed sample.

    Subclasses implement :meth:`load_data_list`.  ``prepare_data(idx, rng)`` runs the pipeline on a copy of sample
    ``idx`` with ``sample_idx`` and the random generator ``rng`` (the loader seeds it from ``(seed, epoch, idx)``).
    ``METAINFO`` holds a dataset type's defaults (``ImageNet``: the 1000 class names), readable from a config's
    ``type`` without building the dataset.

    Args:
        data_root: root folder; relative ``ann_file`` / ``data_prefix`` are joined to it.
        ann_file: annotation file (format defined by the subclass), ``''`` for none.
        data_prefix: image folder below ``data_root`` (a str, or ``dict(img_path=...)`` as in mmpretrain).
        classes: class names (list, or a file with one per line); subclasses may infer them.
        metainfo: extra meta information; ``metainfo['classes']`` may give the classes too.
        pipeline: transform configs or callables.
        skip_corrupt: the loader skips samples whose image is missing or cannot be decoded instead of stopping, and
            reports them (``loader.skipped``); training loaders fetch another sample in their place.
        max_refetch: how many replacement samples a training loader tries for one position before giving up.
    """

    #: Default meta information of the dataset type (e.g. ``{'classes': (...)}``).
    METAINFO: ClassVar[dict] = {}

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 data_prefix: Union[str, dict] = '',
                 classes: Union[str, Sequence[str], None] = None,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 skip_corrupt: bool = False,
                 max_refetch: int = 1000) -> None:
        if isinstance(data_prefix, dict):
            data_prefix = data_prefix.get('img_path', '')
        self.data_root = os.path.expanduser(data_root or '')
        if self.data_root and not os.path.isdir(self.data_root):
            raise FileNotFoundError(f'{type(self).__name__}: data_root {self.data_root!r} is not a directory '
                                    f'(absolute: {os.path.abspath(self.data_root)})')
        self.ann_file = expand_path(self.data_root, ann_file) if ann_file else ''
        self.img_prefix = expand_path(self.data_root, data_prefix or '')
        self.metainfo = dict(metainfo or {})
        if classes is None:
            classes = self.metainfo.get('classes')
        self.skip_corrupt = bool(skip_corrupt)
        if max_refetch < 0:
            raise ValueError(f'{type(self).__name__}: max_refetch must be >= 0, got {max_refetch}')
        self.max_refetch = int(max_refetch)
        self.pipeline = Compose(pipeline)
        self.data_list: List[dict] = self.load_data_list(read_classes(classes))
        if not self.data_list:
            raise ValueError(f'{type(self).__name__}: no samples found (ann_file={self.ann_file!r}, '
                             f'data_prefix={self.img_prefix!r})')

    @abstractmethod
    def load_data_list(self, classes: Optional[tuple]) -> List[dict]:
        """Return the samples and set ``self.metainfo['classes']``."""

    def __len__(self) -> int:
        return len(self.data_list)

    def get_data_info(self, idx: int) -> dict:
        """A copy of sample ``idx`` with its ``sample_idx``."""
        info = copy.deepcopy(self.data_list[idx])
        info['sample_idx'] = int(idx)
        return info

    def get_gt_labels(self) -> np.ndarray:
        return np.array([d['gt_label'] for d in self.data_list], dtype=np.int64)

    def prepare_data(self, idx: int, rng: Optional[np.random.Generator] = None) -> Optional[dict]:
        """Run the pipeline on sample ``idx`` (None if a transform dropped it).

        Raises:
            FileNotFoundError / CorruptImageError: the sample's image is missing or broken (whatever
                ``skip_corrupt`` says: skipping is the loader's job, which also counts and reports the skips).
        """
        results = self.get_data_info(idx)
        results['rng'] = rng if rng is not None else np.random.default_rng()
        return self.pipeline(results)

    def __getitem__(self, idx: int) -> Optional[dict]:
        return self.prepare_data(idx)

    def __repr__(self) -> str:
        classes = self.metainfo.get('classes')
        n_cls = 'unknown' if classes is None else len(classes)
        return (f'{type(self).__name__}(num_samples={len(self)}, num_classes={n_cls}, '
                f'data_root={self.data_root!r}, ann_file={self.ann_file!r}, data_prefix={self.img_prefix!r})')
