"""Checkpoint converters: official TensorFlow EfficientNet checkpoints → effnet_mm MindSpore weights.

The library behind ``tools/convert_tf_weights.py``; see ``docs/conversion.md``.
"""
from .errors import CheckpointReadError, ConversionError, MissingDependencyError
from .tf_efficientnet import (
    CONVERTER_VERSION,
    ConversionPlan,
    ConversionResult,
    convert_tf_checkpoint,
    detect_arch,
    plan_conversion,
    read_converted,
    write_weights,
)
from .tf_names import TensorMapping, build_reference_model, derive_mappings
from .tf_reader import DictReader, TensorReader, TFCheckpointReader, import_tensorflow
from .tf_source import resolve_checkpoint

__all__ = [
    'CONVERTER_VERSION', 'CheckpointReadError', 'ConversionError', 'ConversionPlan', 'ConversionResult',
    'DictReader', 'MissingDependencyError', 'TFCheckpointReader', 'TensorMapping', 'TensorReader',
    'build_reference_model', 'convert_tf_checkpoint', 'derive_mappings', 'detect_arch', 'import_tensorflow',
    'plan_conversion', 'read_converted', 'resolve_checkpoint', 'write_weights'
]
