"""Per-sample predictions (``DumpResults``), gathered over all ranks: what ``tools/test.py --out`` writes."""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional

import numpy as np

from effnet_mm.registry import METRICS
from effnet_mm.utils.fileio import write_text

from .base import BaseMetric, check_batch, finite_rows, softmax


def _score(value: float) -> Optional[float]:
    # The shortest text of the float32 value: the same digits whichever way the ranks were summed.
    return float(str(np.float32(value))) if math.isfinite(value) else None


@METRICS.register_module()
class DumpResults(BaseMetric):
    """Records every evaluated sample's top-k classes and softmax probabilities (mmpretrain's ``DumpResults``).

    One record per sample, in dataset order::

        {"sample_idx": 7, "img_path": "data/val/cat/1.jpg", "gt_label": 3, "gt_class": "cat",
         "pred_label": [3, 5], "pred_class": ["cat", "dog"], "pred_score": [0.91, 0.05]}

    ``img_path`` and the class names come from the evaluation dataset the runner hands over (``None`` without one).
    A sample with non-finite logits gets empty ``pred_*`` lists and ``"nonfinite": true``.  Ranks are combined
    through the all-reduce-sum protocol: each rank fills the rows of its own samples in a table of the dataset's
    length, so after the sum every sample appears exactly once (a sample evaluated on two ranks is an error).
    ``tools/test.py --out FILE.json`` appends this metric and writes its records together with the metrics.

    Example config::

        test_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                          dict(type='DumpResults', out_file_path='work_dirs/preds.json', topk=5)]

    Args:
        out_file_path: if set, rank 0 writes the records there as JSON (atomically) after each evaluation.
        topk: classes kept per sample (clipped to the number of classes).
    """

    def __init__(self, out_file_path: Optional[str] = None, topk: int = 5) -> None:
        super().__init__()
        if out_file_path is not None and not str(out_file_path).endswith('.json'):
            raise ValueError(f'DumpResults: out_file_path must end with .json (JSON, never pickle), '
                             f'got {out_file_path!r}')
        if int(topk) < 1:
            raise ValueError(f'DumpResults: topk must be positive, got {topk!r}')
        self.out_file_path = out_file_path
        self.topk = int(topk)
        #: The records of the last evaluation (filled by :meth:`from_summary`).
        self.results: List[dict] = []
        #: Samples the evaluation should have covered (the dataset's length; filled by :meth:`from_summary`).
        self.num_expected = 0
        self.reset()

    def reset(self) -> None:
        """Forget all processed samples."""
        self._rows: Dict[int, np.ndarray] = {}

    def _k(self) -> int:
        return min(self.topk, self._resolve_num_classes())

    def process(self, logits: np.ndarray, labels: np.ndarray, sample_idx: Optional[np.ndarray] = None) -> None:
        """Record a batch of ``(N, C)`` logits, ``(N,)`` labels and ``(N,)`` dataset indices."""
        logits, labels = check_batch('DumpResults', logits, labels)
        self._resolve_num_classes(logits.shape[1])
        k = self._k()
        finite = finite_rows(logits)
        # Stable sort on the negated scores: among equal scores the lower class index comes first.
        order = np.argsort(-np.where(finite[:, None], logits, 0.0), axis=1, kind='stable')[:, :k]
        # float32 values pass the float32 all-reduce of distributed evaluation unchanged.
        probs = np.take_along_axis(softmax(logits), order, axis=1).astype(np.float32)
        if sample_idx is None:  # standalone use: samples numbered in arrival order
            keys = list(range(len(self._rows), len(self._rows) + len(labels)))
        else:
            keys = [int(i) for i in np.asarray(sample_idx).reshape(-1)]
        if len(keys) != len(labels) or min(keys) < 0:
            raise ValueError(f'DumpResults.process: sample_idx must hold {len(labels)} non-negative indices')
        for key, label, ok, top, prob in zip(keys, labels, finite, order, probs):
            # Row layout: [times seen, finite, gt, top-k labels, top-k probabilities].
            self._rows[key] = np.concatenate([[1.0, float(ok), float(label)], top if ok else np.full(k, -1.0),
                                              prob if ok else np.zeros(k)])

    def _table_size(self) -> int:
        if self.dataset is not None and hasattr(self.dataset, '__len__'):
            return len(self.dataset)
        return max(self._rows, default=-1) + 1

    def summary(self) -> np.ndarray:
        """A ``(dataset length, 3 + 2k)`` table, zero except the rows of this rank's samples, flattened."""
        size = self._table_size()
        table = np.zeros((size, 3 + 2 * self._k()), np.float64)
        for key, row in self._rows.items():
            if key >= size:
                raise ValueError(f'DumpResults: sample_idx {key} is outside the dataset of {size} samples')
            table[key] = row
        return table.reshape(-1)

    def from_summary(self, summary: np.ndarray) -> Dict[str, float]:
        """Build :attr:`results` from the (possibly all-reduced) table; write them if ``out_file_path`` is set.

        Returns no metric keys (the records are not scalars).
        """
        k = self._k()
        table = np.asarray(summary, np.float64).reshape(-1, 3 + 2 * k)
        seen = np.rint(table[:, 0]).astype(np.int64)
        self.num_expected = len(table)
        if (seen > 1).any():
            twice = np.flatnonzero(seen > 1)[:10].tolist()
            raise RuntimeError(f'DumpResults: samples {twice} were evaluated more than once (overlapping shards?)')
        classes = self.classes
        results = []
        for idx in np.flatnonzero(seen == 1):
            row = table[idx]
            gt = int(round(row[2]))
            record = {'sample_idx': int(idx), 'img_path': self._img_path(int(idx)), 'gt_label': gt,
                      'gt_class': self._name(classes, gt)}
            if row[1] > 0.5:
                labels = [int(round(v)) for v in row[3:3 + k]]
                record.update(pred_label=labels, pred_class=[self._name(classes, c) for c in labels],
                              pred_score=[_score(v) for v in row[3 + k:]])
            else:
                record.update(pred_label=[], pred_class=[], pred_score=[], nonfinite=True)
            results.append(record)
        self.results = results
        if self.out_file_path:
            from effnet_mm.runtime.dist import get_rank  # lazy: imported only when ranks matter

            if get_rank() == 0:
                write_text(self.out_file_path, json.dumps(results, indent=1) + '\n')
        return {}

    def _img_path(self, idx: int) -> Optional[str]:
        if self.dataset is None or not hasattr(self.dataset, 'get_data_info') or idx >= len(self.dataset):
            return None
        path = self.dataset.get_data_info(idx).get('img_path')
        return None if path is None else os.fspath(path)

    @staticmethod
    def _name(classes: Optional[tuple], label: int) -> Optional[str]:
        return str(classes[label]) if classes is not None and 0 <= label < len(classes) else None

    def compute(self) -> Dict[str, float]:
        """Gather this process's samples (see :meth:`from_summary`)."""
        return self.from_summary(self.summary())


def add_dump_results(cfg) -> None:
    """Append a ``DumpResults`` metric to the config's ``test_evaluator`` (what mmpretrain's ``test.py --out`` does).

    Raises:
        KeyError: the config has no ``test_evaluator``.
    """
    evaluator = cfg.get('test_evaluator')
    if not evaluator:
        raise KeyError(f'{cfg.filename}: --out needs test_evaluator in the config')
    evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
    cfg.test_evaluator = evaluator + [dict(type='DumpResults')]


def check_json_output(path: str, option: str) -> None:
    """Refuse an output file a run could not write, before any work is done (``option`` names it in the error)."""
    if not path.endswith('.json'):
        raise ValueError(f'{option} {path!r}: the results are written as JSON, the file name must end with .json')
    if os.path.isdir(path):
        raise ValueError(f'{option} {path!r} is a directory; give a file name ending with .json')
