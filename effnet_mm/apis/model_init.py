"""Build a classifier from a config and/or a checkpoint and load its weights: :func:`init_model`."""
from __future__ import annotations

import json
from typing import Dict, Mapping, Optional, Tuple

from mmengine.config import Config

from effnet_mm.runtime.cli import error_message
from effnet_mm.runtime.config import ConfigLike, load_config
from effnet_mm.runtime.model import build_classifier, model_cfg_with_preprocessor

#: Checkpoint metadata keys: the full config a checkpoint was made with (mmengine's ``meta['cfg']``) and the
#: dataset metainfo (``{"classes": [...]}``, JSON) of the run or the conversion that wrote it.
CFG_META_KEY = 'cfg'
DATASET_META_KEY = 'dataset_meta'

__all__ = ['CFG_META_KEY', 'DATASET_META_KEY', 'build_classifier', 'class_names_from_cfg', 'config_from_checkpoint',
           'error_message', 'init_model', 'load_config', 'load_model_weights', 'model_cfg_with_preprocessor']


def _dataset_cfg(cfg: Config) -> Optional[Mapping]:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, Mapping) and isinstance(loader.get('dataset'), Mapping):
            return loader['dataset']
    return None


def class_names_from_cfg(cfg: Config, defaults: bool = True) -> Optional[Tuple[str, ...]]:
    """Class names the config declares: ``dataset.metainfo.classes`` or ``dataset.classes`` of the test (else val)
    dataloader, as a list or a text file with one name per line; else (``defaults``) the defaults of the dataset type
    (``ImageNet``: the 1000 ImageNet-1k names, ``DemoDataset``: its 10 classes); None when there are none.
    """
    from effnet_mm.datasets import default_metainfo
    from effnet_mm.datasets.base_dataset import read_classes

    dataset = _dataset_cfg(cfg)
    if dataset is None:
        return None
    metainfo = dataset.get('metainfo') or {}
    classes = metainfo.get('classes') if isinstance(metainfo, Mapping) else None
    if classes is None:
        classes = dataset.get('classes')
    if classes is None:
        names = default_metainfo(dataset.get('type')).get('classes') if defaults else None
        return None if names is None else tuple(names)
    return read_classes(classes if isinstance(classes, str) else list(classes))


def class_names_from_meta(meta: Mapping[str, str], source: str) -> Optional[Tuple[str, ...]]:
    """The class names a checkpoint's ``dataset_meta`` holds, or None."""
    text = meta.get(DATASET_META_KEY)
    if not text:
        return None
    try:
        classes = json.loads(text).get('classes')
    except (ValueError, AttributeError) as err:
        raise ValueError(f'{source}: metadata {DATASET_META_KEY!r} is not a JSON object ({err})') from err
    return tuple(str(c) for c in classes) if classes else None


def config_from_checkpoint(checkpoint: str) -> Config:
    """The config stored in a checkpoint's metadata (training checkpoints and converted weights carry one).

    Raises:
        ValueError: the checkpoint carries no config.
    """
    from effnet_mm.utils import load_checkpoint

    _, meta = load_checkpoint(checkpoint)
    text = meta.get(CFG_META_KEY)
    if not text:
        raise ValueError(f'{checkpoint} carries no config (metadata {CFG_META_KEY!r}); pass the config file as well')
    return Config.fromstring(text, file_format='.py')


def load_model_weights(model, checkpoint: str, online: bool = False) -> Dict[str, str]:
    """Load every parameter of ``model`` from ``checkpoint``, strictly.

    See :func:`effnet_mm.runtime.weights.load_weights`.

    Returns:
        The checkpoint's metadata strings, plus ``'loaded_online_weights': 'True' | 'False'``.
    """
    from effnet_mm.runtime.weights import load_weights

    meta = load_weights(model, checkpoint, online=online)
    meta['loaded_online_weights'] = str(bool(online))
    return meta


def init_model(config: Optional[ConfigLike] = None,
               checkpoint: Optional[str] = None,
               device: str = 'CPU',
               cfg_options: Optional[Mapping[str, object]] = None,
               online: bool = False):
    """Build the classifier of ``config`` (or of the config stored in ``checkpoint``), load ``checkpoint`` and switch
    it to evaluation mode.

    The model keeps the config as ``model.cfg`` (:func:`~effnet_mm.apis.inference_model` takes the test pipeline
    from it), ``model.dataset_meta = {'classes': names or None}`` (from the config's test dataset, else from the
    checkpoint's ``dataset_meta``) and ``model.checkpoint_meta``.

    Example::

        model = init_model('configs/efficientnet/efficientnet-b0_8xb32_in1k.py', 'work_dirs/b0.ckpt')
        model = init_model(checkpoint='work_dirs/demo/epoch_12.ckpt')    # the config stored in the checkpoint
        logits = model(Tensor(batch_uint8_nchw_bgr))

    Args:
        config: config file path or :class:`~mmengine.config.Config`; None takes the config stored in
            ``checkpoint``.
        checkpoint: weights (``.ckpt``); None keeps the random initialisation.
        device: ``'CPU'``, ``'GPU'`` or ``'Ascend'``, optionally with ``':<id>'``.
        cfg_options: config overrides, e.g. ``{'model.head.num_classes': 10}``.
        online: load the raw training weights of an ``EMAHook`` run instead of the averages.
    """
    from effnet_mm.runtime.dist import select_device

    if config is None:
        if checkpoint is None:
            raise ValueError('init_model needs a config, a checkpoint that stores one, or both')
        config = config_from_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    select_device(device)
    model = build_classifier(cfg)
    meta: Dict[str, str] = {}
    if checkpoint is not None:
        meta = load_model_weights(model, checkpoint, online=online)
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    classes = class_names_from_cfg(cfg, defaults=False)
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise ValueError(f'config {cfg.filename or "<in memory>"}: the test dataset declares {len(classes)} classes '
                         f'but model.head.num_classes={num_classes}')
    # Otherwise the names the checkpoint's run knew, else the dataset type's defaults, when they fit the head.
    for fallback in (class_names_from_meta(meta, checkpoint or ''), class_names_from_cfg(cfg)):
        if classes is None and fallback is not None and len(fallback) == num_classes:
            classes = fallback
    model.cfg = cfg
    model.dataset_meta = {'classes': classes}
    model.checkpoint_meta = meta
    model.set_train(False)
    return model
