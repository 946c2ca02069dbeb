"""Mixed precision (fp16) for the training graph.

``O2`` is MindSpore's ``auto_mixed_precision`` (network in fp16, BatchNorm kept in fp32).  MindSpore's own ``O1``
rewrites the network's source into ``./rewritten_network`` and fails on packages with relative imports, so ``O1``
here is a white list applied in place: convolutions and dense layers compute in fp16, every other leaf cell in
fp32 (their inputs are cast back), which keeps parameter names unchanged.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import amp, nn

AMP_LEVELS = ('O1', 'O2')


def _is_matmul_cell(cell: nn.Cell) -> bool:
    from effnet_mm.models.layers import Conv2dSame

    return isinstance(cell, (nn.Conv2d, nn.Dense, Conv2dSame))


def apply_amp(loss_cell: nn.Cell, level: str) -> nn.Cell:
    """Return ``loss_cell`` set up for fp16 at ``level`` (``'O1'`` or ``'O2'``); parameters stay fp32."""
    if level == 'O2':
        return amp.auto_mixed_precision(loss_cell, 'O2', dtype=ms.float16)
    if level == 'O1':
        for _, cell in loss_cell.cells_and_names():
            if _is_matmul_cell(cell):
                cell.to_float(ms.float16)
            elif not list(cell.cells()):
                cell.to_float(ms.float32)
        return loss_cell
    raise ValueError(f'optim_wrapper.level must be one of {AMP_LEVELS}, got {level!r}')
