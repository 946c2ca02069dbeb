"""Scalar logging backends (mmengine's ``LocalVisBackend`` imports torch, so this is a dependency-free twin)."""
from __future__ import annotations

import json
import os
from typing import Mapping

from effnet_mm.registry import VISBACKENDS


@VISBACKENDS.register_module()
class LocalVisBackend:
    """Writes ``<save_dir>/scalars.json`` (one JSON object per line) and ``<save_dir>/config.py`` like mmengine.

    Example config::

        vis_backends = [dict(type='LocalVisBackend')]

    Args:
        save_dir: directory of the files (the runner passes ``<work_dir>/<timestamp>/vis_data``).
        scalar_save_file: file name of the scalars.
        config_save_file: file name of the dumped config.
    """

    def __init__(self, save_dir: str, scalar_save_file: str = 'scalars.json',
                 config_save_file: str = 'config.py') -> None:
        self.save_dir = save_dir
        os.makedirs(save_dir, exist_ok=True)
        self.scalar_path = os.path.join(save_dir, scalar_save_file)
        self.config_path = os.path.join(save_dir, config_save_file)

    def add_config(self, config_text: str) -> None:
        """Save the (final, merged) config text."""
        with open(self.config_path, 'w', encoding='utf-8') as f:
            f.write(config_text)

    def add_scalars(self, scalars: Mapping[str, object], step: int) -> None:
        """Append one line ``{...scalars, "step": step}``; flushed at once so a killed run keeps its history."""
        record = {k: (v if isinstance(v, (int, str)) else float(v)) for k, v in scalars.items()}
        record['step'] = int(step)
        with open(self.scalar_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record) + '\n')
