"""Exceptions of the checkpoint converters."""
from __future__ import annotations


class ConversionError(Exception):
    """A checkpoint cannot be converted; the message names the file, tensor or option at fault."""


class CheckpointReadError(ConversionError):
    """A source checkpoint (or archive) cannot be opened or one of its tensors cannot be read."""


class MissingDependencyError(ConversionError, ImportError):
    """An optional dependency (TensorFlow) needed to read the source checkpoint is not installed."""
