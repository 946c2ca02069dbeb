"""The per-sample random generator every random transform draws from."""
from __future__ import annotations

import numpy as np


def get_rng(results: dict) -> np.random.Generator:
    """Return ``results['rng']``; without one (e.g. interactive use) a fresh, unseeded generator.

    Loaders put a generator seeded from ``(seed, epoch, sample_idx)`` there, so augmentation does not depend on the
    worker that runs it (see the Transforms contract in docs/design.md).
    """
    rng = results.get('rng')
    if rng is None:
        rng = np.random.default_rng()
        results['rng'] = rng
    return rng


def sample_rng(seed: int, epoch: int, sample_idx: int) -> np.random.Generator:
    """The generator of one sample in one epoch: a pure function of its three arguments."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(sample_idx)])
