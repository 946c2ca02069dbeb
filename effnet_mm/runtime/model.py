"""Config → classifier: the one place where a model is built from a config."""
from __future__ import annotations

import contextlib

from mmengine.config import Config

from effnet_mm.registry import MODELS

from .config import to_plain


def model_cfg_with_preprocessor(cfg: Config) -> dict:
    """``cfg.model`` as a plain dict, with a top-level ``data_preprocessor`` copied in when the model has none.

    That is what mmengine's Runner does, so a config that sets only the top-level ``data_preprocessor``
    (``..._8xb32-01norm_in1k.py``) normalises the same way in training, evaluation, inference and export.
    """
    if 'model' not in cfg:
        raise KeyError(f'config {cfg.filename or "<in memory>"} has no "model" key')
    model_cfg = to_plain(cfg.model)
    top = cfg.get('data_preprocessor')
    if top is not None and model_cfg.get('data_preprocessor') is None:
        model_cfg['data_preprocessor'] = to_plain(top)
    return model_cfg


def build_classifier(cfg: Config, init_weights: bool = True):
    """Build ``cfg.model`` (plus the top-level ``data_preprocessor``) through ``effnet_mm.registry.MODELS``.

    Args:
        cfg: a loaded config.
        init_weights: False skips parameter initialisation (MindSpore ``no_init_parameters``): the model has
            the right structure, names and shapes but no values, which is enough for counting parameters/FLOPs
            and builds a B7/L2 in about a second.
    """
    context = contextlib.nullcontext()
    if not init_weights:
        from mindspore.nn.utils import no_init_parameters
        context = no_init_parameters()
    with context:
        return MODELS.build(model_cfg_with_preprocessor(cfg))
