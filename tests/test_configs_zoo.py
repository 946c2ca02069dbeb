"""Every config loads and builds; the zoo (configs/efficientnet + metafile.yml) agrees with effnet_mm.variants.

Table-driven: each metafile entry is checked against its config (resolution of the train/test crops,
normalisation), against ``effnet_mm.variants`` and against the analytic parameter/MAC count of the built model,
so a config, a metafile row or a variant that drifts fails here.  Models are built without initialising their
parameters (structure and shapes only), each distinct architecture once.
"""
import argparse
import functools
import json
import re

import cv2
import numpy as np
import pytest
import yaml
from mmengine.config import Config, DictAction

from effnet_mm.apis import count_model_cost
from effnet_mm.apis.model_init import build_classifier, model_cfg_with_preprocessor
from effnet_mm.converters.families import FAMILIES
from effnet_mm.datasets import build_dataloader
from effnet_mm.datasets.transforms import (
    AutoAugment,
    CenterCrop,
    Compose,
    EfficientNetCenterCrop,
    EfficientNetRandomCrop,
    ResizeEdge,
)
from effnet_mm.variants import ADVPROP_MEAN, ADVPROP_STD, IMAGENET_MEAN, IMAGENET_STD, VARIANTS, get_variant
from tests.helpers import ROOT, TF_FIXTURES

CONFIG_ROOT = ROOT / 'configs'
ZOO = CONFIG_ROOT / 'efficientnet'
ALL_CONFIGS = sorted(p for p in CONFIG_ROOT.rglob('*.py') if '_base_' not in p.parts)
METAFILE = yaml.safe_load((ZOO / 'metafile.yml').read_text())
MODELS = METAFILE['Models']
NORMALISATION = {'imagenet': (IMAGENET_MEAN, IMAGENET_STD), 'advprop': (ADVPROP_MEAN, ADVPROP_STD)}
TRAIN_USAGE, EVAL_USAGE = 'train from scratch', 'evaluate converted'


def _rel(path):
    return str(path.relative_to(ROOT))


@functools.cache
def load(path: str) -> Config:
    return Config.fromfile(str(ROOT / path) if not path.startswith('/') else path)


def _pipelines(cfg):
    return {key: cfg[key]['dataset']['pipeline'] for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')}


def _only(pipeline, cls):
    found = [t for t in pipeline.transforms if isinstance(t, cls)]
    assert len(found) == 1, f'expected one {cls.__name__} in {pipeline}'
    return found[0]


@functools.cache
def built_model(arch: str, num_classes: int):
    """One model per architecture (no parameter initialisation): enough for structure and counts."""
    cfg = Config(dict(model=dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch=arch),
                                 neck=dict(type='GlobalAveragePooling'),
                                 head=dict(type='LinearClsHead', num_classes=num_classes,
                                           in_channels=get_variant(arch).head_channels))))
    return build_classifier(cfg, init_weights=False)


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=[p.name for p in ALL_CONFIGS])
def test_config_loads_and_builds_pipelines(path):
    cfg = load(str(path))
    assert cfg.default_scope == 'effnet_mm', f'{_rel(path)}: default_scope must be effnet_mm'
    for key, pipeline in _pipelines(cfg).items():
        built = Compose(pipeline)
        assert len(built.transforms) == len(pipeline), f'{_rel(path)}: {key}'
    # The head must fit the backbone effnet_mm.variants describes (checked without building every config).
    model = model_cfg_with_preprocessor(cfg)
    variant = get_variant(model['backbone']['arch'])
    assert model['head']['in_channels'] == variant.head_channels, _rel(path)
    assert model['data_preprocessor']['type'] == 'ClsDataPreprocessor' and model['data_preprocessor']['to_rgb']


@pytest.mark.parametrize('arch', sorted(VARIANTS))
def test_every_arch_builds_from_its_config(arch):
    configs = [p for p in ALL_CONFIGS if model_cfg_with_preprocessor(load(str(p)))['backbone']['arch'] == arch]
    assert configs, f'no config uses arch {arch}'
    cfg = load(str(configs[0]))
    model = build_classifier(cfg, init_weights=False)
    assert model.backbone.variant == VARIANTS[arch]
    assert model.head.fc.in_channels == VARIANTS[arch].head_channels
    assert model.head.num_classes == cfg.model.head.num_classes
    assert model.data_preprocessor.mean_values == tuple(cfg.data_preprocessor.mean)


def test_every_zoo_config_is_in_the_metafile():
    listed = {m['Config'] for m in MODELS}
    zoo = {_rel(p) for p in ZOO.glob('*.py') if not p.name.endswith('_demo.py')}
    assert zoo - listed == set(), 'configs missing from metafile.yml'
    assert listed - zoo == set(), 'metafile.yml lists configs that do not exist'


@pytest.mark.parametrize('entry', MODELS, ids=[m['Name'] for m in MODELS])
def test_metafile_entry_matches_config_and_variants(entry):
    cfg = load(entry['Config'])
    meta = entry['Metadata']
    variant = get_variant(cfg.model.backbone.arch)
    # The TF reference's per-variant dropout and drop-connect rate.
    assert (cfg.model.head.dropout, cfg.model.backbone.drop_path_rate) == (variant.dropout, 0.2)
    # Resolution: the variant's native one unless the name says otherwise (mmpretrain's "-<N>px" suffix).
    suffix = re.search(r'-(\d+)px$', entry['Name'])
    expected = int(suffix.group(1)) if suffix else variant.resolution
    assert meta['Resolution'] == expected
    pipes = {k: Compose(p) for k, p in _pipelines(cfg).items()}
    train_crop = _only(pipes['train_dataloader'], EfficientNetRandomCrop)
    assert train_crop.scale == expected and train_crop.crop_padding == 32
    mean, std = NORMALISATION[meta['Normalization']]
    preprocessor = model_cfg_with_preprocessor(cfg)['data_preprocessor']
    assert tuple(preprocessor['mean']) == mean and tuple(preprocessor['std']) == std
    if 'Source Library' in meta:  # weights of another library: its own evaluation and network, as the converter
        _check_other_library(meta, cfg, variant, pipes, expected)  # knows them (effnet_mm.converters.families)
        return
    for key in ('val_dataloader', 'test_dataloader'):
        crop = _only(pipes[key], EfficientNetCenterCrop)
        assert (crop.crop_size, crop.crop_padding, crop.interpolation) == (expected, 32, 'bicubic'), key
    assert ('-01norm' in entry['Config']) == (meta['Normalization'] == 'advprop')
    assert ('advprop' in entry['Name']) == (meta['Normalization'] == 'advprop')


def _check_other_library(meta, cfg, variant, pipes, resolution):
    family = FAMILIES[meta['Source Library']]
    flavour = 'tf_' if meta['Source Arch'].startswith('tf_') else ''
    options = family.model_options(variant, flavour if family.name == 'timm' else None)
    backbone = cfg.model.backbone
    assert (backbone.padding, backbone.norm_cfg.eps, backbone.norm_cfg.momentum) == \
        (options.padding, options.bn_eps, options.bn_momentum)
    prep = family.preprocessing(variant, flavour)
    assert prep.crop == resolution and (prep.mean, prep.std) == NORMALISATION[meta['Normalization']]
    for key in ('val_dataloader', 'test_dataloader'):
        resize, crop = _only(pipes[key], ResizeEdge), _only(pipes[key], CenterCrop)
        assert (resize.scale, resize.edge, resize.interpolation) == (prep.resize, 'short', prep.interpolation), key
        assert crop.crop_size == prep.crop, key


@pytest.mark.parametrize('entry', MODELS, ids=[m['Name'] for m in MODELS])
def test_metafile_costs_match_the_analysis_tool(entry):
    cfg = load(entry['Config'])
    meta = entry['Metadata']
    model = built_model(cfg.model.backbone.arch, cfg.model.head.num_classes)
    cost = count_model_cost(model, (meta['Resolution'], meta['Resolution']))
    assert (meta['Parameters'], meta['MACs'], meta['FLOPs']) == (cost.learnable_params, cost.macs, cost.flops)
    manifest = TF_FIXTURES / 'manifests' / f'{get_variant(cfg.model.backbone.arch).tf_scope}.json'
    if manifest.exists():  # the TF checkpoint's own count (b0..b8)
        assert meta['Parameters'] == json.loads(manifest.read_text())['trainable_param_count']


@pytest.mark.parametrize('entry', MODELS, ids=[m['Name'] for m in MODELS])
def test_train_capable_configs_are_exactly_the_tf_recipe_ones(entry):
    """The metafile's Usage must say what the config does: TF recipe + AutoAugment v0, or inference only."""
    cfg = load(entry['Config'])
    train = Compose(cfg.train_dataloader.dataset.pipeline)
    has_aa = any(isinstance(t, AutoAugment) and t.policies == 'v0' for t in train.transforms)
    tf_recipe = (cfg.optim_wrapper.optimizer.type == 'RMSProp'
                 and any(h['type'] == 'EMAHook' for h in cfg.get('custom_hooks', [])))
    usage = entry['Metadata']['Usage']
    if usage.startswith(TRAIN_USAGE):
        assert has_aa and tf_recipe and entry['Results'] is None
        assert entry['Config'].endswith('-aa_in1k.py')
    else:
        assert usage.startswith(EVAL_USAGE) and entry['Converted From']['Weights']
        assert entry['Converted From']['Weights'].endswith('.tar.gz') or 'Source Library' in entry['Metadata']
        assert not has_aa and not tf_recipe and 'INFERENCE-ONLY' in (ROOT / entry['Config']).read_text()


def _cfg_options(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv).cfg_options


def test_cfg_options_reach_the_built_model_and_loader(tmp_path):
    for wnid in ('n01440764', 'n01443537'):
        (tmp_path / 'train' / wnid).mkdir(parents=True)
        for i in range(4):
            img = np.full((40, 50, 3), 60 * i, np.uint8)
            cv2.imwrite(str(tmp_path / 'train' / wnid / f'{i}.png'), img)
    cfg = Config.fromfile(str(ZOO / 'efficientnet-b3_8xb32_in1k.py'))
    cfg.merge_from_dict(_cfg_options([
        '--cfg-options', 'model.head.num_classes=10', 'train_dataloader.batch_size=4',
        f'train_dataloader.dataset.data_root={tmp_path}', 'train_dataloader.num_workers=0']))
    model = build_classifier(cfg, init_weights=False)
    assert model.head.num_classes == 10 and tuple(model.head.fc.weight.shape) == (10, 1536)
    loader = build_dataloader(cfg.train_dataloader)
    assert loader.batch_size == 4 and len(loader) == 2
    batch = next(iter(loader))
    assert batch['inputs'].shape == (4, 3, 300, 300) and batch['inputs'].dtype == np.uint8


def test_tf_schedule_decays_what_tf_decays():
    """TF adds L2 for every trainable variable whose name lacks 'batch_normalization': biases too, BN gamma/beta not."""
    from effnet_mm.engine.optimizers import build_param_groups

    cfg = load(str(ZOO / 'efficientnet-b0_8xb32-aa_in1k.py'))
    params = build_classifier(cfg, init_weights=False).trainable_params()
    groups = build_param_groups(params, cfg.optim_wrapper.optimizer.weight_decay, cfg.optim_wrapper.paramwise_cfg)
    undecayed = {p.name for g in groups if g['weight_decay'] == 0 for p in g['params']}
    decayed = {p.name for g in groups if g['weight_decay'] == 1e-5 for p in g['params']}
    assert undecayed == {p.name for p in params if '.bn.' in p.name}
    assert decayed == {p.name for p in params} - undecayed
    assert 'head.fc.bias' in decayed and any('.se.' in name and name.endswith('.bias') for name in decayed)
