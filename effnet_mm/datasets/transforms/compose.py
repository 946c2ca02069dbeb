"""A pipeline: a list of transforms applied in order."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from effnet_mm.registry import TRANSFORMS


class Compose:
    """Apply transforms in order; a transform returning None stops the pipeline and the result is None.

    Example::

        pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='PackInputs')])
        packed = pipeline(dict(img_path='a.png', gt_label=0, sample_idx=0))

    Args:
        transforms: transform configs (``dict(type=...)``, built from ``TRANSFORMS``) or callables.
    """

    def __init__(self, transforms: Optional[Sequence[Union[dict, Callable]]] = None) -> None:
        self.transforms = []
        for t in transforms or ():
            if isinstance(t, dict):
                t = TRANSFORMS.build(t)
            if not callable(t):
                raise TypeError(f'pipeline entries must be dicts or callables, got {type(t).__name__}: {t!r}')
            self.transforms.append(t)

    def __call__(self, results: dict) -> Optional[dict]:
        for t in self.transforms:
            results = t(results)
            if results is None:
                return None
        return results

    def __repr__(self) -> str:
        inner = ''.join(f'\n    {t!r},' for t in self.transforms)
        return f'{type(self).__name__}([{inner}\n])'
