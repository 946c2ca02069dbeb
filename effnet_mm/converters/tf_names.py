"""TF variable names of EfficientNet, derived from the rebuilt effnet_mm model.

How TF names map to ours is *derived*, not tabulated per variant: the target
:class:`~effnet_mm.models.ImageClassifier` is rebuilt for the variant (parameters are not materialised) and walked in
execution order, while a :class:`KerasNamer` replays the auto-naming of ``tf.compat.v1.layers`` inside each variable
scope (the n-th conv of a scope is ``conv2d_{n}``, the n-th BN ``tpu_batch_normalization_{n}``).  ``blocks_{i}`` is
the i-th MBConv of the flattened ``backbone.layers.{1..5}``; whether a block has an expand conv comes from the rebuilt
block, which is what puts the ambiguous ``conv2d``/``tpu_batch_normalization`` names of expanding and non-expanding
blocks on the right layers.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Tuple

from effnet_mm.variants import get_variant

from .errors import ConversionError
from .layouts import Shape, source_shape

if TYPE_CHECKING:  # MindSpore is imported lazily: building the model is the only part that needs it
    from mindspore import nn

#: The b-series checkpoints classify the 1000 ImageNet classes (no background class).
TF_NUM_CLASSES = 1000
BN_PARAMS = ('gamma', 'beta', 'moving_mean', 'moving_variance')


@dataclass(frozen=True)
class TensorMapping:
    """One parameter of the rebuilt model and the source tensor (a TF variable without EMA suffix) it comes from.

    ``layout`` is one of :data:`effnet_mm.converters.layouts.LAYOUTS`.
    """

    target: str
    source: str
    layout: str
    target_shape: Shape

    @property
    def source_shape(self) -> Shape:
        """The shape the source tensor must have: ``target_shape`` in the source's layout."""
        return source_shape(self.layout, self.target_shape)


class KerasNamer:
    """Replays ``tf.compat.v1.layers`` auto-naming inside one variable scope: ``kind``, ``kind_1``, ``kind_2``..."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()

    def next(self, kind: str) -> str:
        index = self._counts[kind]
        self._counts[kind] += 1
        return kind if index == 0 else f'{kind}_{index}'


#: MBConv children in TF ``MBConvBlock.call`` order (expand → depthwise → SE → project); absent ones are None.
MBCONV_CHILDREN = ('expand_conv', 'depthwise_conv', 'se', 'linear_conv')


def build_reference_model(arch: str, num_classes: int = TF_NUM_CLASSES) -> nn.Cell:
    """The :class:`ImageClassifier` a TF checkpoint of ``arch`` converts into (parameters not materialised).

    Only its structure, parameter names and shapes are used, so initialisation is skipped (a B8 builds in ~1 s
    instead of ~5 s).
    """
    from effnet_mm.registry import MODELS
    try:
        from mindspore.nn.utils import no_init_parameters
    except ImportError:  # older MindSpore: initialise, merely slower
        no_init_parameters = contextlib.nullcontext
    variant = get_variant(arch)
    cfg = {
        'type': 'ImageClassifier',
        'backbone': {'type': 'EfficientNet', 'arch': variant.name},
        'neck': {'type': 'GlobalAveragePooling'},
        'head': {'type': 'LinearClsHead', 'num_classes': num_classes, 'in_channels': variant.head_channels,
                 'dropout': variant.dropout},
    }
    with no_init_parameters():
        return MODELS.build(cfg)


def derive_mappings(model: nn.Cell, scope: str) -> List[TensorMapping]:
    """Map every parameter of ``model`` (an EfficientNet :class:`ImageClassifier`) to its TF variable name.

    Args:
        model: the rebuilt classifier (see :func:`build_reference_model`).
        scope: the TF top-level scope, e.g. ``'efficientnet-b0'``.

    Raises:
        ConversionError: the model has a parameter the TF naming rules do not cover.
    """
    from effnet_mm.models.backbones import MBConv
    from effnet_mm.models.layers import ConvBNAct

    shapes = {name: tuple(int(d) for d in param.shape) for name, param in model.parameters_and_names()}
    pairs: List[Tuple[str, str, str]] = []
    layers = list(model.backbone.layers)
    stem, stages, head_conv = layers[0], layers[1:-1], layers[-1]
    if not (isinstance(stem, ConvBNAct) and isinstance(head_conv, ConvBNAct)):
        raise ConversionError('derive_mappings: backbone.layers must start with the stem ConvBNAct and end with the '
                              f'head ConvBNAct, got {type(stem).__name__} ... {type(head_conv).__name__}')

    pairs += _conv_bn_pairs(stem, 'backbone.layers.0', f'{scope}/stem', KerasNamer())
    block_index = 0
    for g, stage in enumerate(stages, start=1):
        for j, block in enumerate(stage):
            if not isinstance(block, MBConv):
                raise ConversionError(f'derive_mappings: backbone.layers.{g}.{j} is a {type(block).__name__}, '
                                      f'expected MBConv')
            pairs += _mbconv_pairs(block, f'backbone.layers.{g}.{j}', f'{scope}/blocks_{block_index}')
            block_index += 1
    head_namer = KerasNamer()  # the head conv, its BN and the dense layer share the `head` scope
    pairs += _conv_bn_pairs(head_conv, f'backbone.layers.{len(layers) - 1}', f'{scope}/head', head_namer)
    dense = head_namer.next('dense')
    pairs += [('head.fc.weight', f'{scope}/head/{dense}/kernel', 'dense'),
              ('head.fc.bias', f'{scope}/head/{dense}/bias', 'vector')]

    mappings = []
    for target, source, layout in pairs:
        if target not in shapes:
            raise ConversionError(f'derive_mappings: derived parameter {target!r} (from {source!r}) is not a '
                                  f'parameter of the model')
        mappings.append(TensorMapping(target, source, layout, shapes[target]))
    unmapped = sorted(set(shapes) - {m.target for m in mappings})
    if unmapped:
        raise ConversionError(f'derive_mappings: no TF naming rule for model parameters {unmapped}')
    return mappings


def _conv_bn_pairs(cell: nn.Cell, prefix: str, scope: str, namer: KerasNamer) -> List[Tuple[str, str, str]]:
    """(target, source, layout) of a ConvBNAct: a (depthwise) conv then a BN, named in that order."""
    conv = cell.conv
    if conv.groups > 1:
        if not conv.groups == conv.in_channels == conv.out_channels:
            raise ConversionError(f'{prefix}: grouped conv with groups={conv.groups} has no TF EfficientNet '
                                  f'counterpart (only depthwise convs are grouped)')
        kernel, layout = f'{scope}/{namer.next("depthwise_conv2d")}/depthwise_kernel', 'depthwise'
    else:
        kernel, layout = f'{scope}/{namer.next("conv2d")}/kernel', 'conv'
    if conv.has_bias:
        raise ConversionError(f'{prefix}.conv has a bias; TF EfficientNet convs followed by BN have none')
    bn = f'{scope}/{namer.next("tpu_batch_normalization")}'
    return [(f'{prefix}.conv.weight', kernel, layout)] + [(f'{prefix}.bn.{p}', f'{bn}/{p}', 'vector')
                                                          for p in BN_PARAMS]


def _mbconv_pairs(block: nn.Cell, prefix: str, scope: str) -> List[Tuple[str, str, str]]:
    namer = KerasNamer()
    pairs: List[Tuple[str, str, str]] = []
    for child in MBCONV_CHILDREN:
        cell = getattr(block, child)
        if cell is None:
            continue
        if child == 'se':
            se_namer = KerasNamer()  # the SE convs live in their own `se` scope
            for conv_name in ('conv1', 'conv2'):
                tf_name = f'{scope}/se/{se_namer.next("conv2d")}'
                pairs += [(f'{prefix}.se.{conv_name}.weight', f'{tf_name}/kernel', 'conv'),
                          (f'{prefix}.se.{conv_name}.bias', f'{tf_name}/bias', 'vector')]
        else:
            pairs += _conv_bn_pairs(cell, f'{prefix}.{child}', scope, namer)
    return pairs
