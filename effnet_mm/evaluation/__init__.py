"""Evaluation metrics; importing this package registers them in ``effnet_mm.registry.METRICS``."""
from .accuracy import Accuracy

__all__ = ['Accuracy']
