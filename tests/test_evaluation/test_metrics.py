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


# ---------------------------------------------------------------- honest scores (issue: a diverged model scored 100 %)
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nonfinite_logits_are_misses_and_reported(bad):
    logits = LOGITS.copy()
    logits[0, 3] = bad  # sample 0 was a top-1 hit; one non-finite entry anywhere makes it a miss at every k
    metric = Accuracy(topk=(1, 2, 4))
    metric.process(logits, LABELS, np.arange(4))
    assert metric.compute() == pytest.approx({'accuracy/top1': 25.0, 'accuracy/top2': 50.0,
                                              'accuracy/top4': 75.0, 'accuracy/nonfinite': 1})


def test_all_nan_logits_score_zero():
    metric = Accuracy(topk=(1, 5))
    metric.process(np.full((6, 10), np.nan, np.float32), np.arange(6), np.arange(6))
    assert metric.compute() == {'accuracy/top1': 0.0, 'accuracy/top5': 0.0, 'accuracy/nonfinite': 6}


def test_constant_logits_are_ties_and_not_hits():
    metric = Accuracy(topk=(1, 5))
    metric.process(np.zeros((6, 10), np.float32), np.arange(6), np.arange(6))
    assert metric.compute() == {'accuracy/top1': 0.0, 'accuracy/top5': 0.0}
    # A tie at the k-th place is not a hit either: the true class shares the 2nd-best score with another class.
    metric = Accuracy(topk=(1, 2, 3))
    metric.process(np.array([[3.0, 2.0, 2.0, 0.0]], np.float32), np.array([2]))
    assert metric.compute() == {'accuracy/top1': 0.0, 'accuracy/top2': 0.0, 'accuracy/top3': 100.0}


def test_nonfinite_count_adds_up_across_ranks():
    logits = LOGITS.copy()
    logits[[0, 3], 0] = np.nan
    rank0, rank1 = Accuracy(topk=1), Accuracy(topk=1)
    rank0.process(logits[:2], LABELS[:2], np.array([0, 1]))
    rank1.process(logits[2:], LABELS[2:], np.array([2, 3]))
    assert rank0.from_summary(rank0.summary() + rank1.summary()) == {'accuracy/top1': 0.0, 'accuracy/nonfinite': 2}
