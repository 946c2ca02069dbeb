"""Evaluation metrics; importing this package registers them in ``effnet_mm.registry.METRICS``."""
from .accuracy import Accuracy
from .base import BaseMetric, format_metric_value
from .dump_results import DumpResults
from .single_label import ConfusionMatrix, SingleLabelMetric

__all__ = ['Accuracy', 'BaseMetric', 'ConfusionMatrix', 'DumpResults', 'SingleLabelMetric',
           'format_metric_value']
