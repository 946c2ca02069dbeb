"""Model-level switch between the fast CPU kernels and MindSpore's own ops (e.g. for MindIR/ONNX export)."""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator

from mindspore import nn


def _switchable(model: nn.Cell) -> Iterator[nn.Cell]:
    # Duck-typed (any cell with ``enable_fast_conv``) so this module does not import the model package.
    for _, cell in model.cells_and_names():
        if callable(getattr(cell, 'enable_fast_conv', None)) and hasattr(cell, 'fast_conv'):
            yield cell


def set_fast_conv(model: nn.Cell, enabled: bool) -> int:
    """Switch every fast-kernel layer of ``model`` (``Conv2dSame``, the SE ``SpatialMean``) to the custom kernels
    (``True``) or to MindSpore's own ops (``False``).

    Parameters, their names and the outputs stay the same, so this can be done at any time, e.g. before
    ``ms.export(..., file_format='MINDIR')`` or ``ms.onnx.export`` (which cannot carry custom AOT ops).  Already
    compiled ``ms.jit`` graphs keep the kernels they were compiled with.

    Returns:
        The number of layers that now run the fast kernels.
    """
    return sum(bool(cell.enable_fast_conv(enabled)) for cell in _switchable(model))


@contextlib.contextmanager
def fast_conv_disabled(model: nn.Cell) -> Iterator[nn.Cell]:
    """Context manager running ``model`` on MindSpore's own ops, restoring each layer's previous path on exit.

    Example::

        with fast_conv_disabled(model):
            ms.export(model, dummy, file_name='b0', file_format='MINDIR')
    """
    previous: Dict[int, bool] = {id(cell): bool(cell.fast_conv) for cell in _switchable(model)}
    set_fast_conv(model, False)
    try:
        yield model
    finally:
        for cell in _switchable(model):
            if previous.get(id(cell)):
                cell.enable_fast_conv(True)
