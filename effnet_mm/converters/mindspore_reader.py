"""MindSpore ``.ckpt`` files (MindCV, the MindSpore model zoo, effnet_mm itself) read through MindSpore."""
from __future__ import annotations

from typing import Dict

import numpy as np

from .errors import CheckpointReadError
from .layouts import Shape


class MindSporeCkptReader:
    """:class:`~effnet_mm.converters.tf_reader.TensorReader` over a MindSpore checkpoint.

    Non-tensor entries (strings appended by ``save_checkpoint(append_dict=...)``) are listed in :attr:`ignored`;
    effnet_mm's own metadata (``__meta__.*``) is in :attr:`meta`.

    Raises:
        CheckpointReadError: missing, truncated or not a MindSpore checkpoint.
    """

    def __init__(self, path: str) -> None:
        from effnet_mm.utils import load_checkpoint

        self.label = path
        try:
            entries, self.meta = load_checkpoint(path)
        except (FileNotFoundError, ValueError) as err:
            raise CheckpointReadError(f'{path}: {err}') from err
        self._params = {name: value for name, value in entries.items() if hasattr(value, 'asnumpy')}
        self.ignored = [f'{name} (not a tensor)' for name in entries if name not in self._params]

    def shapes(self) -> Dict[str, Shape]:
        return {name: tuple(int(d) for d in value.shape) for name, value in self._params.items()}

    def read(self, name: str) -> np.ndarray:
        if name not in self._params:
            raise CheckpointReadError(f'{self.label} has no tensor {name!r}')
        return self._params[name].asnumpy()
