"""SingleLabelMetric and ConfusionMatrix against sklearn-style reference numbers written out here (no sklearn)."""
import numpy as np
import pytest

from effnet_mm.evaluation import ConfusionMatrix, SingleLabelMetric
from effnet_mm.registry import METRICS

NUM_CLASSES = 7


def random_predictions(seed=0, num=300):
    """Random logits; class 6 is neither a label nor ever predicted (exercises 0/0 -> 0)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(num, NUM_CLASSES)).astype(np.float32)
    logits[:, 6] = -10.0
    labels = rng.integers(0, NUM_CLASSES - 1, size=num)
    return logits, labels


def reference_confusion(y_true, y_pred, num_classes):
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for t, p in zip(y_true, y_pred):
        matrix[t, p] += 1
    return matrix


def reference_prfs(y_true, y_pred, num_classes):
    """sklearn's precision_recall_fscore_support(labels=range(C), average=None, zero_division=0), in percent."""
    precision, recall, f1, support = [], [], [], []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        precision.append(100.0 * tp / (tp + fp) if tp + fp else 0.0)
        recall.append(100.0 * tp / (tp + fn) if tp + fn else 0.0)
        f1.append(100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        support.append(tp + fn)
    return precision, recall, f1, support


def test_per_class_and_macro_equal_the_reference():
    logits, labels = random_predictions()
    y_pred = logits.argmax(axis=1)
    precision, recall, f1, support = reference_prfs(labels, y_pred, NUM_CLASSES)

    per_class = SingleLabelMetric(average=None, items=('precision', 'recall', 'f1-score', 'support'))
    per_class.process(logits, labels, np.arange(len(labels)))
    got = per_class.compute()
    assert got['single-label/precision_classwise'] == pytest.approx(precision)
    assert got['single-label/recall_classwise'] == pytest.approx(recall)
    assert got['single-label/f1-score_classwise'] == pytest.approx(f1)
    assert got['single-label/support_classwise'] == support

    macro = METRICS.build(dict(type='SingleLabelMetric'))
    macro.process(logits, labels, np.arange(len(labels)))
    assert macro.compute() == pytest.approx({'single-label/precision': np.mean(precision),
                                             'single-label/recall': np.mean(recall),
                                             'single-label/f1-score': np.mean(f1)})


def test_micro_average_equals_top1_accuracy_for_single_label():
    logits, labels = random_predictions(seed=1)
    accuracy = 100.0 * np.mean(logits.argmax(axis=1) == labels)
    metric = SingleLabelMetric(average='micro', items=('precision', 'recall', 'f1-score', 'support'))
    metric.process(logits, labels)
    assert metric.compute() == pytest.approx({'single-label/precision_micro': accuracy,
                                              'single-label/recall_micro': accuracy,
                                              'single-label/f1-score_micro': accuracy,
                                              'single-label/support_micro': len(labels)})


def test_thresholds_on_the_softmax_probability():
    logits, labels = random_predictions(seed=2)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = logits.argmax(axis=1)
    # Below the threshold nothing is predicted: a false negative of the true class, no false positive.
    low = np.where(probs.max(axis=1) > 0.4, y_pred, -1)
    metric = SingleLabelMetric(thrs=(None, 0.4))
    metric.process(logits, labels, np.arange(len(labels)))
    got = metric.compute()
    for suffix, pred in (('_no-thr', y_pred), ('_thr-0.40', low)):
        precision, recall, f1, _ = reference_prfs(labels, pred, NUM_CLASSES)
        assert got[f'single-label/precision{suffix}'] == pytest.approx(np.mean(precision))
        assert got[f'single-label/recall{suffix}'] == pytest.approx(np.mean(recall))
        assert got[f'single-label/f1-score{suffix}'] == pytest.approx(np.mean(f1))
    assert (low == -1).any() and (low != -1).any()


def test_confusion_matrix_equals_the_reference():
    logits, labels = random_predictions(seed=3)
    metric = METRICS.build(dict(type='ConfusionMatrix'))
    metric.process(logits, labels, np.arange(len(labels)))
    expected = reference_confusion(labels, logits.argmax(axis=1), NUM_CLASSES)
    assert metric.compute() == {'confusion_matrix/result': expected.tolist()}
    np.testing.assert_array_equal(metric.matrix, expected)
    assert metric.matrix.sum() == len(labels)


@pytest.mark.parametrize('cfg', [dict(type='SingleLabelMetric', average=None),
                                 dict(type='SingleLabelMetric', thrs=(None, 0.3)),
                                 dict(type='ConfusionMatrix')])
def test_two_rank_summaries_add_up_to_the_full_result(cfg):
    """The runner all-reduce-sums summary() over ranks: shards of an uneven split must give the full result."""
    logits, labels = random_predictions(seed=4, num=101)
    full, rank0, rank1 = (METRICS.build(cfg) for _ in range(3))
    idx = np.arange(len(labels))
    full.process(logits, labels, idx)
    rank0.process(logits[0::2], labels[0::2], idx[0::2])
    rank1.process(logits[1::2], labels[1::2], idx[1::2])
    # The padded repeat of a sample (e.g. the last batch of a shard) does not count twice.
    rank1.process(logits[1:2], labels[1:2], idx[1:2])
    assert rank0.from_summary(rank0.summary() + rank1.summary()) == full.compute()


def test_nonfinite_and_tied_rows_predict_nothing():
    logits = np.array([[5, 0, 0], [np.nan, 9, 0], [1, 1, 0], [0, 0, 4]], np.float32)
    labels = np.array([0, 1, 0, 2])
    confusion = ConfusionMatrix()
    confusion.process(logits, labels, np.arange(4))
    assert confusion.compute() == {'confusion_matrix/result': [[1, 0, 0], [0, 0, 0], [0, 0, 1]],
                                   'confusion_matrix/no_prediction': 2}
    assert confusion.no_prediction.tolist() == [1, 1, 0]
    metric = SingleLabelMetric(average=None)
    metric.process(logits, labels, np.arange(4))
    got = metric.compute()
    assert got['single-label/precision_classwise'] == [100.0, 0.0, 100.0]
    assert got['single-label/recall_classwise'] == [50.0, 0.0, 100.0]


def test_class_count_from_the_dataset_when_a_rank_saw_nothing():
    metric = ConfusionMatrix()
    metric.dataset = type('DS', (), {'metainfo': {'classes': ('a', 'b')}})()
    assert metric.summary().tolist() == [0.0] * 6
    with pytest.raises(ValueError, match='num_classes'):
        ConfusionMatrix().summary()


def test_bad_arguments():
    with pytest.raises(ValueError, match='average'):
        SingleLabelMetric(average='weighted')
    with pytest.raises(ValueError, match='items'):
        SingleLabelMetric(items=('accuracy', ))
    with pytest.raises(ValueError, match=r'labels must be in \[0, 3\)'):
        ConfusionMatrix().process(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match='logits have 4 classes but num_classes=3'):
        SingleLabelMetric(num_classes=3).process(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(RuntimeError, match='no samples'):
        SingleLabelMetric(num_classes=3).compute()
