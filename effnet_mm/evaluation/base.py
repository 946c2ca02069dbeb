"""What every effnet_mm metric shares: the evaluation dataset handed over by the runner and honest score handling.

The metric protocol (used by :class:`effnet_mm.engine.Runner`): ``reset()``; ``process(logits, labels, sample_idx)``
per batch; ``summary()`` returns a float array that is all-reduce-summed over the ranks (so every entry must be a
count or a value that only one rank contributes); ``from_summary(total)`` turns the summed array into the results
dict.  Before an evaluation pass the runner sets ``metric.dataset`` (mmengine hands its metrics
``dataset.metainfo`` as ``dataset_meta``; ours may also read the samples, e.g. image paths).

Honest scores: a row of logits that holds a NaN or an infinity ranks nothing (it is a miss at every k), and a tie
never counts in the sample's favour, so a diverged or constant model scores 0, not 100 %.
"""
from __future__ import annotations

import logging
from typing import Optional, Union

import numpy as np
from mmengine.logging import print_log


class BaseMetric:
    """Base of the effnet_mm metrics: holds the evaluation dataset and its ``dataset_meta`` (class names).

    Args:
        num_classes: number of classes; by default the width of the logits, else the dataset's class count.
    """

    def __init__(self, num_classes: Optional[int] = None) -> None:
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be positive, got {num_classes!r}')
        self.num_classes = None if num_classes is None else int(num_classes)
        #: The evaluation dataset (set by the runner before each pass; None when used standalone).
        self.dataset = None

    @property
    def dataset_meta(self) -> dict:
        """mmengine's ``dataset_meta``: the dataset's ``metainfo`` (``{'classes': (...)}``), or ``{}``."""
        return dict(getattr(self.dataset, 'metainfo', None) or {})

    @property
    def classes(self) -> Optional[tuple]:
        """Class names of the evaluation dataset, if known."""
        classes = self.dataset_meta.get('classes')
        return tuple(classes) if classes is not None else None

    def _resolve_num_classes(self, width: Optional[int] = None) -> int:
        """``num_classes`` from the argument, the logits width or the dataset's classes (in that order)."""
        if self.num_classes is None and width is not None:
            self.num_classes = int(width)
        if self.num_classes is None and self.classes is not None:
            self.num_classes = len(self.classes)
        if self.num_classes is None:
            raise ValueError(f'{type(self).__name__}: the number of classes is unknown (no sample was processed on '
                             f'this rank and the dataset names no classes); set num_classes=... in the evaluator')
        if width is not None and width != self.num_classes:
            raise ValueError(f'{type(self).__name__}: logits have {width} classes but num_classes={self.num_classes}')
        return self.num_classes


def check_batch(owner: str, logits: np.ndarray, labels: np.ndarray) -> tuple:
    """``(logits float32 (N, C), labels int64 (N,))`` or a ValueError naming ``owner`` and the shapes."""
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f'{owner}.process: logits {logits.shape} and labels {labels.shape} do not match')
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f'{owner}.process: labels must be in [0, {logits.shape[1]}), got {labels.min()}..'
                         f'{labels.max()}')
    return logits, labels


def sample_keys(sample_idx: Optional[np.ndarray], count: int, next_anonymous: int) -> tuple:
    """Dataset indices of a batch; without them, fresh negative keys so that every row counts as a new sample.

    Returns ``(keys, next_anonymous)``.
    """
    if sample_idx is None:
        keys = list(range(next_anonymous, next_anonymous - count, -1))
        return keys, next_anonymous - count
    keys = [int(i) for i in np.asarray(sample_idx).reshape(-1)]
    if len(keys) != count:
        raise ValueError(f'sample_idx has {len(keys)} entries for a batch of {count}')
    return keys, next_anonymous


def finite_rows(logits: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: True where every logit of the row is finite."""
    return np.isfinite(logits).all(axis=1)


def top1_predictions(logits: np.ndarray) -> np.ndarray:
    """Predicted class per row, or -1 when the row predicts nothing: a non-finite logit or a tied maximum."""
    pred = np.full(logits.shape[0], -1, np.int64)
    valid = finite_rows(logits)
    if valid.any():
        rows = logits[valid]
        best = rows.max(axis=1, keepdims=True)
        unique = (rows == best).sum(axis=1) == 1
        labels = np.where(unique, rows.argmax(axis=1), -1)
        pred[valid] = labels
    return pred


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (rows with non-finite logits come out as NaN)."""
    logits = np.asarray(logits, np.float64)
    with np.errstate(invalid='ignore', over='ignore'):
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)


def warn_nonfinite(owner: str, count: int, total: int) -> None:
    """One warning line in the run log when samples had non-finite logits."""
    if count:
        print_log(f'{owner}: {count} of {total} evaluated samples have non-finite (NaN/inf) logits; they count as '
                  f'wrong (is the model diverged?)', logger='current', level=logging.WARNING)


def format_metric_value(value: Union[int, float, list]) -> str:
    """One metric value as log/console text: scalars with 4 decimals, short per-class lists in full, larger arrays
    (a 1000-class confusion matrix) as their shape only."""
    if isinstance(value, (int, float)):
        return f'{value:.4f}'
    values = np.asarray(value, np.float64)
    if values.ndim == 1 and values.size <= 32:
        return '[' + ', '.join(f'{v:.2f}' for v in values) + ']'
    return f'<{"x".join(str(n) for n in values.shape)} values>'
