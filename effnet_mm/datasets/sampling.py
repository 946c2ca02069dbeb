"""Which samples a shard reads in an epoch, as a pure function of ``(seed, epoch)``."""
from __future__ import annotations

import numpy as np


def epoch_indices(num_samples: int, *, shuffle: bool, seed: int, epoch: int, shard_id: int = 0,
                  num_shards: int = 1, round_up: bool = True) -> np.ndarray:
    """The sample indices shard ``shard_id`` reads in ``epoch``, in order.

    Training (``shuffle=True``): one permutation of all samples drawn from ``(seed, epoch)``, padded by repeating its
    head so every shard gets the same count (``round_up``, as mmengine's ``DefaultSampler``), then dealt round-robin.
    Evaluation (``shuffle=False``): ``0..n-1`` dealt round-robin with no padding, so over all shards every sample
    comes exactly once (shards may differ in length by one).
    """
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f'need 0 <= shard_id < num_shards, got shard_id={shard_id}, num_shards={num_shards}')
    if not shuffle:
        return np.arange(shard_id, num_samples, num_shards, dtype=np.int64)
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(num_samples).astype(np.int64)
    if round_up and num_samples % num_shards:
        total = -(-num_samples // num_shards) * num_shards
        order = np.resize(order, total)  # np.resize repeats the array from its start
    return order[shard_id::num_shards]
