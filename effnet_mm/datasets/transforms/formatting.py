"""Packing a results dict into what the loader ships."""
from __future__ import annotations

import numpy as np

from effnet_mm.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackInputs:
    """Turn results into ``{'inputs': CHW uint8 contiguous array, 'gt_label': int, 'sample_idx': int}``.

    The last transform of every pipeline.  Images stay uint8 (normalisation happens in the model's data
    preprocessor), so batches cost a quarter of the host memory of float32.

    Example config::

        dict(type='PackInputs')

    Args:
        input_key: results key holding the HWC image.
    """

    def __init__(self, input_key: str = 'img') -> None:
        self.input_key = input_key

    def __call__(self, results: dict) -> dict:
        img = results[self.input_key]
        if img.ndim == 2:
            img = img[:, :, None]
        if img.dtype != np.uint8:
            img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return {
            'inputs': np.ascontiguousarray(img.transpose(2, 0, 1)),
            'gt_label': int(results.get('gt_label', -1)),
            'sample_idx': int(results.get('sample_idx', -1)),
        }

    def __repr__(self) -> str:
        return f'{type(self).__name__}(input_key={self.input_key!r})'
