"""Datasets, transforms and the MindSpore loader builder.

Importing this package registers ``ImageNet``, ``CustomDataset`` and ``DemoDataset`` in ``DATASETS`` and every
transform in ``TRANSFORMS``; MindSpore itself is only imported when a loader is iterated.
"""
from .base_dataset import BaseDataset
from .builder import DataLoader, SkippedSample, build_dataloader, build_dataset, default_metainfo
from .categories import IMAGENET_CATEGORIES, IMAGENET_WNIDS
from .custom import CustomDataset
from .demo import DemoDataset
from .demo_generator import DEMO_CLASSES, make_demo_dataset
from .image_files import IMG_EXTENSIONS, find_images, is_image_file
from .imagenet import ImageNet
from .sampling import epoch_indices
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseDataset', 'DataLoader', 'SkippedSample', 'build_dataloader', 'build_dataset', 'default_metainfo',
    'IMAGENET_CATEGORIES', 'IMAGENET_WNIDS', 'CustomDataset', 'DemoDataset', 'DEMO_CLASSES', 'make_demo_dataset',
    'IMG_EXTENSIONS', 'find_images', 'is_image_file', 'ImageNet', 'epoch_indices'
]
