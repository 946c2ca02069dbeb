"""The config a converted checkpoint carries (mmengine's habit: the full config text under metadata key ``cfg``).

The text is a zoo config of ``configs/efficientnet/`` when one fits the converted weights exactly (variant, padding,
BN eps/momentum, classes, normalisation and test pipeline); otherwise the family's zoo config is adapted to the
variant and the source's own evaluation preprocessing.  :func:`effnet_mm.apis.init_model` builds the model from it
when no config file is given.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from effnet_mm.variants import ADVPROP_MEAN, ADVPROP_STD, BN_EPS, IMAGENET_MEAN, IMAGENET_STD, NORM_CFG, Variant

from .errors import ConversionError

#: ``configs/`` of the source checkout effnet_mm runs from.
CONFIG_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'configs')
ZOO = os.path.join(CONFIG_ROOT, 'efficientnet')
#: Metadata key of the config text (as mmengine stores ``meta['cfg']``).
CFG_KEY = 'cfg'


@dataclass(frozen=True)
class ModelOptions:
    """The backbone options a family's weights need: conv padding style and BatchNorm eps / momentum.

    ``bn_momentum`` follows mmpretrain/PyTorch: the weight of the new batch statistic (TF's decay 0.99 is 0.01).
    """

    padding: str = 'same'
    bn_eps: float = BN_EPS
    bn_momentum: float = 0.01

    @property
    def norm_cfg(self) -> dict:
        return dict(type='BN', eps=self.bn_eps, momentum=self.bn_momentum)


@dataclass(frozen=True)
class EvalPreprocessing:
    """A source's evaluation preprocessing, as effnet_mm's OpenCV transforms express it.

    ``resize=None`` is TF's crop-then-resize (``EfficientNetCenterCrop``, crop padding 32); otherwise the short side
    is resized to ``resize`` and the centre ``crop`` is taken (``ResizeEdge`` + ``CenterCrop``).  ``mean``/``std``
    are RGB on the 0..255 scale.
    """

    crop: int
    resize: Optional[int] = None
    interpolation: str = 'bicubic'
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD

    @classmethod
    def from_crop_pct(cls, crop: int, crop_pct: float, **kwargs) -> EvalPreprocessing:
        """timm/MindCV style: short side ``floor(crop / crop_pct)``, then the centre ``crop``."""
        return cls(crop=crop, resize=int(math.floor(crop / crop_pct)), **kwargs)

    @property
    def advprop(self) -> bool:
        return tuple(self.mean) == ADVPROP_MEAN and tuple(self.std) == ADVPROP_STD

    def pipeline(self) -> List[dict]:
        if self.resize is None:
            crop = [dict(type='EfficientNetCenterCrop', crop_size=self.crop)]
        else:
            crop = [dict(type='ResizeEdge', scale=self.resize, edge='short', interpolation=self.interpolation),
                    dict(type='CenterCrop', crop_size=self.crop)]
        return [dict(type='LoadImageFromFile'), *crop, dict(type='PackInputs')]

    def describe(self) -> str:
        norm = 'mean = std = 127.5' if self.advprop else (
            'ImageNet mean/std' if (tuple(self.mean), tuple(self.std)) == (IMAGENET_MEAN, IMAGENET_STD) else
            f'mean {list(self.mean)}, std {list(self.std)}')
        if self.resize is None:
            return f'TF centre crop {self.crop}/({self.crop} + 32) of the short side, bicubic to {self.crop}, {norm}'
        return f'short side to {self.resize} ({self.interpolation}), centre crop {self.crop}, {norm}'


def tf_preprocessing(variant: Variant, advprop: bool = False) -> EvalPreprocessing:
    """TF's evaluation (and mmpretrain's): crop-then-resize at the variant's resolution."""
    mean, std = (ADVPROP_MEAN, ADVPROP_STD) if advprop else (IMAGENET_MEAN, IMAGENET_STD)
    return EvalPreprocessing(crop=variant.resolution, mean=mean, std=std)


@functools.cache
def _load(path: str):
    from mmengine.config import Config
    return Config.fromfile(path)


def _essentials(cfg) -> tuple:
    """What decides the numbers a config computes from given weights."""
    model = cfg.model
    backbone = model['backbone']
    norm = {**NORM_CFG, **(backbone.get('norm_cfg') or {})}
    pre = model.get('data_preprocessor') or cfg.data_preprocessor
    return (backbone['arch'], backbone.get('padding', 'same'), float(norm['eps']), float(norm['momentum']),
            model['head']['num_classes'], tuple(map(float, pre['mean'])), tuple(map(float, pre['std'])),
            repr(list(cfg.test_dataloader.dataset.pipeline)))


def _adapt(template: str, variant: Variant, options: ModelOptions, preprocessing: EvalPreprocessing,
           num_classes: int):
    """``template`` with the variant, options, classes and evaluation preprocessing of the converted weights."""
    import copy

    cfg = copy.deepcopy(_load(template))
    backbone = cfg.model.backbone
    backbone.arch = variant.name
    backbone.padding = options.padding
    backbone.norm_cfg = options.norm_cfg
    cfg.model.head.in_channels = variant.head_channels
    cfg.model.head.num_classes = num_classes
    cfg.model.head.dropout = variant.dropout
    pipeline = preprocessing.pipeline()
    cfg.test_pipeline = pipeline
    for key in ('val_dataloader', 'test_dataloader'):
        cfg[key].dataset.pipeline = pipeline
    for train in (cfg.get('train_pipeline') or [], cfg.train_dataloader.dataset.pipeline):
        for transform in train:
            if transform['type'] == 'EfficientNetRandomCrop':
                transform['scale'] = preprocessing.crop
    for pre in (cfg.get('data_preprocessor'), cfg.model.get('data_preprocessor')):
        if pre is not None:
            pre.mean, pre.std = list(preprocessing.mean), list(preprocessing.std)
    return cfg


def zoo_configs(arch: str) -> List[str]:
    """The evaluation configs of ``arch`` in the zoo (training recipes and the demo left out)."""
    if not os.path.isdir(ZOO):
        raise ConversionError(f'the zoo configs are not at {ZOO}: run effnet_mm from its source checkout '
                              f'(pip install -e .)')
    prefix = f'efficientnet-{arch}_'
    return sorted(os.path.join(ZOO, name) for name in os.listdir(ZOO)
                  if name.startswith(prefix) and name.endswith('.py') and '-aa_' not in name and 'demo' not in name)


def model_config(template: str, variant: Variant, options: ModelOptions, preprocessing: EvalPreprocessing,
                 num_classes: int) -> Tuple[str, Optional[str]]:
    """The config text to store with converted weights, and the zoo config it equals (None when none does).

    Args:
        template: the family's zoo config (file name in ``configs/efficientnet``) adapted when no zoo config fits.
        variant: the converted variant.
        options: padding and BN options of the source's network.
        preprocessing: the source's evaluation preprocessing.
        num_classes: classes of the converted classifier.
    """
    wanted = _adapt(os.path.join(ZOO, template), variant, options, preprocessing, num_classes)
    key = _essentials(wanted)
    for path in zoo_configs(variant.name):
        if _essentials(_load(path)) == key:
            return _load(path).pretty_text, os.path.relpath(path, os.path.dirname(CONFIG_ROOT))
    return wanted.pretty_text, None
