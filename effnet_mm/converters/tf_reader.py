"""Readers of TF checkpoint tensors behind one small interface.

The mapping logic of :mod:`effnet_mm.converters.tf_efficientnet` only needs two things from a source checkpoint:
every tensor's shape (to plan and validate the mapping) and a tensor's value (to convert it).  :class:`TensorReader`
is that interface; :class:`TFCheckpointReader` implements it with TensorFlow, :class:`DictReader` with in-memory
arrays, so the mapping can be tested without TensorFlow or real checkpoints.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Protocol

import numpy as np

from .errors import CheckpointReadError, MissingDependencyError
from .layouts import Shape

TF_INSTALL_HINT = ('Reading TensorFlow checkpoints needs TensorFlow, an optional dependency of effnet_mm: '
                   'install it with `pip install "effnet_mm[tf]"` (or `pip install tensorflow`)')


class TensorReader(Protocol):
    """Read access to the tensors of a checkpoint."""

    def shapes(self) -> Dict[str, Shape]:
        """Every tensor name with its shape."""
        ...

    def read(self, name: str) -> np.ndarray:
        """The value of tensor ``name``.

        Raises:
            CheckpointReadError: the tensor cannot be read.
        """
        ...


def import_tensorflow():
    """Import TensorFlow lazily (it is slow to import and optional), with an install hint when it is missing."""
    try:
        import tensorflow as tf
    except ImportError as err:
        raise MissingDependencyError(f'{TF_INSTALL_HINT} ({err})') from err
    return tf


class TFCheckpointReader:
    """:class:`TensorReader` over a TF checkpoint prefix (``.../model.ckpt``), read with TensorFlow.

    Args:
        prefix: checkpoint prefix; ``prefix + '.index'`` and the data shards must exist.
    """

    def __init__(self, prefix: str) -> None:
        tf = import_tensorflow()
        self.prefix = prefix
        try:
            self._reader = tf.train.load_checkpoint(prefix)
            shape_map = self._reader.get_variable_to_shape_map()
        except Exception as err:  # TF raises NotFoundError, DataLossError, ... depending on what is broken
            raise CheckpointReadError(f'Cannot open the TF checkpoint {prefix!r} ({prefix}.index + data shards): '
                                      f'{type(err).__name__}: {err}') from err
        self._shapes = {name: tuple(int(d) for d in shape) for name, shape in shape_map.items()}

    def shapes(self) -> Dict[str, Shape]:
        return dict(self._shapes)

    def read(self, name: str) -> np.ndarray:
        if name not in self._shapes:
            raise CheckpointReadError(f'TF checkpoint {self.prefix!r} has no tensor {name!r}')
        try:
            value = self._reader.get_tensor(name)
        except Exception as err:  # a short data file raises IndexError, a corrupt one DataLossError
            data_files = sorted(f for f in os.listdir(os.path.dirname(self.prefix) or '.')
                                if f.startswith(os.path.basename(self.prefix) + '.data-'))
            raise CheckpointReadError(
                f'Cannot read tensor {name!r} from the TF checkpoint {self.prefix!r} (data files: {data_files}): '
                f'{type(err).__name__}: {err}. The data file is probably truncated or corrupt; download or copy it '
                f'again') from err
        return np.asarray(value)


class DictReader:
    """:class:`TensorReader` over in-memory arrays (tests, or tensors already loaded by other means).

    Args:
        tensors: name → array.
        label: how error messages refer to this source.
    """

    def __init__(self, tensors: Mapping[str, np.ndarray], label: str = '<in-memory tensors>') -> None:
        self._tensors = {name: np.asarray(value) for name, value in tensors.items()}
        self.label = label

    def shapes(self) -> Dict[str, Shape]:
        return {name: tuple(value.shape) for name, value in self._tensors.items()}

    def read(self, name: str) -> np.ndarray:
        if name not in self._tensors:
            raise CheckpointReadError(f'{self.label} has no tensor {name!r}')
        return self._tensors[name]
