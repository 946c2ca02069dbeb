"""Data-parallel helpers over ``mindspore.communication`` (msrun launcher), usable without a launcher too."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

LAUNCHERS = ('none', 'msrun')
DEVICES = ('CPU', 'GPU', 'Ascend')
_DEVICE_ALIASES = {'cpu': 'CPU', 'gpu': 'GPU', 'cuda': 'GPU', 'ascend': 'Ascend', 'npu': 'Ascend'}
_initialised = False


def refuse_graph_compile_cache() -> None:
    """Stop if MindSpore's graph compile cache is on (``MS_COMPILER_CACHE_ENABLE``, or the deprecated context flag).

    The cache keys a compiled graph on the Python sources, not on the values a config puts into the graph: measured
    with MindSpore 2.10, a second run with another number of classes or another constant reused the first run's
    graph and returned its output shape and values.  effnet_mm builds every model from configs, so a cache hit can
    silently compute a different model (docs/distributed.md).
    """
    value = os.environ.get('MS_COMPILER_CACHE_ENABLE', '').strip()
    if value not in ('', '0'):
        raise RuntimeError(f'MS_COMPILER_CACHE_ENABLE={value}: MindSpore\'s graph compile cache reuses graphs compiled '
                           'for another config (it checks only the Python sources), so results could come from a '
                           'different model; unset it (docs/distributed.md)')
    import mindspore as ms

    if ms.get_context('enable_compile_cache'):
        raise RuntimeError('mindspore.set_context(enable_compile_cache=True): MindSpore\'s graph compile cache reuses '
                           'graphs compiled for another config; turn it off (docs/distributed.md)')


def select_device(device: Optional[str]) -> None:
    """Run on ``device``: ``'CPU'``, ``'GPU'`` or ``'Ascend'`` (also ``cpu``/``cuda``/``npu``), optionally ``':<id>'``.

    None keeps MindSpore's default for the installed wheel.  Must happen before :func:`init_dist`: the collective
    backend (mccl, nccl, hccl) follows the device.  Every entry point (runner, tools, ``init_model``) starts here, so
    this is also where a graph compile cache is refused (:func:`refuse_graph_compile_cache`).
    """
    refuse_graph_compile_cache()
    if device is None:
        return
    name, _, index = str(device).partition(':')
    target = _DEVICE_ALIASES.get(name.lower())
    if target is None or (index and not index.isdigit()):
        raise ValueError(f'device must be one of {DEVICES} (optionally ":<id>"), got {device!r}')
    import mindspore as ms

    current = ms.get_context('device_target')
    if _initialised and current != target:
        raise ValueError(f'device {device!r} requested after the process group started on {current!r}; '
                         f'pass --device {target} on the command line instead')
    if index:
        ms.set_device(target, int(index))
    elif current != target:
        ms.set_device(target)


def init_dist(launcher: str) -> None:
    """Join the process group of ``launcher``; must be the FIRST thing a script does.

    msrun also runs the script in its scheduler process, where ``init()`` never returns: nothing with side effects
    (work dirs, logs) may run before this call.
    """
    global _initialised
    if launcher not in LAUNCHERS:
        raise ValueError(f'--launcher must be one of {LAUNCHERS}, got {launcher!r}')
    if launcher == 'none' or _initialised:
        return
    from mindspore.communication import init

    init()
    _initialised = True


def is_distributed() -> bool:
    """True after :func:`init_dist` joined a group of more than one process."""
    return _initialised and get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 without a launcher)."""
    if not _initialised:
        return int(os.environ.get('RANK_ID', 0)) if os.environ.get('MS_ROLE') == 'MS_WORKER' else 0
    from mindspore.communication import get_rank as _get_rank

    return int(_get_rank())


def get_world_size() -> int:
    """Number of data-parallel processes (1 without a launcher)."""
    if not _initialised:
        return 1
    from mindspore.communication import get_group_size

    return int(get_group_size())


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Sum a float array over all ranks (identity without a process group)."""
    if not is_distributed():
        return values
    import mindspore as ms
    from mindspore import ops

    return ops.AllReduce()(ms.Tensor(np.asarray(values, np.float32))).asnumpy().astype(np.float64)
