"""Tensor layouts of the checkpoint sources, and the one place that turns them into effnet_mm's and back.

effnet_mm stores conv kernels OIHW (depthwise ``(C, 1, k, k)``), dense weights ``[out, in]`` and vectors as 1-d
arrays, like PyTorch and MindSpore.  A source tensor differs from that only by an axis order (TensorFlow) or by a
reshape (the MindSpore model zoo keeps conv biases as ``(1, C, 1, 1)``).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

Shape = Tuple[int, ...]

#: Axes that turn a source layout into ours: ``ours = np.transpose(value, AXES[layout])``; None: same layout.
LAYOUT_AXES: Dict[str, Optional[Tuple[int, ...]]] = {
    'conv': (3, 2, 0, 1),  # TF HWIO → OIHW
    'depthwise': (2, 3, 0, 1),  # TF H W C 1 → C 1 H W (MindSpore grouped conv with groups == C)
    'dense': (1, 0),  # TF [in, out] → [out, in]
    'vector': None,  # biases and BN statistics
    'same': None,  # PyTorch / MindSpore tensors: already our layout
}
#: Layouts that only reshape: a vector stored with singleton axes around it (``(1, C, 1, 1)``).
BIAS_4D = 'bias_4d'
LAYOUTS = tuple(LAYOUT_AXES) + (BIAS_4D, )


def source_shape(layout: str, target_shape: Shape) -> Shape:
    """The shape a source tensor of ``layout`` must have to become a tensor of ``target_shape``."""
    if layout == BIAS_4D:
        return (1, ) + tuple(target_shape) + (1, 1)
    axes = LAYOUT_AXES[layout]
    if axes is None:
        return tuple(target_shape)
    shape = [0] * len(axes)
    for ours, theirs in enumerate(axes):
        shape[theirs] = target_shape[ours]
    return tuple(shape)


def to_target(layout: str, value: np.ndarray) -> np.ndarray:
    """``value`` (source layout) in effnet_mm's layout, as a C-contiguous float32 array."""
    if layout == BIAS_4D:
        value = np.reshape(value, (-1, ))
    else:
        axes = LAYOUT_AXES[layout]
        if axes is not None:
            value = np.transpose(value, axes)
    return np.ascontiguousarray(value, dtype=np.float32)


def to_source(layout: str, value: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_target` (for export), C-contiguous, dtype kept."""
    if layout == BIAS_4D:
        return np.ascontiguousarray(np.reshape(value, source_shape(layout, value.shape)))
    axes = LAYOUT_AXES[layout]
    if axes is not None:
        value = np.transpose(value, np.argsort(axes))
    return np.ascontiguousarray(value)
