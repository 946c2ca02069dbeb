"""Checkpoint converters: EfficientNet weights of TF, timm, mmpretrain, MindCV and the MindSpore model zoo →
effnet_mm, and effnet_mm → timm.

The library behind ``tools/convert_weights.py`` (and its alias ``tools/convert_tf_weights.py``); see
``docs/conversion.md``.  :func:`convert_weights` is the entry point.
"""
from .convert import (
    CONVERTER_VERSION,
    SOURCES,
    TARGETS,
    ConversionResult,
    convert_tf_checkpoint,
    convert_weights,
    open_source,
    plan_family_conversion,
    write_weights,
)
from .errors import CheckpointReadError, ConversionError, MissingDependencyError
from .families import FAMILIES, derive_family_mappings, detect_family, detect_variant
from .plan import ConversionPlan, PlannedTensor, read_converted
from .tf_efficientnet import detect_arch, plan_conversion
from .tf_names import TensorMapping, build_reference_model, derive_mappings
from .tf_reader import DictReader, TensorReader, TFCheckpointReader, import_tensorflow
from .tf_source import resolve_checkpoint
from .torch_reader import UnsafeCheckpointError

__all__ = [
    'CONVERTER_VERSION', 'FAMILIES', 'SOURCES', 'TARGETS', 'CheckpointReadError', 'ConversionError',
    'ConversionPlan', 'ConversionResult', 'DictReader', 'MissingDependencyError', 'PlannedTensor',
    'TFCheckpointReader', 'TensorMapping', 'TensorReader', 'UnsafeCheckpointError', 'build_reference_model',
    'convert_tf_checkpoint', 'convert_weights', 'derive_family_mappings', 'derive_mappings', 'detect_arch',
    'detect_family', 'detect_variant', 'import_tensorflow', 'open_source', 'plan_conversion',
    'plan_family_conversion', 'read_converted', 'resolve_checkpoint', 'write_weights'
]
