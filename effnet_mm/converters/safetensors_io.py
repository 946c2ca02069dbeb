"""``.safetensors`` through the ``safetensors`` package's numpy API (no PyTorch): read lazily, write atomically.

``safetensors`` is an optional dependency (``pip install "effnet_mm[interop]"``); it is imported only here.
"""
from __future__ import annotations

import json
import struct
from typing import Dict, Mapping, Optional

import numpy as np

from .errors import CheckpointReadError, MissingDependencyError
from .layouts import Shape

INSTALL_HINT = ('Reading and writing .safetensors needs the safetensors package, an optional dependency of '
                'effnet_mm: install it with `pip install "effnet_mm[interop]"` (or `pip install safetensors`)')
#: safetensors dtype names → numpy (BF16 has no numpy type and is widened to float32 on read).
DTYPES = {'F64': 'float64', 'F32': 'float32', 'F16': 'float16', 'BF16': 'bfloat16', 'I64': 'int64', 'I32': 'int32',
          'I16': 'int16', 'I8': 'int8', 'U8': 'uint8', 'BOOL': 'bool'}
#: A header longer than this is not a checkpoint of ours to read (safetensors itself caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000


def import_safetensors():
    try:
        import safetensors
        import safetensors.numpy  # noqa: F401  (the numpy API used below)
    except ImportError as err:
        raise MissingDependencyError(f'{INSTALL_HINT} ({err})') from err
    return safetensors


def is_safetensors_file(path: str) -> bool:
    """True when ``path`` starts like a safetensors file: a little-endian header length, then a JSON object."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (length, ) = struct.unpack('<Q', head[:8])
    return 2 <= length <= MAX_HEADER_BYTES and head[8:9] == b'{'


class SafetensorsReader:
    """:class:`~effnet_mm.converters.tf_reader.TensorReader` over a ``.safetensors`` file (numpy API, lazy).

    Raises:
        CheckpointReadError: truncated or malformed file (reported by safetensors when the header is parsed).
        MissingDependencyError: safetensors is not installed.
    """

    def __init__(self, path: str) -> None:
        safetensors = import_safetensors()
        self.label = path
        self.ignored = []
        try:
            self._file = safetensors.safe_open(path, framework='np')
            self._shapes = {name: tuple(self._file.get_slice(name).get_shape()) for name in self._file.keys()}
            self._dtypes = {name: self._file.get_slice(name).get_dtype() for name in self._shapes}
            self.metadata: Optional[Dict[str, str]] = self._file.metadata()
        except Exception as err:  # SafetensorError for a bad header, OSError for I/O
            raise CheckpointReadError(f'{path}: cannot read the safetensors file (truncated or corrupt?): '
                                      f'{type(err).__name__}: {err}') from err

    def shapes(self) -> Dict[str, Shape]:
        return dict(self._shapes)

    def read(self, name: str) -> np.ndarray:
        if name not in self._shapes:
            raise CheckpointReadError(f'{self.label} has no tensor {name!r}')
        if self._dtypes[name] == 'BF16':
            raise CheckpointReadError(f'{self.label}: tensor {name!r} is bfloat16, which the numpy API of safetensors '
                                      f'cannot read; save the weights as float32')
        try:
            return np.asarray(self._file.get_tensor(name))
        except Exception as err:
            raise CheckpointReadError(f'{self.label}: cannot read tensor {name!r}: {type(err).__name__}: {err}') \
                from err


def save_safetensors(tensors: Mapping[str, np.ndarray], path: str, metadata: Optional[Mapping[str, str]] = None,
                     overwrite: bool = True) -> str:
    """Atomically write ``tensors`` (C-contiguous numpy arrays) to ``path`` with string ``metadata``."""
    from effnet_mm.utils.fileio import atomic_write

    safetensors = import_safetensors()
    # np.require keeps 0-d arrays 0-d (ascontiguousarray makes them 1-d; timm's counters are 0-d)
    arrays = {name: np.require(value, requirements='C') for name, value in tensors.items()}
    with atomic_write(path, overwrite=overwrite) as tmp:
        safetensors.numpy.save_file(arrays, tmp, metadata=dict(metadata) if metadata else None)
    return path


def write_json(data: Mapping, path: str, overwrite: bool = True) -> str:
    """Atomically write ``data`` as indented JSON (``config.json`` of a Hugging Face hub folder)."""
    from effnet_mm.utils.fileio import atomic_write

    with atomic_write(path, overwrite=overwrite) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2)
        f.write('\n')
    return path
