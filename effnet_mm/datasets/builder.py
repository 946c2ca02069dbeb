"""``build_dataloader``: a MindSpore ``GeneratorDataset`` pipeline over a registered dataset.

MindSpore is imported when a loader is iterated, not when this module is imported, so datasets and transforms stay
usable (and testable) without it.
"""
from __future__ import annotations

import copy
import math
from typing import Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from effnet_mm.registry import DATASETS

from .base_dataset import SKIPPABLE_ERRORS, BaseDataset
from .sampling import epoch_indices
from .transforms import CorruptImageError
from .transforms._rng import sample_rng

_COLUMNS = ['inputs', 'gt_label', 'sample_idx']
#: Columns the pipeline carries besides the batch: the epoch position of the row, how many samples were skipped
#: before it (training refetches), and whether the row holds a sample at all (failed rows are filtered out).
_POSITION, _NUM_SKIPPED, _VALID = 'position', 'num_skipped', 'valid'
#: torch DataLoader options that mmpretrain configs carry and that have no meaning here.
_IGNORED_KEYS = {'persistent_workers', 'pin_memory', 'collate_fn', 'prefetch_factor'}
_KNOWN_KEYS = {'batch_size', 'num_workers', 'sampler', 'dataset', 'drop_last', 'multiprocessing'} | _IGNORED_KEYS


def build_dataset(cfg: Union[dict, BaseDataset]) -> BaseDataset:
    """Build a dataset from a ``dict(type=...)`` config (an already built dataset is returned as it is)."""
    if isinstance(cfg, BaseDataset):
        return cfg
    return DATASETS.build(copy.deepcopy(dict(cfg)))


def default_metainfo(dataset_type: str) -> dict:
    """The ``METAINFO`` defaults of a registered dataset type, without building it: ``default_metainfo('ImageNet')``
    gives the 1000 ImageNet class names, ``'DemoDataset'`` the demo's; ``{}`` for unknown types."""
    dataset_cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
    return dict(getattr(dataset_cls, 'METAINFO', None) or {})


class SkippedSample(NamedTuple):
    """A sample a ``skip_corrupt`` loader left out, and why (one line naming the file and the problem)."""

    sample_idx: int
    img_path: str
    reason: str


class _DroppedSample(Exception):
    """A transform returned None for the sample (mmengine's way of filtering one out)."""


class _Fetch(NamedTuple):
    """What the loader got for one position of the epoch."""

    packed: Optional[dict]  # the packed sample, None when the position failed
    skipped: List[Tuple[int, BaseException]]  # samples skipped on the way, with their error
    error: Optional[BaseException]  # why the position failed, if it did and this is not a skip


def refetch_rng(seed: int, epoch: int, sample_idx: int, attempt: int) -> np.random.Generator:
    """The generator that picks (and then augments) replacement number ``attempt`` for a failed training sample."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(sample_idx), int(attempt), 1])


class _EpochSource:
    """Random-access source of one epoch of one shard: position ``i`` -> packed sample ``indices[i]``.

    Every sample gets its own generator seeded from ``(seed, epoch, sample_idx)``, so its augmentation does not
    depend on the worker, the number of workers, or what ran before (resume gives the same data).  A sample that
    fails never raises inside MindSpore (that would bury the error in a C++ traceback): its row is marked invalid
    and dropped before batching, and the loader replays :meth:`fetch` in the main process to raise or report it.
    With ``skip_corrupt`` a training source (``refetch``) replaces a broken sample by one drawn from
    :func:`refetch_rng`, so every position still yields a sample and the epoch keeps its announced length.
    """

    def __init__(self, dataset: BaseDataset, indices: np.ndarray, seed: int, epoch: int, refetch: bool,
                 start: int = 0) -> None:
        self.dataset = dataset
        self.indices = indices
        self.seed = seed
        self.epoch = epoch
        self.refetch = refetch
        self.start = start  # the first epoch position this source serves (a run resumed mid-epoch)

    def __len__(self) -> int:
        return len(self.indices) - self.start

    def fetch(self, position: int) -> _Fetch:
        """Run the pipeline for ``position`` (a pure function of the epoch, the seed and the files)."""
        requested = int(self.indices[position])
        idx, rng = requested, sample_rng(self.seed, self.epoch, requested)
        skipped: List[Tuple[int, BaseException]] = []
        attempts = 1 + (self.dataset.max_refetch if self.refetch else 0)
        for attempt in range(1, attempts + 1):
            try:
                packed = self.dataset.prepare_data(idx, rng)
                if packed is None:
                    raise _DroppedSample('a transform of the pipeline returned None')
                return _Fetch(packed, skipped, None)
            except Exception as err:  # noqa: BLE001 - reported by the main process, see the class docstring
                if not (self.dataset.skip_corrupt and isinstance(err, SKIPPABLE_ERRORS + (_DroppedSample, ))):
                    return _Fetch(None, skipped, err)
                skipped.append((idx, err))
            rng = refetch_rng(self.seed, self.epoch, requested, attempt)
            idx = int(rng.integers(len(self.dataset)))
        if not self.refetch:
            return _Fetch(None, skipped, None)
        return _Fetch(None, skipped, RuntimeError(
            f'{type(self.dataset).__name__}: sample {requested} and its {self.dataset.max_refetch} replacements all '
            f'failed to load (skip_corrupt=True): is most of the data broken? First: {skipped[0][1]}'))

    def __getitem__(self, row: int) -> tuple:
        position = self.start + row
        result = self.fetch(position)
        packed = result.packed or {'inputs': np.zeros((1, 1, 1), np.uint8), 'gt_label': -1, 'sample_idx': -1}
        # GeneratorDataset needs an ndarray per column (a Python int fails in numpy's copy=False conversion).
        return (packed['inputs'], np.array(packed['gt_label'], np.int32), np.array(packed['sample_idx'], np.int64),
                np.array(position, np.int64), np.array(len(result.skipped), np.int32),
                np.array(result.packed is not None))


def _reason(err: BaseException) -> str:
    """What is wrong with a skipped sample, without its file name (:class:`SkippedSample` has that)."""
    if isinstance(err, CorruptImageError):
        return err.reason
    if isinstance(err, FileNotFoundError):
        return 'file not found'
    return f'{type(err).__name__}: {err}'


def _is_valid(valid: np.ndarray) -> bool:
    return bool(valid)


class DataLoader:
    """Batches of one shard, epoch by epoch.  Build it with :func:`build_dataloader`.

    Iterating yields ``{'inputs': uint8 (N, 3, H, W), 'gt_label': int32 (N,), 'sample_idx': int64 (N,)}``.  The
    order is a function of ``(seed, epoch)``: call :meth:`set_epoch` before each epoch.  Each iteration builds a
    fresh ``GeneratorDataset`` pipeline for the current epoch, so nothing of a previous epoch leaks into it.

    A sample that fails to load stops the iteration with its own exception, raised in the calling thread (e.g.
    ``CorruptImageError: cannot decode image data/x.jpg: truncated JPEG: ...``).  With the dataset's
    ``skip_corrupt=True``, missing or undecodable images are skipped instead and listed in :attr:`skipped`:
    training loaders (``shuffle=True``) put a replacement sample in their place, so every epoch still has
    ``len(loader)`` full batches; evaluation loaders leave them out (never invent samples), so an epoch then has
    ``num_samples - len(skipped)`` samples.

    Example (what a runner logs after each epoch)::

        for batch in loader: ...
        if loader.skipped:
            logger.warning(loader.skipped_message())

    Attributes:
        dataset: the dataset (``dataset.metainfo['classes']``).
        batch_size, num_workers, shuffle, drop_last, seed, shard_id, num_shards, round_up, multiprocessing: the
            loader settings.
        epoch: the current epoch.
        skipped: :class:`SkippedSample` ``(sample_idx, img_path, reason)`` of the epoch being (or last) iterated,
            in order; reset when an iteration starts.
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
        self.skipped: List[SkippedSample] = []

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order (and augmentation) the next iteration produces."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This shard's sample indices of the current epoch, in order."""
        return epoch_indices(len(self.dataset), shuffle=self.shuffle, seed=self.seed, epoch=self.epoch,
                             shard_id=self.shard_id, num_shards=self.num_shards, round_up=self.round_up)

    @property
    def num_samples(self) -> int:
        """Samples this shard reads per epoch (``len(indices())``): with ``skip_corrupt`` an evaluation epoch yields
        ``num_samples - len(skipped)`` of them."""
        return len(self.indices())

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def skipped_message(self, limit: int = 5) -> str:
        """One line about :attr:`skipped` (``''`` when nothing was skipped), naming the first ``limit`` files."""
        if not self.skipped:
            return ''
        action = 'replaced by other samples' if self.shuffle else 'left out'
        shown = '; '.join(f'{s.img_path}: {s.reason}' for s in self.skipped[:limit])
        more = f'; ... ({len(self.skipped) - limit} more)' if len(self.skipped) > limit else ''
        return (f'epoch {self.epoch}: skipped {len(self.skipped)} of {self.num_samples} samples whose image could not '
                f'be loaded ({action}, skip_corrupt=True): {shown}{more}')

    def _source(self, start: int = 0) -> _EpochSource:
        return _EpochSource(self.dataset, self.indices(), self.seed, self.epoch, refetch=self.shuffle, start=start)

    def _pipeline(self, source: _EpochSource):
        import mindspore.dataset as ds

        # shuffle=False: the order is ours (epoch_indices), not MindSpore's global seed.
        pipe = ds.GeneratorDataset(source, column_names=_COLUMNS + [_POSITION, _NUM_SKIPPED, _VALID], shuffle=False,
                                   num_parallel_workers=max(1, self.num_workers),
                                   python_multiprocessing=self.multiprocessing and self.num_workers > 0)
        # Failed rows go before batching, so batches stay full and uniformly shaped; __iter__ sees the gap.
        pipe = pipe.filter(predicate=_is_valid, input_columns=[_VALID])
        pipe = pipe.project(_COLUMNS + [_POSITION, _NUM_SKIPPED])
        return pipe.batch(self.batch_size, drop_remainder=self.drop_last)

    def _record(self, source: _EpochSource, position: int, missing: bool) -> None:
        """Replay ``position`` here, in the main process: raise its error, or record the samples it skipped.

        ``missing``: the position delivered no row (it failed in the worker), rather than a row after skips.
        """
        result = source.fetch(position)
        if result.error is not None:
            raise result.error
        skipped = list(result.skipped)
        if missing and result.packed is not None:  # failed in the worker, loads now (e.g. a file being copied)
            idx = int(source.indices[position])
            err = OSError(f'sample {idx} failed to load in a loader worker but loads on a retry')
            if not self.dataset.skip_corrupt:
                raise err
            skipped.append((idx, err))
        for idx, err in skipped:
            self.skipped.append(SkippedSample(idx, str(self.dataset.data_list[idx].get('img_path', '')),
                                              _reason(err)))

    def __iter__(self) -> Iterator[dict]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int) -> Iterator[dict]:
        """The batches of the current epoch from batch ``start_batch`` on (a run resumed mid-epoch), exactly the
        ones a full iteration would yield from there; :attr:`skipped` then lists the skips from there on."""
        if not 0 <= start_batch <= len(self):
            raise ValueError(f'start_batch must be in [0, {len(self)}], got {start_batch}')
        return self._iterate(start_batch * self.batch_size)

    def _iterate(self, start: int) -> Iterator[dict]:
        self.skipped = []
        if len(self) * self.batch_size <= start:
            return
        source = self._source(start)
        iterator = self._pipeline(source).create_dict_iterator(num_epochs=1, output_numpy=True)
        expected = start  # the next epoch position not accounted for
        try:
            for batch in iterator:
                for position, num_skipped in zip(batch[_POSITION].tolist(), batch[_NUM_SKIPPED].tolist()):
                    for missing in range(expected, position):
                        self._record(source, missing, missing=True)
                    if num_skipped:
                        self._record(source, position, missing=False)
                    expected = position + 1
                yield {k: batch[k] for k in _COLUMNS}
            # Positions after the last batch: failed ones, or the remainder that drop_last drops (not loaded).
            end = len(self) * self.batch_size if self.drop_last else len(source.indices)
            for missing in range(expected, end):
                self._record(source, missing, missing=True)
        finally:
            iterator.stop()  # an error or a consumer that stops early must not leave the workers running

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
