"""Random state of training as data: seeds, and the per-sample masks of drop path and dropout.

The compiled training step draws nothing itself.  The drop-path and dropout masks of a sample are drawn on the host
from a generator seeded with ``(seed, epoch, sample_idx)`` and passed to the step as inputs, like the augmentation of
that sample (which uses the same key with another stream, see ``effnet_mm.datasets.transforms._rng``).  So:

* the graph is compiled once per run, whatever the number of epochs, validations and resumes;
* a resumed run (from any iteration) draws exactly the masks of the uninterrupted run — there is no random state to
  save;
* a data-parallel run draws, for every sample, the masks a single process with the same global batch draws.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence, Tuple

import numpy as np

#: Separates the mask stream of a sample from its augmentation stream (which is seeded with three numbers).
_MASK_STREAM = 0x6D61736B
#: The stream of the batch-mixing draws (Mixup/CutMix) of an iteration.
_MIX_STREAM = 0x6D697831


def mix_rng(seed: int, epoch: int, iteration: int, rank: int) -> np.random.Generator:
    """The generator of the batch augments (Mixup/CutMix) of global ``iteration`` on ``rank``: a pure function of
    its arguments, so a resumed run mixes exactly like the uninterrupted one."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(iteration), int(rank), _MIX_STREAM])


def seed_everything(seed: int) -> None:
    """Seed MindSpore (parameter initialisation), numpy's and Python's global generators."""
    import mindspore as ms

    ms.set_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


class StepMasks:
    """Draws the per-sample drop-path and dropout factors of training steps.

    Factors are 0 for a dropped sample/unit and ``1 / (1 - p)`` for a kept one, so the layers only multiply.

    Args:
        drop_path_probs: drop probability of each block with drop path, in the row order the backbone expects.
        dropout_prob: the head's dropout probability (0: none).
        feature_dim: width of the feature the head drops out.
        seed: the run's seed.
    """

    def __init__(self, drop_path_probs: Sequence[float], dropout_prob: float, feature_dim: int, seed: int) -> None:
        self.drop_path_probs = np.asarray(drop_path_probs, np.float64)
        self.dropout_prob = float(dropout_prob)
        self.feature_dim = int(feature_dim)
        self.seed = int(seed)

    @classmethod
    def for_model(cls, model: object, seed: int) -> StepMasks:
        """The masks ``model`` (an ``ImageClassifier``) consumes: its backbone's drop path and its head's dropout."""
        probs = tuple(getattr(getattr(model, 'backbone', None), 'drop_path_probs', ()))
        head = getattr(model, 'head', None)
        return cls(probs, getattr(head, 'dropout_prob', 0.0), getattr(head, 'in_channels', 0), seed)

    @property
    def has_drop_path(self) -> bool:
        return self.drop_path_probs.size > 0

    @property
    def has_dropout(self) -> bool:
        return self.dropout_prob > 0

    def draw(self, epoch: int, sample_idx: Sequence[int]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """``(drop_masks (num_blocks, N), dropout_mask (N, feature_dim))`` float32 for the samples of a batch;
        None for a kind the model does not have."""
        count = len(sample_idx)
        drop = np.empty((self.drop_path_probs.size, count), np.float32) if self.has_drop_path else None
        dropout = np.empty((count, self.feature_dim), np.float32) if self.has_dropout else None
        for column, index in enumerate(np.asarray(sample_idx, np.int64).reshape(-1)):
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(epoch), int(index), _MASK_STREAM])
            if drop is not None:
                keep = rng.random(self.drop_path_probs.size) >= self.drop_path_probs
                drop[:, column] = keep / (1.0 - self.drop_path_probs)
            if dropout is not None:
                keep = rng.random(self.feature_dim) >= self.dropout_prob
                dropout[column] = keep / (1.0 - self.dropout_prob)
        return drop, dropout
