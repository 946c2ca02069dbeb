"""DumpResults: one record per evaluated sample with top-k names and probabilities, exactly once over the ranks."""
import json

import numpy as np
import pytest

from effnet_mm.evaluation import DumpResults
from effnet_mm.registry import METRICS

CLASSES = ('cat', 'dog', 'fox', 'owl')


class FakeDataset:
    def __init__(self, num):
        self.metainfo = {'classes': CLASSES}
        self.num = num

    def __len__(self):
        return self.num

    def get_data_info(self, idx):
        return {'img_path': f'val/{idx}.png', 'gt_label': 0, 'sample_idx': idx}


def _batch(num=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(num, 4)).astype(np.float32), rng.integers(0, 4, size=num)


def _metric(num, **kwargs):
    metric = METRICS.build(dict(type='DumpResults', **kwargs))
    metric.dataset = FakeDataset(num)
    return metric


def test_records_hold_topk_names_and_softmax_probabilities():
    logits, labels = _batch()
    metric = _metric(9, topk=2)
    metric.process(logits, labels, np.arange(9))
    assert metric.compute() == {}
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert [r['sample_idx'] for r in metric.results] == list(range(9))
    for i, record in enumerate(metric.results):
        top = np.argsort(-logits[i])[:2].tolist()
        assert record['img_path'] == f'val/{i}.png'
        assert record['gt_label'] == labels[i] and record['gt_class'] == CLASSES[labels[i]]
        assert record['pred_label'] == top and record['pred_class'] == [CLASSES[c] for c in top]
        assert record['pred_score'] == pytest.approx(probs[i, top], rel=1e-6)


def test_ranks_combine_into_every_sample_exactly_once():
    logits, labels = _batch(num=11)
    full, rank0, rank1 = _metric(11), _metric(11), _metric(11)
    full.process(logits, labels, np.arange(11))
    full.compute()
    rank0.process(logits[0::2], labels[0::2], np.arange(0, 11, 2))
    rank1.process(logits[1::2], labels[1::2], np.arange(1, 11, 2))
    # the all-reduce of distributed evaluation runs in float32: the records must not change
    total = (rank0.summary().astype(np.float32) + rank1.summary().astype(np.float32)).astype(np.float64)
    rank0.from_summary(total)
    assert rank0.results == full.results

    overlapping = _metric(11)  # a third shard that repeats sample 4
    overlapping.process(logits[4:5], labels[4:5], np.array([4]))
    with pytest.raises(RuntimeError, match=r'samples \[4\] were evaluated more than once'):
        rank0.from_summary(rank0.summary() + rank1.summary() + overlapping.summary())


def test_skipped_samples_are_absent_and_nonfinite_rows_are_flagged():
    logits, labels = _batch(num=4)
    logits[2, 1] = np.nan
    metric = _metric(6)
    metric.process(logits, labels, np.array([0, 1, 2, 4]))  # 3 and 5 never evaluated (e.g. skip_corrupt)
    metric.compute()
    assert [r['sample_idx'] for r in metric.results] == [0, 1, 2, 4]
    assert metric.results[2]['nonfinite'] is True and metric.results[2]['pred_label'] == []
    json.dumps(metric.results, allow_nan=False)  # valid JSON: no NaN literals


def test_out_file_path_writes_json(tmp_path):
    logits, labels = _batch(num=3)
    path = tmp_path / 'sub' / 'preds.json'
    metric = _metric(3, out_file_path=str(path))
    metric.process(logits, labels, np.arange(3))
    metric.compute()
    assert json.loads(path.read_text()) == metric.results
    with pytest.raises(ValueError, match='must end with .json'):
        DumpResults(out_file_path='preds.pkl')


def test_standalone_without_dataset_or_indices():
    logits, labels = _batch(num=3)
    metric = DumpResults(topk=10)
    metric.process(logits, labels)
    metric.process(logits[:1], labels[:1])
    metric.compute()
    assert [r['sample_idx'] for r in metric.results] == [0, 1, 2, 3]
    assert [len(r['pred_label']) for r in metric.results] == [4] * 4  # topk clipped to the 4 classes
    assert metric.results[0]['img_path'] is None and metric.results[0]['gt_class'] is None
    with pytest.raises(ValueError, match='outside the dataset of 3 samples'):
        metric = _metric(3)
        metric.process(logits, labels, np.array([0, 1, 3]))
        metric.summary()
