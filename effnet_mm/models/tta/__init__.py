"""Test-time augmentation wrappers (mmpretrain keeps them in ``models/tta``)."""
from .average_cls_score import AverageClsScoreTTA, apply_tta, default_tta_pipeline, split_tta_pipeline

__all__ = ['AverageClsScoreTTA', 'apply_tta', 'default_tta_pipeline', 'split_tta_pipeline']
