"""Copying checkpoint tensors into parameters, with the checks that make fine-tuning and resuming safe."""
from __future__ import annotations

from typing import Iterable, List, Mapping, Optional

import numpy as np
from mindspore import Parameter

from .param_io import write_params


def _as_array(value: object) -> np.ndarray:
    return value.asnumpy() if hasattr(value, 'asnumpy') else np.asarray(value)


def assign_params(params: Iterable[Parameter],
                  state: Mapping[str, object],
                  source: str,
                  skip_mismatched_prefix: Optional[str] = None,
                  logger=None) -> List[str]:
    """Copy ``state[p.name]`` into every parameter ``p``; all must be present with the same shape.

    Args:
        params: the parameters to fill.
        state: tensors by name (extra entries are ignored).
        source: where ``state`` comes from, for error messages (a checkpoint path).
        skip_mismatched_prefix: parameters under this prefix whose shape differs are left as they are with a warning
            (fine-tuning a classifier with another number of classes: ``'head.'``).
        logger: receives the warning.

    Returns:
        The names of the skipped parameters.

    Raises:
        KeyError: listing every missing or mismatched parameter.
    """
    missing, mismatched, skipped = [], [], []
    updates = []
    for param in params:
        if param.name not in state:
            missing.append(param.name)
            continue
        value = _as_array(state[param.name])
        if tuple(value.shape) != tuple(param.shape):
            if skip_mismatched_prefix and param.name.startswith(skip_mismatched_prefix):
                skipped.append(f'{param.name}: checkpoint {tuple(value.shape)} vs model {tuple(param.shape)}')
                continue
            mismatched.append(f'{param.name}: checkpoint {tuple(value.shape)} vs model {tuple(param.shape)}')
            continue
        updates.append((param, value))
    if missing or mismatched:
        lines = [f'{source} does not match the model:']
        if missing:
            lines.append(f'  missing {len(missing)} parameters: {", ".join(missing[:20])}'
                         + (' ...' if len(missing) > 20 else ''))
        if mismatched:
            lines.append(f'  shape mismatch in {len(mismatched)} parameters: {"; ".join(mismatched[:20])}'
                         + (' ...' if len(mismatched) > 20 else ''))
        raise KeyError('\n'.join(lines))
    write_params([p for p, _ in updates], [v for _, v in updates])
    if skipped and logger is not None:
        logger.warning(f'{source}: not loading {len(skipped)} parameters whose shapes differ (new head): '
                       + '; '.join(skipped))
    return skipped
