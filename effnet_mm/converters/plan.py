"""A conversion decided from tensor shapes alone (:class:`ConversionPlan`), then executed (:func:`read_converted`).

Every converter (TF and the other families) plans first: which checkpoint tensor feeds which parameter, which
entries are training state or never used by the source, and whether anything is missing, left over or mis-shaped,
so that nothing is read, and nothing written, for a checkpoint that cannot convert.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ConversionError
from .layouts import to_target
from .tf_names import TensorMapping
from .tf_reader import TensorReader


@dataclass(frozen=True)
class PlannedTensor:
    """A mapping with the checkpoint tensor chosen for it (for TF: the EMA shadow or the raw variable)."""

    mapping: TensorMapping
    tensor: str
    is_ema: bool = False


@dataclass
class ConversionPlan:
    """Everything decided before a single value is read.

    Attributes:
        arch: variant name (``'b0'`` ...).
        scope: TF variable scope (``'efficientnet-b0'``; empty for other sources).
        use_ema: EMA shadows were requested (TF).
        tensors: the tensors to convert, in model order.
        omitted: source tensors deliberately left out (the classifier when ``num_classes`` differs).
        ignored: checkpoint entries that are training state, not weights (step counters, optimizer slots).
        raw_fallbacks: TF variables converted from raw values although EMA was requested (no shadow).
        unused: tensors the source stores but its own forward pass never uses (dropped).
        num_classes: classes of the converted classifier (None when it is left out).
    """

    arch: str
    scope: str
    use_ema: bool
    tensors: List[PlannedTensor]
    omitted: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)
    raw_fallbacks: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    num_classes: Optional[int] = None

    @property
    def weights(self) -> str:
        """``'ema'``, ``'raw'`` or ``'mixed'``: which values the converted tensors hold."""
        kinds = {t.is_ema for t in self.tensors}
        return 'mixed' if len(kinds) > 1 else ('ema' if True in kinds else 'raw')

    @property
    def num_params(self) -> int:
        return int(sum(np.prod(t.mapping.target_shape, dtype=np.int64) for t in self.tensors))


def raise_problems(source: str, what: str, problems: Sequence[Tuple[str, Sequence[str]]]) -> None:
    """Raise one :class:`ConversionError` listing every non-empty ``(title, items)`` problem, if any."""
    parts = [f'{len(items)} {title}:\n  ' + '\n  '.join(items) for title, items in problems if items]
    if parts:
        raise ConversionError(f'{source} does not match {what}:\n' + '\n'.join(parts))


def read_converted(plan: ConversionPlan,
                   reader: TensorReader,
                   progress: Optional[Callable[[Iterator], Iterator]] = None) -> Dict[str, np.ndarray]:
    """Read every planned tensor and convert it to MindSpore's layout (float32, C-contiguous).

    Args:
        plan: from the planning step.
        reader: the checkpoint the plan was made from.
        progress: optional wrapper of the tensor iterator (e.g. a progress bar).

    Raises:
        CheckpointReadError: a tensor cannot be read (truncated or corrupt data file).
        ConversionError: a tensor is not floating point or does not have its declared shape.
    """
    params: Dict[str, np.ndarray] = {}
    items = iter(plan.tensors)
    for planned in (progress(items) if progress else items):
        value = reader.read(planned.tensor)
        if not np.issubdtype(value.dtype, np.floating):
            raise ConversionError(f'Tensor {planned.tensor!r} has dtype {value.dtype}, expected floating point')
        if tuple(value.shape) != planned.mapping.source_shape:
            raise ConversionError(f'Tensor {planned.tensor!r} read with shape {list(value.shape)}, its index '
                                  f'declares {list(planned.mapping.source_shape)}')
        params[planned.mapping.target] = to_target(planned.mapping.layout, value)
    return params
