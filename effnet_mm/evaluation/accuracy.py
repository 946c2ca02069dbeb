"""Top-k accuracy in percent, mmpretrain's ``Accuracy`` metric (keys ``accuracy/top1``, ``accuracy/top5``)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from effnet_mm.registry import METRICS

from .base import BaseMetric, check_batch, finite_rows, sample_keys, warn_nonfinite


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k classification accuracy (percent), counting every sample once, never in a broken model's favour.

    A sample is a hit at k when fewer than k other classes score **at least** as high as the true class: a tie is
    not a hit (constant logits score 0 for every k below the number of classes), and a row with any NaN or infinite
    logit is a miss at every k.  Such rows are counted: when there are any, the results carry
    ``accuracy/nonfinite`` (their number) and the run log gets a warning.

    Samples are keyed by ``sample_idx``: a sample seen twice (e.g. padding of a sharded loader) is counted once, so
    the result equals the accuracy over the distinct samples.  In distributed evaluation the per-rank counts are
    summed with :meth:`summary` / :meth:`from_summary` (the loaders never duplicate samples across ranks).

    Example config::

        val_evaluator = dict(type='Accuracy', topk=(1, 5))

    Args:
        topk: the k values; k larger than the number of classes is clipped to it.
        prefix: key prefix of the results.
    """

    def __init__(self, topk: Union[int, Sequence[int]] = (1, ), prefix: str = 'accuracy') -> None:
        super().__init__()
        self.topk: Tuple[int, ...] = (topk, ) if isinstance(topk, int) else tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'Accuracy: topk must be positive integers, got {topk}')
        self.prefix = prefix
        self.reset()

    def reset(self) -> None:
        """Forget all processed samples."""
        # Per sample: [hit@k1, hit@k2, ..., non-finite].
        self._records: Dict[int, np.ndarray] = {}
        self._next_anonymous = -1

    def process(self, logits: np.ndarray, labels: np.ndarray, sample_idx: Optional[np.ndarray] = None) -> None:
        """Record a batch.

        Args:
            logits: ``(N, C)`` scores.
            labels: ``(N,)`` integer ground truth.
            sample_idx: ``(N,)`` dataset indices; without them every row counts as a new sample.
        """
        logits, labels = check_batch('Accuracy', logits, labels)
        finite = finite_rows(logits)
        target_score = logits[np.arange(labels.shape[0]), labels][:, None]
        # Rank of the true class = number of OTHER classes scoring at least as high (ties count against it).
        rank = (logits >= target_score).sum(axis=1) - 1
        hits = np.stack([(rank < min(k, logits.shape[1])) & finite for k in self.topk], axis=1)
        records = np.concatenate([hits, ~finite[:, None]], axis=1)
        keys, self._next_anonymous = sample_keys(sample_idx, len(labels), self._next_anonymous)
        for key, record in zip(keys, records):
            self._records[key] = record

    def summary(self) -> np.ndarray:
        """``[num_samples, correct@k1, correct@k2, ..., num_nonfinite]`` as float64 (summable across ranks)."""
        if not self._records:
            return np.zeros(2 + len(self.topk), np.float64)
        counts = np.stack(list(self._records.values())).sum(axis=0)
        return np.concatenate([[len(self._records)], counts]).astype(np.float64)

    def from_summary(self, summary: np.ndarray) -> Dict[str, float]:
        """Metrics from a (possibly all-reduced) :meth:`summary`."""
        count = float(summary[0])
        if count == 0:
            raise RuntimeError('Accuracy: no samples were evaluated (is the evaluation dataset empty?)')
        results = {f'{self.prefix}/top{k}': float(100.0 * summary[1 + i] / count) for i, k in enumerate(self.topk)}
        nonfinite = int(round(float(summary[-1])))
        if nonfinite:
            results[f'{self.prefix}/nonfinite'] = nonfinite
            warn_nonfinite('Accuracy', nonfinite, int(count))
        return results

    def compute(self) -> Dict[str, float]:
        """Metrics over the samples of this process: ``{'accuracy/top1': ..., 'accuracy/top5': ...}``."""
        return self.from_summary(self.summary())
