"""Accuracy metric: top-k in percent, each sample counted once, summaries for distributed reduction."""
import numpy as np
import pytest

from effnet_mm.evaluation import Accuracy
from effnet_mm.registry import METRICS

LOGITS = np.array([
    [0.1, 0.9, 0.0, 0.0],   # label 1: top1
    [0.5, 0.1, 0.4, 0.0],   # label 2: top2
    [0.1, 0.2, 0.3, 0.4],   # label 0: top4
    [0.0, 0.0, 0.1, 0.9],   # label 3: top1
], np.float32)
LABELS = np.array([1, 2, 0, 3])


def test_topk_percent():
    metric = Accuracy(topk=(1, 2, 5))
    metric.process(LOGITS, LABELS, np.arange(4))
    assert metric.compute() == pytest.approx({'accuracy/top1': 50.0, 'accuracy/top2': 75.0,
                                              'accuracy/top5': 100.0})


def test_duplicate_sample_idx_counted_once():
    metric = Accuracy(topk=(1, ))
    metric.process(LOGITS, LABELS, np.arange(4))
    # The padded repeat of samples 0 and 1 (e.g. an uneven shard) must not change the result.
    metric.process(LOGITS[:2], LABELS[:2], np.array([0, 1]))
    assert metric.compute() == {'accuracy/top1': 50.0}
    assert metric.summary()[0] == 4


def test_without_sample_idx_every_row_counts():
    metric = Accuracy(topk=1)
    metric.process(LOGITS, LABELS)
    metric.process(LOGITS[:1], LABELS[:1])
    assert metric.compute() == {'accuracy/top1': 60.0}


def test_summaries_add_up_across_ranks():
    rank0, rank1 = Accuracy(topk=(1, 5)), Accuracy(topk=(1, 5))
    rank0.process(LOGITS[:2], LABELS[:2], np.array([0, 1]))
    rank1.process(LOGITS[2:], LABELS[2:], np.array([2, 3]))
    full = Accuracy(topk=(1, 5))
    full.process(LOGITS, LABELS, np.arange(4))
    assert rank0.from_summary(rank0.summary() + rank1.summary()) == full.compute()


def test_reset_and_empty():
    metric = METRICS.build(dict(type='Accuracy', topk=(1, 5)))
    metric.process(LOGITS, LABELS, np.arange(4))
    metric.reset()
    with pytest.raises(RuntimeError, match='no samples'):
        metric.compute()


def test_bad_inputs():
    with pytest.raises(ValueError, match='topk'):
        Accuracy(topk=(0, ))
    with pytest.raises(ValueError, match='do not match'):
        Accuracy().process(LOGITS, LABELS[:2])
