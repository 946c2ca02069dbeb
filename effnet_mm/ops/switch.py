"""Model-level switch between the CPU kernels and MindSpore's own ops (e.g. for MindIR/ONNX export)."""
from __future__ import annotations

import contextlib
import warnings
from typing import Dict, Iterator

from mindspore import nn


def _switchable(model: nn.Cell) -> Iterator[nn.Cell]:
    # Duck-typed (any cell with ``enable_kernel``) so this module does not import the model package.
    for _, cell in model.cells_and_names():
        if callable(getattr(cell, 'enable_kernel', None)) and hasattr(cell, 'use_kernel'):
            yield cell


def set_kernels(model: nn.Cell, enabled: bool) -> int:
    """Switch every kernel layer of ``model`` (k x k ``Conv2dSame``, ``BatchNormAct2d``, ``SiLU``, ``SpatialMean``,
    ``SigmoidGate``, ``Normalize``) to the CPU kernels (``True``) or to MindSpore's own ops (``False``).

    Parameters, their names and the outputs stay the same, so this can be done at any time, e.g. before
    ``ms.export(..., file_format='MINDIR')`` or ``ms.onnx.export`` (which cannot carry custom AOT ops).  Already
    compiled ``ms.jit`` graphs keep the kernels they were compiled with.

    Returns:
        The number of layers that now run kernels.
    """
    return sum(bool(cell.enable_kernel(enabled)) for cell in _switchable(model))


@contextlib.contextmanager
def kernels_disabled(model: nn.Cell) -> Iterator[nn.Cell]:
    """Context manager running ``model`` on MindSpore's own ops, restoring each layer's previous path on exit.

    Example::

        with kernels_disabled(model):
            ms.export(model, dummy, file_name='b0', file_format='MINDIR')
    """
    previous: Dict[int, bool] = {id(cell): bool(cell.use_kernel) for cell in _switchable(model)}
    set_kernels(model, False)
    try:
        yield model
    finally:
        for cell in _switchable(model):
            if previous.get(id(cell)):
                cell.enable_kernel(True)


def set_fast_conv(model: nn.Cell, enabled: bool) -> int:
    """Deprecated name of :func:`set_kernels` (it always switched every kernel, not only convolutions)."""
    warnings.warn('set_fast_conv() is deprecated; use effnet_mm.ops.set_kernels()', DeprecationWarning, stacklevel=2)
    return set_kernels(model, enabled)


def fast_conv_disabled(model: nn.Cell) -> contextlib.AbstractContextManager:
    """Deprecated name of :func:`kernels_disabled`."""
    warnings.warn('fast_conv_disabled() is deprecated; use effnet_mm.ops.kernels_disabled()', DeprecationWarning,
                  stacklevel=2)
    return kernels_disabled(model)
