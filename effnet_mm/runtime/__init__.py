"""The shared bottom layer of every entry point (runner, APIs, tools, converters).

* :mod:`.config` — read a config (+ ``--cfg-options``), the work-dir rule;
* :mod:`.config_check` — config errors that name the file, and strict keys (typos, unknown hook arguments);
* :mod:`.model` — build the classifier of a config (the top-level ``data_preprocessor`` rule lives here);
* :mod:`.weights` — load checkpoint tensors into a model (strict, fine-tuning, EMA ``online.`` weights) and the
  names of training-state entries;
* :mod:`.dist` — device selection and the msrun process group;
* :mod:`.cli` — the argument, error and exit-status policy of ``tools/``.

Nothing here imports :mod:`effnet_mm.engine` or :mod:`effnet_mm.apis`; they import this.  The package itself
imports no MindSpore (``weights`` and ``dist`` do, when imported), so tools can parse arguments first.
"""
from .config import load_config, resolve_work_dir, to_plain
from .model import build_classifier, model_cfg_with_preprocessor

__all__ = ['build_classifier', 'load_config', 'model_cfg_with_preprocessor', 'resolve_work_dir', 'to_plain']
