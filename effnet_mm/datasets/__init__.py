"""Datasets, transforms and the MindSpore loader builder.

Importing this package registers ``ImageNet``, ``CustomDataset`` and ``DemoDataset`` in ``DATASETS`` and every
transform in ``TRANSFORMS``; MindSpore itself is only imported when a loader is iterated.
"""
from .base_dataset import BaseDataset
from .builder import DataLoader, build_dataloader, build_dataset
from .custom import CustomDataset
from .demo import DemoDataset
from .demo_generator import DEMO_CLASSES, make_demo_dataset
from .imagenet import ImageNet
from .sampling import epoch_indices
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseDataset', 'DataLoader', 'build_dataloader', 'build_dataset', 'CustomDataset', 'DemoDataset', 'DEMO_CLASSES',
    'make_demo_dataset', 'ImageNet', 'epoch_indices'
]
