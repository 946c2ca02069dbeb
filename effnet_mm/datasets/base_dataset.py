"""The random-access dataset every loader reads: a list of samples plus a pipeline."""
from __future__ import annotations

import copy
import os
import warnings
from abc import ABC, abstractmethod
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from .transforms import Compose, CorruptImageError


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

    Args:
        data_root: root folder; relative ``ann_file`` / ``data_prefix`` are joined to it.
        ann_file: annotation file (format defined by the subclass), ``''`` for none.
        data_prefix: image folder below ``data_root`` (a str, or ``dict(img_path=...)`` as in mmpretrain).
        classes: class names (list, or a file with one per line); subclasses may infer them.
        metainfo: extra meta information; ``metainfo['classes']`` may give the classes too.
        pipeline: transform configs or callables.
        skip_corrupt: when an image cannot be decoded, warn and drop the sample instead of raising.
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 data_prefix: Union[str, dict] = '',
                 classes: Union[str, Sequence[str], None] = None,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 skip_corrupt: bool = False) -> None:
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
        """Run the pipeline on sample ``idx``; None when the image is corrupt and ``skip_corrupt`` is set."""
        results = self.get_data_info(idx)
        results['rng'] = rng if rng is not None else np.random.default_rng()
        try:
            return self.pipeline(results)
        except (CorruptImageError, FileNotFoundError) as err:
            if not self.skip_corrupt:
                raise
            warnings.warn(f'{type(self).__name__}: skipping sample {idx}: {err}', stacklevel=2)
            return None

    def __getitem__(self, idx: int) -> Optional[dict]:
        return self.prepare_data(idx)

    def __repr__(self) -> str:
        classes = self.metainfo.get('classes')
        n_cls = 'unknown' if classes is None else len(classes)
        return (f'{type(self).__name__}(num_samples={len(self)}, num_classes={n_cls}, '
                f'data_root={self.data_root!r}, ann_file={self.ann_file!r}, data_prefix={self.img_prefix!r})')
