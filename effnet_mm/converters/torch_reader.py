"""Read PyTorch ``.pth`` / ``.bin`` checkpoints without PyTorch and without running code from the file.

PyTorch checkpoints are pickles, and unpickling calls whatever function the file names (``os.system`` included).
:class:`RestrictedUnpickler` resolves only the handful of globals a tensor state dict needs (tensor and parameter
rebuilding, typed storages, ``collections.OrderedDict``) to inert stand-ins defined here, and refuses every other
global with :class:`UnsafeCheckpointError` naming it, so no code from a checkpoint ever runs.  Tensors come back
as :class:`TorchTensorRef` (storage, offset, shape, stride); their bytes are read, bounds-checked, only when asked.

Both on-disk formats are understood:

* the zip format (``torch.save`` since PyTorch 1.6): ``<root>/data.pkl`` plus one member ``<root>/data/<key>``
  per storage;
* the legacy non-zip format (``_use_new_zipfile_serialization=False``, and everything before 1.6): magic number,
  protocol version and system-info pickles, the object pickle, the list of storage keys, then each storage as an
  8-byte element count followed by its raw bytes.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Dict, Mapping, Optional, Tuple

import numpy as np

from .errors import CheckpointReadError, ConversionError
from .layouts import Shape

#: The first pickle of a legacy (non-zip) ``torch.save`` file.
LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001
ZIP_MAGIC = b'PK\x03\x04'
#: How the legacy format starts: pickle protocol 2 (``\x80\x02``) then LONG1 of 10 bytes holding the magic number.
LEGACY_PREFIX = b'\x80\x02\x8a\x0a' + LEGACY_MAGIC_NUMBER.to_bytes(10, 'little')

#: ``torch.<Name>Storage`` → element type.  bfloat16 has no numpy type: read as uint16, widened on read.
STORAGE_DTYPES: Dict[str, str] = {
    'FloatStorage': 'float32', 'DoubleStorage': 'float64', 'HalfStorage': 'float16', 'BFloat16Storage': 'bfloat16',
    'LongStorage': 'int64', 'IntStorage': 'int32', 'ShortStorage': 'int16', 'CharStorage': 'int8',
    'ByteStorage': 'uint8', 'BoolStorage': 'bool',
}


class UnsafeCheckpointError(CheckpointReadError):
    """The pickle references something other than tensors and plain containers; nothing from it was run."""


@dataclass(frozen=True)
class StorageType:
    """Stand-in for a ``torch.<Name>Storage`` class referenced by the pickle."""

    name: str

    @property
    def dtype(self) -> str:
        return STORAGE_DTYPES[self.name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == 'bfloat16' else np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class StorageRef:
    """A storage of the checkpoint: ``numel`` elements of ``storage_type`` under ``key``."""

    key: str
    storage_type: StorageType
    numel: int


@dataclass(frozen=True)
class TorchTensorRef:
    """A tensor of the checkpoint, not yet read: a strided view of a storage (PyTorch's own description)."""

    storage: StorageRef
    offset: int
    shape: Shape
    stride: Tuple[int, ...]

    @property
    def dtype(self) -> str:
        return self.storage.storage_type.dtype


def _int_tuple(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise UnsafeCheckpointError(f'tensor {what} must be a tuple of ints, got {value!r}')
    return value


def _rebuild_tensor(storage: StorageRef, storage_offset: int, size: tuple, stride: tuple,
                    *_ignored: Any) -> TorchTensorRef:
    if not isinstance(storage, StorageRef):
        raise UnsafeCheckpointError(f'a tensor is built from {type(storage).__name__}, expected a storage')
    if not isinstance(storage_offset, int):
        raise UnsafeCheckpointError(f'tensor storage offset must be an int, got {storage_offset!r}')
    return TorchTensorRef(storage, storage_offset, _int_tuple(size, 'size'), _int_tuple(stride, 'stride'))


def _rebuild_tensor_v2(storage: StorageRef, storage_offset: int, size: tuple, stride: tuple, requires_grad: bool,
                       backward_hooks: Any, metadata: Any = None) -> TorchTensorRef:
    if backward_hooks:
        raise UnsafeCheckpointError('a tensor carries backward hooks (code); refusing it')
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: TorchTensorRef, requires_grad: bool, backward_hooks: Any,
                       state: Any = None) -> TorchTensorRef:
    if backward_hooks or state:
        raise UnsafeCheckpointError('a parameter carries backward hooks or extra state; refusing it')
    if not isinstance(data, TorchTensorRef):
        raise UnsafeCheckpointError(f'a parameter wraps {type(data).__name__}, expected a tensor')
    return data


#: Every global a checkpoint may reference, mapped to its inert stand-in.
ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    **{('torch', name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles tensor state dicts only: see :data:`ALLOWED_GLOBALS`; every other global is refused.

    Args:
        file: the pickle stream.
        source: how errors name the checkpoint.
        storages: collects every storage the pickle references, by key.
    """

    def __init__(self, file: BinaryIO, source: str, storages: Optional[Dict[str, StorageRef]] = None) -> None:
        super().__init__(file)
        self.source = source
        self.storages = {} if storages is None else storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f'{self.source}: refusing to load the global {module}.{name} referenced by the pickle; only tensors '
                f'and plain containers are read (nothing from the file was run). If you trust the file, re-save its '
                f'state dict alone (e.g. torch.save(torch.load(path)["state_dict"], new_path)) and convert that') \
                from None

    def persistent_load(self, pid: Any) -> StorageRef:
        # zip: ('storage', type, key, location, numel); legacy: the same plus view metadata (None for a whole storage)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == 'storage'):
            raise UnsafeCheckpointError(f'{self.source}: unsupported persistent object {pid!r:.80} (only tensor '
                                        f'storages are read)')
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, StorageType):
            raise UnsafeCheckpointError(f'{self.source}: storage of unsupported type {storage_type!r}')
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise UnsafeCheckpointError(f'{self.source}: malformed storage record {pid!r:.80}')
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointReadError(f'{self.source}: storage views (PyTorch < 0.4 checkpoints) are not supported')
        ref = self.storages.setdefault(key, StorageRef(key, storage_type, numel))
        if ref != StorageRef(key, storage_type, numel):
            raise CheckpointReadError(f'{self.source}: storage {key!r} is declared twice with different types/sizes')
        return ref


def restricted_load(file: BinaryIO, source: str, storages: Optional[Dict[str, StorageRef]] = None) -> Any:
    """One pickle from ``file`` through :class:`RestrictedUnpickler`; a malformed stream is a CheckpointReadError."""
    try:
        return RestrictedUnpickler(file, source, storages).load()
    except ConversionError:
        raise
    except Exception as err:  # pickle raises UnpicklingError, EOFError, ValueError, ... on malformed input
        raise CheckpointReadError(f'{source}: cannot unpickle (truncated or not a PyTorch checkpoint): '
                                  f'{type(err).__name__}: {err}') from err


def is_torch_file(path: str) -> bool:
    """True for a zip-format or legacy-format ``torch.save`` file (by its first bytes)."""
    with open(path, 'rb') as f:
        head = f.read(len(LEGACY_PREFIX))
    return head.startswith(ZIP_MAGIC) or head == LEGACY_PREFIX


class TorchCheckpoint:
    """A ``torch.save`` file opened without PyTorch: :attr:`obj` is the unpickled object with tensors as
    :class:`TorchTensorRef`; :meth:`read` returns a tensor's values.

    Args:
        path: the ``.pth`` / ``.bin`` / ``.pt`` file.

    Raises:
        UnsafeCheckpointError: the pickle references a global that is not tensor rebuilding or a plain container.
        CheckpointReadError: not a PyTorch file, truncated or malformed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.storages: Dict[str, StorageRef] = {}
        self._zip: Optional[zipfile.ZipFile] = None
        self._root = ''
        self._big_endian = False
        self._offsets: Dict[str, int] = {}  # legacy format: where each storage's bytes start
        with open(path, 'rb') as f:
            head = f.read(len(LEGACY_PREFIX))
        if head.startswith(ZIP_MAGIC):
            self.format = 'zip'
            self.obj = self._open_zip()
        elif head == LEGACY_PREFIX:
            self.format = 'legacy'
            self.obj = self._open_legacy()
        else:
            raise CheckpointReadError(f'{path}: not a PyTorch checkpoint (neither the zip nor the legacy torch.save '
                                      f'format)')

    # -- zip format ------------------------------------------------------------------------------------------------
    def _open_zip(self) -> Any:
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise CheckpointReadError(f'{self.path}: cannot open the torch zip archive (truncated or corrupt?): '
                                      f'{err}') from err
        pickles = [n for n in names if n.count('/') == 1 and n.endswith('/data.pkl')]
        if len(pickles) != 1:
            raise CheckpointReadError(f'{self.path}: a zip file but not a torch checkpoint (expected one '
                                      f'"<root>/data.pkl", found {pickles or "none"})')
        self._root = pickles[0][:-len('data.pkl')]
        if f'{self._root}byteorder' in names:
            self._big_endian = self._zip.read(f'{self._root}byteorder').strip() == b'big'
        data = self._read_member(pickles[0])
        obj = restricted_load(io.BytesIO(data), self.path, self.storages)
        missing = sorted(k for k in self.storages if f'{self._root}data/{k}' not in names)
        if missing:
            raise CheckpointReadError(f'{self.path}: storages {missing[:5]} are referenced but not in the archive')
        return obj

    def _read_member(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
            raise CheckpointReadError(f'{self.path}: cannot read {name!r} from the archive (truncated or corrupt?): '
                                      f'{err}') from err

    # -- legacy format ---------------------------------------------------------------------------------------------
    def _open_legacy(self) -> Any:
        with open(self.path, 'rb') as f:
            magic = restricted_load(f, self.path)
            version = restricted_load(f, self.path)
            sys_info = restricted_load(f, self.path)
            if magic != LEGACY_MAGIC_NUMBER or version != LEGACY_PROTOCOL_VERSION:
                raise CheckpointReadError(f'{self.path}: unsupported legacy torch format (magic {magic!r}, protocol '
                                          f'{version!r})')
            if not isinstance(sys_info, dict) or not sys_info.get('little_endian', False):
                raise CheckpointReadError(f'{self.path}: legacy checkpoint written on a big-endian machine '
                                          f'({sys_info!r:.80}) is not supported')
            obj = restricted_load(f, self.path, self.storages)
            keys = restricted_load(f, self.path)
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise CheckpointReadError(f'{self.path}: malformed storage key list')
            if set(keys) != set(self.storages):
                raise CheckpointReadError(f'{self.path}: the storage key list does not match the storages the '
                                          f'tensors reference')
            size = os.fstat(f.fileno()).st_size
            pos = f.tell()
            for key in keys:
                ref = self.storages[key]
                header = f.read(8)
                if len(header) != 8:
                    raise CheckpointReadError(f'{self.path}: truncated: storage {key!r} is missing')
                (numel, ) = struct.unpack('<q', header)
                if numel != ref.numel:
                    raise CheckpointReadError(f'{self.path}: storage {key!r} holds {numel} elements, the pickle '
                                              f'declares {ref.numel}')
                pos += 8
                self._offsets[key] = pos
                pos += numel * ref.storage_type.itemsize
                if pos > size:
                    raise CheckpointReadError(f'{self.path}: truncated: storage {key!r} ends at byte {pos}, the file '
                                              f'has {size}')
                f.seek(pos)
        return obj

    # -- values ----------------------------------------------------------------------------------------------------
    def _storage_bytes(self, ref: StorageRef) -> bytes:
        nbytes = ref.numel * ref.storage_type.itemsize
        if self._zip is not None:
            data = self._read_member(f'{self._root}data/{ref.key}')
        else:
            with open(self.path, 'rb') as f:
                f.seek(self._offsets[ref.key])
                data = f.read(nbytes)
        if len(data) < nbytes:
            raise CheckpointReadError(f'{self.path}: storage {ref.key!r} has {len(data)} bytes, expected {nbytes}')
        return data[:nbytes]

    def read(self, tensor: TorchTensorRef) -> np.ndarray:
        """The values of ``tensor`` as a new numpy array (bfloat16 widened to float32).

        Raises:
            CheckpointReadError: the view reaches outside its storage, or the storage cannot be read.
        """
        ref = tensor.storage
        shape, stride, offset = tensor.shape, tensor.stride, tensor.offset
        if len(shape) != len(stride) or offset < 0 or any(s < 0 for s in shape) or any(s < 0 for s in stride):
            raise CheckpointReadError(f'{self.path}: malformed tensor view shape={shape} stride={stride} '
                                      f'offset={offset}')
        count = int(np.prod(shape, dtype=np.int64))
        last = offset + sum((n - 1) * s for n, s in zip(shape, stride)) if count else offset - 1
        if last >= ref.numel:
            raise CheckpointReadError(f'{self.path}: tensor view (shape {shape}, stride {stride}, offset {offset}) '
                                      f'reaches outside its storage of {ref.numel} elements')
        dtype = ref.storage_type.dtype
        raw_dtype = np.dtype('uint16' if dtype == 'bfloat16' else dtype)
        if self._big_endian:
            raw_dtype = raw_dtype.newbyteorder('>')
        flat = np.frombuffer(self._storage_bytes(ref), dtype=raw_dtype, count=ref.numel)
        if count == 0:
            values = np.zeros(shape, raw_dtype)
        else:
            values = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape,
                                                     strides=[s * raw_dtype.itemsize for s in stride])
        values = np.array(values, dtype=raw_dtype.newbyteorder('='))
        if dtype == 'bfloat16':
            values = (values.astype(np.uint32) << 16).view(np.float32)
        return values


def find_tensors(obj: Any) -> Dict[str, TorchTensorRef]:
    """The tensors of a flat ``{name: tensor}`` mapping (non-tensor values are left out)."""
    if not isinstance(obj, Mapping):
        return {}
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, TorchTensorRef)}


#: Top-level keys under which training frameworks store the model's state dict (mmengine/mmcv, other tools).
STATE_DICT_KEYS = ('state_dict', 'model', 'module')


class TorchStateDictReader:
    """:class:`~effnet_mm.converters.tf_reader.TensorReader` over the state dict of a PyTorch checkpoint.

    The state dict is the file's top-level mapping when that holds tensors, else the one under ``state_dict``
    (mmengine, mmcv), ``model`` or ``module``; the other top-level entries (``meta``, ``optimizer``...) are listed in
    :attr:`ignored`.  A ``module.`` prefix on every key (``DistributedDataParallel``) is removed.

    Args:
        path: the checkpoint file.
    """

    def __init__(self, path: str) -> None:
        self.label = path
        self.checkpoint = TorchCheckpoint(path)
        obj = self.checkpoint.obj
        if not isinstance(obj, Mapping):
            raise CheckpointReadError(f'{path}: the file holds a {type(obj).__name__}, expected a state dict (tensors '
                                      f'by name)')
        container, outer = obj, None
        if not find_tensors(obj):
            outer = next((key for key in STATE_DICT_KEYS if find_tensors(obj.get(key))), None)
            container = obj[outer] if outer else obj
        tensors = find_tensors(container)
        if not tensors:
            raise CheckpointReadError(f'{path}: no state dict found: the file holds a mapping with keys '
                                      f'{sorted(map(str, obj))[:8]}, expected tensors by name at the top level or '
                                      f'under one of {list(STATE_DICT_KEYS)}')
        self.ignored = [f'{k} (top-level entry, not weights)' for k in obj if outer and k != outer]
        self.ignored += [f'{k} (not a tensor)' for k in container if k not in tensors]
        if all(k.startswith('module.') for k in tensors):
            tensors = {k[len('module.'):]: v for k, v in tensors.items()}
        self._tensors = tensors

    def shapes(self) -> Dict[str, Shape]:
        return {name: tuple(ref.shape) for name, ref in self._tensors.items()}

    def read(self, name: str) -> np.ndarray:
        if name not in self._tensors:
            raise CheckpointReadError(f'{self.label} has no tensor {name!r}')
        return self.checkpoint.read(self._tensors[name])
