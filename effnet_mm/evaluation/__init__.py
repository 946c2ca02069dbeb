"""Evaluation metrics; importing this package registers them in ``effnet_mm.registry.METRICS``."""
from .accuracy import Accuracy
from .base import BaseMetric, format_metric_value
from .dump_results import DumpResults, add_dump_results, check_json_output
from .single_label import ConfusionMatrix, SingleLabelMetric

__all__ = ['Accuracy', 'BaseMetric', 'ConfusionMatrix', 'DumpResults', 'SingleLabelMetric', 'add_dump_results',
           'check_json_output', 'format_metric_value']
