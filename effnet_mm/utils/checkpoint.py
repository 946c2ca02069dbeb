"""Weights-only MindSpore checkpoints written atomically, with string metadata.

``mindspore.save_checkpoint`` deletes the old file before writing the new one, so a crash mid-save loses both:
:func:`save_checkpoint` writes through :func:`effnet_mm.utils.fileio.atomic_write` instead, so readers see either
the old complete file or the new complete file, never a partial one.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple, Union

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn

from .fileio import atomic_write

#: Prefix of the metadata entries stored beside the tensors.
META_PREFIX = '__meta__.'

ParamSource = Union[nn.Cell, Mapping[str, Union[Parameter, Tensor, np.ndarray]]]


def _as_entries(params: ParamSource) -> list:
    if isinstance(params, nn.Cell):
        items = [(p.name, p) for p in params.get_parameters()]
    else:
        items = list(params.items())
    entries = []
    for name, value in items:
        if isinstance(value, Parameter):
            value = Tensor(value.asnumpy())
        elif isinstance(value, np.ndarray):
            value = Tensor(value)
        elif not isinstance(value, Tensor):
            raise TypeError(f'save_checkpoint: entry {name!r} is a {type(value).__name__}, expected a Parameter, '
                            f'Tensor or numpy array')
        entries.append({'name': name, 'data': value})
    return entries


def save_checkpoint(params: ParamSource, path: str, meta: Optional[Mapping[str, object]] = None,
                    overwrite: bool = True) -> str:
    """Atomically write ``params`` (a cell or a name → tensor mapping) and string ``meta`` to ``path``.

    Args:
        params: a cell (all its parameters, BN statistics included) or a mapping of names to tensors/arrays.
        path: destination file; must end with ``.ckpt``.
        meta: small metadata; values are stored as strings (exact, unlike MindSpore's float scalars).
        overwrite: replace an existing ``path``; False raises ``FileExistsError`` (see ``atomic_write``).

    Returns:
        ``path``.
    """
    if not path.endswith('.ckpt'):
        raise ValueError(f'save_checkpoint: {path!r} must end with ".ckpt"')
    entries = _as_entries(params)
    append = {f'{META_PREFIX}{k}': str(v) for k, v in (meta or {}).items()}
    with atomic_write(path, overwrite=overwrite) as tmp:
        ms.save_checkpoint(entries, tmp, append_dict=append or None)
    return path


def load_checkpoint(path: str) -> Tuple[Dict[str, Parameter], Dict[str, str]]:
    """Read a checkpoint written by :func:`save_checkpoint` (or any MindSpore ``.ckpt``).

    Returns:
        ``(params, meta)``: the tensors by name and the metadata strings.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable MindSpore checkpoint (e.g. truncated).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path!r} does not exist')
    try:
        raw = ms.load_checkpoint(path)
    except ValueError as err:
        raise ValueError(f'Checkpoint {path!r} cannot be read (truncated or not a MindSpore checkpoint): {err}') \
            from err
    params: Dict[str, Parameter] = {}
    meta: Dict[str, str] = {}
    for name, value in raw.items():
        if name.startswith(META_PREFIX):
            meta[name[len(META_PREFIX):]] = value if isinstance(value, str) else str(value)
        else:
            params[name] = value
    return params, meta
