"""``build_dataloader``: a MindSpore ``GeneratorDataset`` pipeline over a registered dataset.

MindSpore is imported when a loader is iterated, not when this module is imported, so datasets and transforms stay
usable (and testable) without it.
"""
from __future__ import annotations

import copy
import math
from typing import Iterator, Optional, Union

import numpy as np

from effnet_mm.registry import DATASETS

from .base_dataset import BaseDataset
from .sampling import epoch_indices
from .transforms._rng import sample_rng

_COLUMNS = ['inputs', 'gt_label', 'sample_idx']
#: torch DataLoader options that mmpretrain configs carry and that have no meaning here.
_IGNORED_KEYS = {'persistent_workers', 'pin_memory', 'collate_fn', 'prefetch_factor'}
_KNOWN_KEYS = {'batch_size', 'num_workers', 'sampler', 'dataset', 'drop_last', 'multiprocessing'} | _IGNORED_KEYS


def build_dataset(cfg: Union[dict, BaseDataset]) -> BaseDataset:
    """Build a dataset from a ``dict(type=...)`` config (an already built dataset is returned as it is)."""
    if isinstance(cfg, BaseDataset):
        return cfg
    return DATASETS.build(copy.deepcopy(dict(cfg)))


class _EpochSource:
    """Random-access source of one epoch of one shard: position ``i`` -> packed sample ``indices[i]``.

    Every sample gets its own generator seeded from ``(seed, epoch, sample_idx)``, so its augmentation does not
    depend on the worker, the number of workers, or what ran before (resume gives the same data).
    """

    def __init__(self, dataset: BaseDataset, indices: np.ndarray, seed: int, epoch: int, with_valid: bool) -> None:
        self.dataset = dataset
        self.indices = indices
        self.seed = seed
        self.epoch = epoch
        self.with_valid = with_valid

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple:
        idx = int(self.indices[i])
        packed = self.dataset.prepare_data(idx, sample_rng(self.seed, self.epoch, idx))
        # GeneratorDataset needs an ndarray per column (a Python int fails in numpy's copy=False conversion).
        if packed is None:
            row = (np.zeros((1, 1, 1), np.uint8), np.array(-1, np.int32), np.array(idx, np.int64))
            return row + (np.array(False), )
        row = (packed['inputs'], np.array(packed['gt_label'], np.int32), np.array(packed['sample_idx'], np.int64))
        return row + (np.array(True), ) if self.with_valid else row


def _is_valid(valid: np.ndarray) -> bool:
    return bool(valid)


class DataLoader:
    """Batches of one shard, epoch by epoch.  Build it with :func:`build_dataloader`.

    Iterating yields ``{'inputs': uint8 (N, 3, H, W), 'gt_label': int32 (N,), 'sample_idx': int64 (N,)}``.  The
    order is a function of ``(seed, epoch)``: call :meth:`set_epoch` before each epoch.  Each iteration builds a
    fresh ``GeneratorDataset`` pipeline for the current epoch, so nothing of a previous epoch leaks into it.

    Attributes:
        dataset: the dataset (``dataset.metainfo['classes']``).
        batch_size, num_workers, shuffle, drop_last, seed, shard_id, num_shards, round_up, multiprocessing: the
            loader settings.
        epoch: the current epoch.
    """

    def __init__(self, dataset: BaseDataset, *, batch_size: int, num_workers: int = 0, shuffle: bool = False,
                 drop_last: Optional[bool] = None, seed: int = 0, shard_id: int = 0, num_shards: int = 1,
                 round_up: bool = True, multiprocessing: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if num_workers < 0:
            raise ValueError(f'num_workers must be >= 0, got {num_workers}')
        if drop_last is None:
            drop_last = shuffle
        if drop_last and not shuffle:
            raise ValueError('drop_last=True with shuffle=False: evaluation loaders never drop samples '
                             '(set shuffle=True for training, or drop_last=False)')
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise ValueError(f'need 0 <= shard_id < num_shards, got shard_id={shard_id}, num_shards={num_shards}')
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.shard_id = int(shard_id)
        self.num_shards = int(num_shards)
        self.round_up = bool(round_up)
        self.multiprocessing = bool(multiprocessing)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order (and augmentation) the next iteration produces."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This shard's sample indices of the current epoch, in order."""
        return epoch_indices(len(self.dataset), shuffle=self.shuffle, seed=self.seed, epoch=self.epoch,
                             shard_id=self.shard_id, num_shards=self.num_shards, round_up=self.round_up)

    def __len__(self) -> int:
        n = len(self.indices())
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _pipeline(self, start: int = 0):
        import mindspore.dataset as ds

        with_valid = self.dataset.skip_corrupt
        source = _EpochSource(self.dataset, self.indices()[start:], self.seed, self.epoch, with_valid)
        columns = _COLUMNS + ['valid'] if with_valid else _COLUMNS
        # shuffle=False: the order is ours (epoch_indices), not MindSpore's global seed.
        pipe = ds.GeneratorDataset(source, column_names=columns, shuffle=False,
                                   num_parallel_workers=max(1, self.num_workers),
                                   python_multiprocessing=self.multiprocessing and self.num_workers > 0)
        if with_valid:
            # Corrupt samples are dropped before batching, so batches stay full and uniformly shaped.
            pipe = pipe.filter(predicate=_is_valid, input_columns=['valid'])
            pipe = pipe.project(_COLUMNS)
        return pipe.batch(self.batch_size, drop_remainder=self.drop_last)

    def __iter__(self) -> Iterator[dict]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int) -> Iterator[dict]:
        """The batches of the current epoch from batch ``start_batch`` on (a run resumed mid-epoch), exactly the
        ones a full iteration would yield from there."""
        if not 0 <= start_batch <= len(self):
            raise ValueError(f'start_batch must be in [0, {len(self)}], got {start_batch}')
        if len(self) == start_batch:
            return
        for batch in self._pipeline(start_batch * self.batch_size).create_dict_iterator(num_epochs=1,
                                                                                        output_numpy=True):
            yield {k: batch[k] for k in _COLUMNS}

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(dataset={type(self.dataset).__name__}[{len(self.dataset)}], '
                f'batch_size={self.batch_size}, num_workers={self.num_workers}, shuffle={self.shuffle}, '
                f'drop_last={self.drop_last}, shard={self.shard_id}/{self.num_shards}, epoch={self.epoch})')


def build_dataloader(cfg: dict, *, seed: int = 0, shard_id: int = 0, num_shards: int = 1) -> DataLoader:
    """Build a loader from a ``train_dataloader`` / ``val_dataloader`` style config.

    Example::

        loader = build_dataloader(dict(
            batch_size=32, num_workers=2,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='DemoDataset', split='train', pipeline=[
                dict(type='LoadImageFromFile'), dict(type='EfficientNetRandomCrop', scale=64),
                dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')])),
            seed=0, shard_id=rank, num_shards=world_size)
        for epoch in range(epochs):
            loader.set_epoch(epoch)
            for batch in loader: ...

    Args:
        cfg: ``batch_size``, ``num_workers`` (parallel pipeline workers, threads unless ``multiprocessing=True``),
            ``sampler=dict(type='DefaultSampler', shuffle=..., seed=None, round_up=True)``, ``drop_last`` (default:
            ``shuffle``; evaluation loaders never drop), ``dataset`` (config or built dataset).  torch-only keys
            (``persistent_workers``, ``pin_memory``, ``collate_fn``, ``prefetch_factor``) are ignored.
        seed: seed of the epoch order and of the augmentation (``sampler.seed`` overrides it).
        shard_id: this shard (the rank in data-parallel training).
        num_shards: number of shards (the world size).
    """
    cfg = dict(cfg)
    unknown = set(cfg) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f'build_dataloader: unknown keys {sorted(unknown)}; supported: {sorted(_KNOWN_KEYS)}')
    for key in ('batch_size', 'dataset'):
        if key not in cfg:
            raise ValueError(f'build_dataloader: the config needs {key!r}')
    sampler = dict(cfg.get('sampler') or {'type': 'DefaultSampler', 'shuffle': False})
    sampler_type = sampler.pop('type', 'DefaultSampler')
    if sampler_type != 'DefaultSampler':
        raise ValueError(f"build_dataloader: only sampler type 'DefaultSampler' is supported, got {sampler_type!r}")
    unknown = set(sampler) - {'shuffle', 'seed', 'round_up'}
    if unknown:
        raise ValueError(f'build_dataloader: unknown DefaultSampler keys {sorted(unknown)}')
    sampler_seed = sampler.get('seed')
    return DataLoader(build_dataset(cfg['dataset']),
                      batch_size=cfg['batch_size'],
                      num_workers=cfg.get('num_workers', 0),
                      shuffle=bool(sampler.get('shuffle', False)),
                      drop_last=cfg.get('drop_last'),
                      seed=seed if sampler_seed is None else sampler_seed,
                      shard_id=shard_id,
                      num_shards=num_shards,
                      round_up=sampler.get('round_up', True),
                      multiprocessing=cfg.get('multiprocessing', False))
