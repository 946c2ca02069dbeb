"""Export effnet_mm weights as a timm hub folder: ``model.safetensors`` + ``config.json``.

TF-"SAME" networks become ``tf_efficientnet_bX``, symmetric-padding ones ``efficientnet_bX``; a BN eps or momentum
that differs from that architecture's default (e.g. MindCV's eps 1e-5 with TF padding) goes into ``model_args``,
which timm passes to the model constructor (``bn_eps``, ``bn_momentum``), so timm computes what effnet_mm computes.
The evaluation preprocessing is written as timm's ``pretrained_cfg`` (input size, crop_pct, interpolation,
mean/std).  Loading: ``timm.create_model('local-dir:<folder>', pretrained=True)``.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np

from effnet_mm.variants import Variant

from .errors import ConversionError
from .families import FAMILIES, derive_family_mappings
from .layouts import to_source
from .model_config import EvalPreprocessing, ModelOptions
from .tf_names import build_reference_model

WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
#: timm's defaults per flavour: (padding, BN eps, BN momentum in PyTorch's convention).
TIMM_DEFAULTS = {'tf_': ('same', 1e-3, 0.1), '': ('symmetric', 1e-5, 0.1)}


def timm_state_dict(params: Mapping[str, np.ndarray], variant: Variant, num_classes: Optional[int]
                    ) -> Dict[str, np.ndarray]:
    """effnet_mm parameters under timm's names, plus the ``num_batches_tracked`` counters timm's files hold."""
    model = build_reference_model(variant.name, num_classes or 1000)
    family = FAMILIES['timm']
    state: Dict[str, np.ndarray] = {}
    for mapping in derive_family_mappings(family, model, set()):
        if mapping.target not in params:
            if mapping.target.startswith('head.fc.') and num_classes is None:
                continue  # a headless checkpoint stays headless
            raise ConversionError(f'cannot export: parameter {mapping.target!r} is missing')
        state[mapping.source] = to_source(mapping.layout, np.asarray(params[mapping.target], np.float32))
        if mapping.source.endswith('.running_var'):
            state[mapping.source[:-len('running_var')] + 'num_batches_tracked'] = np.zeros((), np.int64)
    return state


def timm_config(variant: Variant, options: ModelOptions, preprocessing: EvalPreprocessing,
                num_classes: Optional[int]) -> dict:
    """timm's hub ``config.json`` (as ``save_for_hf`` writes it) for these weights."""
    flavour = 'tf_' if options.padding == 'same' else ''
    padding, eps, momentum = TIMM_DEFAULTS[flavour]
    classes = num_classes or 0
    model_args = {'in_chans': 3, 'num_classes': classes, 'global_pool': 'avg'}
    if options.bn_eps != eps:
        model_args['bn_eps'] = options.bn_eps
    if options.bn_momentum != momentum:
        model_args['bn_momentum'] = options.bn_momentum
    size = preprocessing.crop
    # timm resizes the short side to floor(size / crop_pct); TF's crop-then-resize keeps S / (S + 32) of it.
    crop_pct = variant.crop_pct if preprocessing.resize is None else size / preprocessing.resize
    return {
        'architecture': f'{flavour}efficientnet_{variant.name}',
        'num_classes': classes,
        'num_features': variant.head_channels,
        'global_pool': 'avg',
        'model_args': model_args,
        'pretrained_cfg': {
            'tag': 'effnet_mm',
            'custom_load': False,
            'input_size': [3, size, size],
            'fixed_input_size': False,
            'interpolation': preprocessing.interpolation,
            'crop_pct': round(crop_pct, 6),
            'crop_mode': 'center',
            'mean': [round(m / 255, 6) for m in preprocessing.mean],
            'std': [round(s / 255, 6) for s in preprocessing.std],
            'num_classes': classes,
            'pool_size': [-(-size // 32)] * 2,
            'first_conv': 'conv_stem',
            'classifier': 'classifier',
        },
    }


def export_timm(params: Mapping[str, np.ndarray], dst: str, variant: Variant, options: ModelOptions,
                preprocessing: EvalPreprocessing, num_classes: Optional[int], force: bool = False) -> str:
    """Write the timm hub folder ``dst`` atomically (both files or nothing); returns ``dst``."""
    from effnet_mm.utils.fileio import atomic_write

    from .safetensors_io import import_safetensors, save_safetensors, write_json

    import_safetensors()  # fail before any work when it is missing
    state = timm_state_dict(params, variant, num_classes)
    config = timm_config(variant, options, preprocessing, num_classes)
    try:
        with atomic_write(dst, overwrite=force) as tmp:
            os.makedirs(tmp)
            save_safetensors(state, os.path.join(tmp, WEIGHTS_FILE), metadata={'format': 'pt'})
            write_json(config, os.path.join(tmp, CONFIG_FILE))
    except FileExistsError as err:
        raise ConversionError(f'Destination {dst!r} already exists; pass --force to replace it') from err
    return dst
