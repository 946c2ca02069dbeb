"""Build a classifier from a config and load its weights: :func:`init_model`."""
from __future__ import annotations

import contextlib
import copy
import logging
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import Config, ConfigDict

from effnet_mm.registry import MODELS

logger = logging.getLogger(__name__)

ConfigLike = Union[str, Config]

#: Checkpoint entries that are training state, not evaluation weights (runner checkpoints hold them beside the model):
#: the slots of the runner's optimizers (RMSProp ``moment``/``mean_square``, SGD ``moments``, AdamW
#: ``adam_m``/``adam_v``), the loss scaler and, with ``EMAHook``, the raw training weights ``online.<param>`` (the
#: plain names hold the EMA averages).
ONLINE_PREFIX = 'online.'
TRAINING_STATE_PREFIXES: Tuple[str, ...] = (ONLINE_PREFIX, 'moment.', 'mean_square.', 'moments.', 'adam_m.',
                                            'adam_v.', 'loss_scaler.')
#: The optimizers' step and learning-rate counters.
TRAINING_STATE_NAMES: Tuple[str, ...] = ('global_step', 'learning_rate')


def load_config(config: ConfigLike, cfg_options: Optional[Mapping[str, object]] = None) -> Config:
    """A :class:`mmengine.Config` from a file path (or a copy of a Config), with ``cfg_options`` merged in and the
    result checked by :func:`effnet_mm.runtime.config_check.check_config`.

    Args:
        config: config file path or :class:`~mmengine.config.Config`.
        cfg_options: ``{'dotted.key': value}`` overrides, as ``--cfg-options`` gives them.
    """
    from effnet_mm.runtime.config_check import check_config, read_config

    if isinstance(config, str):
        cfg = read_config(config)
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got {type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    check_config(cfg)
    return cfg


def _plain(value: object) -> object:
    """ConfigDict/tuple trees → plain dicts/lists (the registry builds from plain dicts)."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def model_cfg_with_preprocessor(cfg: Config) -> dict:
    """``cfg.model`` as a plain dict, with a top-level ``data_preprocessor`` copied in when the model has none.

    That is what mmengine's Runner does, so a config that sets only the top-level ``data_preprocessor``
    (``..._8xb32-01norm_in1k.py``) normalises the same way in training, evaluation, inference and export.
    """
    if 'model' not in cfg:
        raise KeyError(f'config {cfg.filename or "<in memory>"} has no "model" key')
    model_cfg = _plain(cfg.model)
    top = cfg.get('data_preprocessor')
    if top is not None and model_cfg.get('data_preprocessor') is None:
        model_cfg['data_preprocessor'] = _plain(top)
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


def _dataset_cfg(cfg: Config) -> Optional[Mapping]:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, Mapping) and isinstance(loader.get('dataset'), Mapping):
            return loader['dataset']
    return None


def class_names_from_cfg(cfg: Config) -> Optional[Tuple[str, ...]]:
    """Class names the config declares: ``dataset.metainfo.classes`` or ``dataset.classes`` of the test (else val)
    dataloader, as a list or a text file with one name per line; None when it declares none.

    ImageNet's 1000 class names are not shipped with effnet_mm (nothing is downloaded), so ImageNet configs give
    None and predictions are named by their index (``'281'``).
    """
    from effnet_mm.datasets.base_dataset import read_classes

    dataset = _dataset_cfg(cfg)
    if dataset is None:
        return None
    metainfo = dataset.get('metainfo') or {}
    classes = metainfo.get('classes') if isinstance(metainfo, Mapping) else None
    if classes is None:
        classes = dataset.get('classes')
    if classes is None:
        return None
    return read_classes(classes if isinstance(classes, str) else list(classes))


def _format_names(names: Sequence[str], limit: int = 10) -> str:
    shown = ', '.join(names[:limit])
    return shown + (f' ... ({len(names)} in total)' if len(names) > limit else '')


def _is_training_state(name: str) -> bool:
    return name in TRAINING_STATE_NAMES or name.startswith(TRAINING_STATE_PREFIXES)


def _mismatch_hint(model, state: Mapping, meta: Mapping[str, str], prefix: str, missing: Sequence[str],
                   mismatched: Sequence[str]) -> str:
    """The likely cause of a failed load, for the error message."""
    head_only = not missing and all(m.startswith(f'{prefix}head.') for m in mismatched)
    fc = state.get(f'{prefix}head.fc.bias')
    if head_only and fc is not None:
        return (f'  The checkpoint classifies {int(fc.shape[0])} classes: set model.head.num_classes='
                f'{int(fc.shape[0])} (or load it as a pretrained backbone with load_from=... for fine-tuning).')
    arch = getattr(getattr(model, 'backbone', None), 'arch', None)
    saved = f' (its metadata says arch={meta["arch"]!r})' if meta.get('arch') else ''
    return f'  The checkpoint is probably of another variant than the config\'s arch={arch!r}{saved}.'


def load_model_weights(model, checkpoint: str, online: bool = False) -> Dict[str, str]:
    """Copy every parameter of ``model`` from ``checkpoint`` (a weights-only or a runner training checkpoint).

    Every model parameter must be present with the same shape; otherwise nothing is loaded and the error lists
    the missing / mismatched names with both shapes.  Training state in the file (optimizer slots, counters) is
    ignored; other unknown entries are reported with a warning.

    Under the plain parameter names, converted TF checkpoints hold the EMA weights TF evaluates, and checkpoints of a
    run with ``EMAHook`` hold the averaged weights as well (the ones its validation used).

    Args:
        model: the built classifier.
        checkpoint: ``.ckpt`` path.
        online: load the raw training weights ``online.<name>`` that ``EMAHook`` stores beside the averages.

    Returns:
        The checkpoint's metadata strings, plus ``'loaded_online_weights': 'True' | 'False'``.

    Raises:
        FileNotFoundError / ValueError: unreadable file.
        KeyError: missing parameters or shape mismatches (``online=True``: no ``online.*`` copies).
    """
    import mindspore as ms
    from mindspore import Tensor

    from effnet_mm.utils import load_checkpoint

    state, meta = load_checkpoint(checkpoint)
    params = list(model.get_parameters())
    prefix = ONLINE_PREFIX if online else ''
    if online and not any(name.startswith(ONLINE_PREFIX) for name in state):
        raise KeyError(f'{checkpoint}: online=True but the file has no "{ONLINE_PREFIX}<name>" training weights '
                       f'(only checkpoints of runs with EMAHook have them)')

    missing, mismatched, updates = [], [], []
    for param in params:
        key = prefix + param.name
        if key not in state:
            missing.append(key)
            continue
        value = state[key].asnumpy() if hasattr(state[key], 'asnumpy') else np.asarray(state[key])
        if tuple(value.shape) != tuple(param.shape):
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} vs model {tuple(param.shape)}')
            continue
        updates.append((param, value))
    if missing or mismatched:
        lines = [f'checkpoint {checkpoint} does not match the model built from the config '
                 f'({len(params)} parameters):']
        if missing:
            lines.append(f'  missing {len(missing)}: {_format_names(missing)}')
        if mismatched:
            lines.append(f'  shape mismatch in {len(mismatched)}: {_format_names(mismatched, 5)}')
        lines.append(_mismatch_hint(model, state, meta, prefix, missing, mismatched))
        raise KeyError('\n'.join(lines))
    for param, value in updates:
        param.set_data(Tensor(value.astype(ms.dtype_to_nptype(param.dtype))))

    known = {p.name for p in params}
    unknown = sorted(k for k in state if k not in known and not _is_training_state(k))
    if unknown:
        logger.warning('%s: ignoring %d entries that are not parameters of the model: %s', checkpoint, len(unknown),
                       _format_names(unknown))
    meta = dict(meta)
    meta['loaded_online_weights'] = str(bool(online))
    return meta


def error_message(err: BaseException) -> str:
    """The text of an exception for a CLI; ``str(KeyError)`` would quote it and show its newlines as ``\\n``."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err)


def _set_device(device: str) -> None:
    import mindspore as ms

    target, _, index = str(device).partition(':')
    names = {'cpu': 'CPU', 'gpu': 'GPU', 'cuda': 'GPU', 'ascend': 'Ascend', 'npu': 'Ascend'}
    if target.lower() not in names:
        raise ValueError(f'device must be CPU, GPU or Ascend (optionally ":<id>"), got {device!r}')
    target = names[target.lower()]
    if ms.get_context('device_target') == target and not index:
        return
    if index:
        ms.set_device(target, int(index))
    else:
        ms.set_device(target)


def init_model(config: ConfigLike,
               checkpoint: Optional[str] = None,
               device: str = 'CPU',
               cfg_options: Optional[Mapping[str, object]] = None,
               online: bool = False):
    """Build the classifier of ``config``, load ``checkpoint`` and switch it to evaluation mode.

    The model keeps the loaded config as ``model.cfg`` (:func:`~effnet_mm.apis.inference_model` takes the test
    pipeline from it) and ``model.dataset_meta = {'classes': names or None}``.

    Example::

        model = init_model('configs/efficientnet/efficientnet-b0_8xb32_in1k.py', 'work_dirs/b0.ckpt')
        logits = model(Tensor(batch_uint8_nchw_bgr))

    Args:
        config: config file path or :class:`~mmengine.config.Config`.
        checkpoint: weights (``.ckpt``); None keeps the random initialisation.
        device: ``'CPU'``, ``'GPU'`` or ``'Ascend'``, optionally with ``':<id>'``.
        cfg_options: config overrides, e.g. ``{'model.head.num_classes': 10}``.
        online: load the raw training weights of an ``EMAHook`` run instead of the averages, see
            :func:`load_model_weights`.
    """
    cfg = load_config(config, cfg_options)
    _set_device(device)
    model = build_classifier(cfg)
    meta: Dict[str, str] = {}
    if checkpoint is not None:
        meta = load_model_weights(model, checkpoint, online=online)
    classes = class_names_from_cfg(cfg)
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise ValueError(f'config {cfg.filename or "<in memory>"}: the test dataset declares {len(classes)} classes '
                         f'but model.head.num_classes={num_classes}')
    model.cfg = cfg
    model.dataset_meta = {'classes': classes}
    model.checkpoint_meta = meta
    model.set_train(False)
    return model
