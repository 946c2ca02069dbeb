"""Precision / recall / F1 (``SingleLabelMetric``) and the confusion matrix (``ConfusionMatrix``), as in mmpretrain.

Both work on the top-1 prediction of each sample.  A sample whose logits hold a NaN/inf or whose maximum is tied
predicts nothing: it is a false negative of its true class and a false positive of no class (mmpretrain would pick
an arbitrary class among equals).  Samples are keyed by ``sample_idx`` and counted once; the per-rank counts are
all-reduce-summed through ``summary()`` / ``from_summary()``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from effnet_mm.registry import METRICS

from .base import BaseMetric, check_batch, sample_keys, softmax, top1_predictions

_ITEMS = ('precision', 'recall', 'f1-score', 'support')
_AVERAGES = ('macro', 'micro', None)


class _TopOneMetric(BaseMetric):
    """Stores ``[gt_label, prediction@thr1, prediction@thr2, ...]`` per sample (prediction -1: none)."""

    thrs: Tuple[Optional[float], ...] = (None, )

    def reset(self) -> None:
        """Forget all processed samples."""
        self._records: Dict[int, np.ndarray] = {}
        self._next_anonymous = -1

    def process(self, logits: np.ndarray, labels: np.ndarray, sample_idx: Optional[np.ndarray] = None) -> None:
        """Record a batch of ``(N, C)`` logits, ``(N,)`` labels and optional ``(N,)`` dataset indices."""
        logits, labels = check_batch(type(self).__name__, logits, labels)
        self._resolve_num_classes(logits.shape[1])
        pred = top1_predictions(logits)
        top_prob = np.nan_to_num(softmax(logits).max(axis=1), nan=0.0)
        columns = [labels]
        for thr in self.thrs:
            columns.append(pred if thr is None else np.where(top_prob > thr, pred, -1))
        keys, self._next_anonymous = sample_keys(sample_idx, len(labels), self._next_anonymous)
        for key, record in zip(keys, np.stack(columns, axis=1)):
            self._records[key] = record

    def _confusion(self) -> np.ndarray:
        """``(T, C, C + 1)`` counts: true class x predicted class, last column "no prediction"."""
        num_classes = self._resolve_num_classes()
        counts = np.zeros((len(self.thrs), num_classes, num_classes + 1), np.float64)
        if self._records:
            records = np.stack(list(self._records.values()))
            for t in range(len(self.thrs)):
                pred = np.where(records[:, 1 + t] < 0, num_classes, records[:, 1 + t])
                np.add.at(counts[t], (records[:, 0], pred), 1)
        return counts

    def compute(self) -> dict:
        """Metrics over the samples of this process."""
        return self.from_summary(self.summary())


@METRICS.register_module()
class SingleLabelMetric(_TopOneMetric):
    """Precision, recall, F1-score and support of the top-1 prediction, in percent, as mmpretrain computes them.

    Per class ``c``: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R) (0 where undefined),
    support = number of samples of class ``c``.  ``average='macro'`` gives the unweighted mean over all classes (keys
    ``single-label/precision`` ...), ``'micro'`` pools the counts of all classes (keys ``..._micro``), ``None``
    gives one value per class (keys ``..._classwise``, lists).  With a threshold, a prediction whose softmax
    probability is not above it counts as no prediction; several thresholds add ``_thr-0.50`` / ``_no-thr`` suffixes.

    Example config::

        val_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                         dict(type='SingleLabelMetric', average='macro'),      # mean over classes
                         dict(type='SingleLabelMetric', average=None)]         # per class

    Args:
        thrs: probability threshold(s); None means no threshold.
        items: any of ``'precision'``, ``'recall'``, ``'f1-score'``, ``'support'``.
        average: ``'macro'``, ``'micro'`` or None.
        num_classes: number of classes (default: the logits width).
        prefix: key prefix of the results.
    """

    def __init__(self,
                 thrs: Union[float, Sequence[Optional[float]], None] = 0.0,
                 items: Sequence[str] = ('precision', 'recall', 'f1-score'),
                 average: Optional[str] = 'macro',
                 num_classes: Optional[int] = None,
                 prefix: str = 'single-label') -> None:
        super().__init__(num_classes)
        self.thrs = (thrs, ) if thrs is None or isinstance(thrs, (int, float)) else tuple(thrs)
        if not self.thrs:
            raise ValueError('SingleLabelMetric: thrs must not be empty')
        unknown = [item for item in items if item not in _ITEMS]
        if unknown or not items:
            raise ValueError(f'SingleLabelMetric: items must be taken from {_ITEMS}, got {tuple(items)}')
        if average not in _AVERAGES:
            raise ValueError(f'SingleLabelMetric: average must be one of {_AVERAGES}, got {average!r}')
        self.items = tuple(items)
        self.average = average
        self.prefix = prefix
        self.reset()

    def summary(self) -> np.ndarray:
        """``[num_samples, (TP, predicted, actual) per class for every threshold]`` as float64."""
        confusion = self._confusion()
        num_classes = confusion.shape[1]
        tp = confusion[:, np.arange(num_classes), np.arange(num_classes)]
        predicted = confusion[:, :, :num_classes].sum(axis=1)
        actual = confusion.sum(axis=2)
        return np.concatenate([[len(self._records)], np.stack([tp, predicted, actual], axis=1).reshape(-1)])

    def from_summary(self, summary: np.ndarray) -> Dict[str, Union[float, List[float]]]:
        """Metrics from a (possibly all-reduced) :meth:`summary`."""
        if float(summary[0]) == 0:
            raise RuntimeError('SingleLabelMetric: no samples were evaluated (is the evaluation dataset empty?)')
        counts = np.asarray(summary[1:], np.float64).reshape(len(self.thrs), 3, -1)
        results: Dict[str, Union[float, List[float]]] = {}
        for t, thr in enumerate(self.thrs):
            suffix = ''
            if len(self.thrs) > 1:
                suffix = '_no-thr' if thr is None else f'_thr-{thr:.2f}'
            for item, value in self.calculate(*counts[t], average=self.average).items():
                if item not in self.items:
                    continue
                name = f'{self.prefix}/{item}'
                if self.average is None:
                    name += '_classwise'
                elif self.average == 'micro':
                    name += '_micro'
                results[name + suffix] = value
        return results

    @staticmethod
    def calculate(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray,
                  average: Optional[str] = 'macro') -> Dict[str, Union[float, List[float]]]:
        """Precision/recall/F1 (percent) and support from per-class TP, predicted and actual counts."""
        if average == 'micro':
            tp, predicted, actual = (np.array([a.sum()]) for a in (tp, predicted, actual))
        precision = tp / np.maximum(predicted, 1) * 100
        recall = tp / np.maximum(actual, 1) * 100
        f1 = 2 * precision * recall / np.maximum(precision + recall, np.finfo(np.float32).eps)
        if average is None:
            return {'precision': precision.tolist(), 'recall': recall.tolist(), 'f1-score': f1.tolist(),
                    'support': [int(n) for n in actual]}
        return {'precision': float(precision.mean()), 'recall': float(recall.mean()), 'f1-score': float(f1.mean()),
                'support': int(actual.sum())}


@METRICS.register_module()
class ConfusionMatrix(_TopOneMetric):
    """Confusion matrix of the top-1 predictions: ``result[i][j]`` = samples of true class i predicted as j.

    The results hold ``confusion_matrix/result`` (a C x C list of counts, as mmpretrain's key) and, when some
    samples predicted nothing (non-finite logits or a tied maximum), ``confusion_matrix/no_prediction`` (their
    number).  After an evaluation :attr:`matrix` (C x C) and :attr:`no_prediction` (per true class) hold the arrays;
    ``tools/analysis/confusion_matrix.py`` draws them.

    Example config::

        test_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='ConfusionMatrix')]

    Args:
        num_classes: number of classes (default: the logits width).
        prefix: key prefix of the results.
    """

    def __init__(self, num_classes: Optional[int] = None, prefix: str = 'confusion_matrix') -> None:
        super().__init__(num_classes)
        self.prefix = prefix
        self.matrix: Optional[np.ndarray] = None
        self.no_prediction: Optional[np.ndarray] = None
        self.reset()

    def summary(self) -> np.ndarray:
        """The ``C x (C + 1)`` counts (last column: no prediction), flattened, as float64."""
        return self._confusion()[0].reshape(-1)

    def from_summary(self, summary: np.ndarray) -> Dict[str, Union[int, List[List[int]]]]:
        """The matrix from a (possibly all-reduced) :meth:`summary`."""
        num_classes = self._resolve_num_classes()
        counts = np.rint(np.asarray(summary, np.float64)).astype(np.int64).reshape(num_classes, num_classes + 1)
        if counts.sum() == 0:
            raise RuntimeError('ConfusionMatrix: no samples were evaluated (is the evaluation dataset empty?)')
        self.matrix, self.no_prediction = counts[:, :num_classes], counts[:, num_classes]
        results: Dict[str, Union[int, List[List[int]]]] = {f'{self.prefix}/result': self.matrix.tolist()}
        if self.no_prediction.any():
            results[f'{self.prefix}/no_prediction'] = int(self.no_prediction.sum())
        return results
