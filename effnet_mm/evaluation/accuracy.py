"""Top-k accuracy in percent, mmpretrain's ``Accuracy`` metric (keys ``accuracy/top1``, ``accuracy/top5``)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from effnet_mm.registry import METRICS


@METRICS.register_module()
class Accuracy:
    """Top-k classification accuracy (percent), counting every sample once.

    Samples are keyed by ``sample_idx``: a sample seen twice (e.g. padding of a sharded loader) is counted once, so
    the result equals the accuracy over the distinct samples.  In distributed evaluation the per-rank counts are
    summed with :meth:`summary` / :meth:`from_summary` (the loaders never duplicate samples across ranks).

    Example config::

        val_evaluator = dict(type='Accuracy', topk=(1, 5))

    Args:
        topk: the k values; k larger than the number of classes is clipped to it (as mmpretrain does).
        prefix: key prefix of the results.
    """

    def __init__(self, topk: Union[int, Sequence[int]] = (1, ), prefix: str = 'accuracy') -> None:
        self.topk: Tuple[int, ...] = (topk, ) if isinstance(topk, int) else tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'Accuracy: topk must be positive integers, got {topk}')
        self.prefix = prefix
        self.reset()

    def reset(self) -> None:
        """Forget all processed samples."""
        self._correct: Dict[int, np.ndarray] = {}
        self._next_anonymous = -1

    def process(self, logits: np.ndarray, labels: np.ndarray, sample_idx: Optional[np.ndarray] = None) -> None:
        """Record a batch.

        Args:
            logits: ``(N, C)`` scores.
            labels: ``(N,)`` integer ground truth.
            sample_idx: ``(N,)`` dataset indices; without them every row counts as a new sample.
        """
        logits = np.asarray(logits, dtype=np.float32)
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f'Accuracy.process: logits {logits.shape} and labels {labels.shape} do not match')
        target_score = logits[np.arange(labels.shape[0]), labels][:, None]
        # Rank of the true class = number of classes scoring strictly higher (ties count in the sample's favour,
        # like argsort-based top-k with the true class first among equals).
        rank = (logits > target_score).sum(axis=1)
        hits = np.stack([rank < min(k, logits.shape[1]) for k in self.topk], axis=1)
        if sample_idx is None:
            keys = list(range(self._next_anonymous, self._next_anonymous - len(labels), -1))
            self._next_anonymous -= len(labels)
        else:
            keys = [int(i) for i in np.asarray(sample_idx).reshape(-1)]
        for key, hit in zip(keys, hits):
            self._correct[key] = hit

    def summary(self) -> np.ndarray:
        """``[num_samples, correct@k1, correct@k2, ...]`` as float64 (summable across ranks)."""
        if not self._correct:
            return np.zeros(1 + len(self.topk), np.float64)
        hits = np.stack(list(self._correct.values())).sum(axis=0)
        return np.concatenate([[len(self._correct)], hits]).astype(np.float64)

    def from_summary(self, summary: np.ndarray) -> Dict[str, float]:
        """Metrics from a (possibly all-reduced) :meth:`summary`."""
        count = float(summary[0])
        if count == 0:
            raise RuntimeError('Accuracy: no samples were evaluated (is the evaluation dataset empty?)')
        return {f'{self.prefix}/top{k}': float(100.0 * summary[1 + i] / count) for i, k in enumerate(self.topk)}

    def compute(self) -> Dict[str, float]:
        """Metrics over the samples of this process: ``{'accuracy/top1': ..., 'accuracy/top5': ...}``."""
        return self.from_summary(self.summary())
