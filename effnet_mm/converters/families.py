"""The checkpoint families effnet_mm reads besides TF: their parameter names, extra tensors and model options.

Every family stores the same network (the TF EfficientNet) under its own names.  Like :mod:`.tf_names`, the mapping
is *derived* from the rebuilt effnet_mm model, never tabulated per variant: each MBConv of the model is a
:class:`BlockSite` (its global index, its TF stage and position in the stage, whether it expands), and a family
names the stem, every block site, the head and the classifier.

- ``timm``: ``conv_stem``, ``bn1``, ``blocks.{s}.{b}.{conv_pw,bn1,conv_dw,bn2,se.conv_reduce,se.conv_expand,conv_pwl,
  bn3}`` (block ``b`` of TF stage ``s``), ``conv_head``, ``bn2``, ``classifier`` (``efficientnet_bX`` and
  ``tf_efficientnet_bX``);
- ``mmpretrain``: ``backbone.layers.{g}.{j}.{expand_conv,depthwise_conv,se.conv1,se.conv2,linear_conv}.{conv,bn}``,
  ``head.fc`` (TF weights converted by mmpretrain / mmcls; PyTorch BN names);
- ``mindcv``: ``features.{3+s}.{b}.block.{j}``, ``features.{0,1,10,11}``, ``mlp_head``;
- ``msmodels``: ``stem.{0,1}``, ``blocks.{s}.layers.{b}.{expand_conv,depth_wise_conv,se.se.{1,3},project_conv}``,
  ``head.{0,1,6}`` (MindSpore model zoo ``official/cv/Efficientnet``);
- ``effnet_mm``: effnet_mm's own names (the source of ``--to timm``).
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, AbstractSet, Dict, List, Mapping, Optional, Sequence, Tuple

from effnet_mm.runtime.weights import TRAINING_STATE_NAMES, TRAINING_STATE_PREFIXES
from effnet_mm.variants import ADVPROP_MEAN, ADVPROP_STD, VARIANTS, Variant

from .errors import ConversionError
from .layouts import BIAS_4D, Shape
from .model_config import EvalPreprocessing, ModelOptions, tf_preprocessing
from .tf_names import BN_PARAMS, TensorMapping

if TYPE_CHECKING:
    from mindspore import nn

#: BN parameter names of PyTorch sources (effnet_mm and MindSpore sources use ``BN_PARAMS`` themselves).
TORCH_BN = {'gamma': 'weight', 'beta': 'bias', 'moving_mean': 'running_mean', 'moving_variance': 'running_var'}
SAME_BN = {p: p for p in BN_PARAMS}

#: Training state a MindSpore training checkpoint holds beside the network (MindCV, the model zoo, effnet_mm):
#: effnet_mm's own training-state names plus MindCV's accumulation buffers and the loss-scale/step counters of
#: MindSpore's ``TrainOneStepWithLossScaleCell`` and Adam.
MINDSPORE_TRAINING_PREFIXES = TRAINING_STATE_PREFIXES + ('accum.', )
MINDSPORE_TRAINING_NAMES = TRAINING_STATE_NAMES + ('scale_sense', 'current_iterator_step',
                                                   'last_overflow_iterator_step', 'beta1_power', 'beta2_power')


@dataclass(frozen=True)
class BlockSite:
    """One MBConv of the rebuilt model: ``target`` is its prefix (``backbone.layers.{g}.{j}``), ``index`` its global
    (TF ``blocks_{i}``) index, ``stage``/``position`` its TF stage (0..6) and place in that stage."""

    index: int
    stage: int
    position: int
    target: str
    expands: bool


@dataclass(frozen=True)
class ConvBN:
    """A conv weight tensor name and the prefix of the BN after it."""

    conv: str
    bn: str


@dataclass(frozen=True)
class BlockNames:
    """Source names of one block; ``expand`` is None for a non-expanding block, SE entries are prefixes."""

    expand: Optional[ConvBN]
    depthwise: ConvBN
    se_reduce: str
    se_expand: str
    project: ConvBN


def block_sites(model: nn.Cell) -> List[BlockSite]:
    """Every MBConv of an EfficientNet classifier, in execution (= TF block) order."""
    variant: Variant = model.backbone.variant
    stage_of = [(s, b) for s, stage in enumerate(variant.stages()) for b in range(stage.repeats)]
    sites = []
    layers = list(model.backbone.layers)
    for g, group in enumerate(layers[1:-1], start=1):
        for j, block in enumerate(group):
            stage, position = stage_of[len(sites)]
            sites.append(BlockSite(len(sites), stage, position, f'backbone.layers.{g}.{j}',
                                   block.expand_conv is not None))
    if len(sites) != len(stage_of):
        raise ConversionError(f'the rebuilt {variant.name} has {len(sites)} blocks, its stages say {len(stage_of)}')
    return sites


class Family(ABC):
    """Naming rules and facts of one checkpoint family (subclasses fill them in).

    Attributes:
        name: the ``--from`` value.
        title: how summaries name the source.
        bn_names: our BN parameter → the family's suffix.
        markers: tensor names whose presence identifies the family.
        head_conv: name of the head 1x1 conv weight (its output channels tell the variant).
        block_pattern: matches the tensors of a block; its groups identify the block (counting them tells the
            variant).
        classifier: prefix of the classifier's ``weight``/``bias``.
        se_weight, se_bias: suffixes of an SE conv's weight and bias after its prefix.
        se_bias_layout: layout of the SE conv biases.
        template: the zoo config (in ``configs/efficientnet``) adapted for variants without a config of their own.
    """

    name = ''
    title = ''
    bn_names: Mapping[str, str] = SAME_BN
    markers: Tuple[str, ...] = ()
    head_conv = ''
    block_pattern = re.compile('^$')
    classifier = ''
    se_weight, se_bias = 'weight', 'bias'
    se_bias_layout = 'same'
    template = 'efficientnet-b0_8xb32_in1k.py'

    @abstractmethod
    def stem(self) -> ConvBN:
        """The stem conv and BN names of this family."""

    @abstractmethod
    def block(self, site: BlockSite, names: AbstractSet[str]) -> BlockNames:
        """The tensor names of one block (``names``: the checkpoint's tensors, for optional parts)."""

    @abstractmethod
    def head(self, num_layers: int) -> ConvBN:
        """The head conv and BN names (``num_layers``: blocks counted in the checkpoint)."""

    def is_training_state(self, name: str) -> bool:
        """Entries of a training checkpoint that are not weights (ignored and reported)."""
        return name in MINDSPORE_TRAINING_NAMES or name.startswith(MINDSPORE_TRAINING_PREFIXES)

    def unused_by_source(self, names: AbstractSet[str], sites: Sequence[BlockSite]) -> List[str]:
        """Tensors the source stores but its forward pass never uses (dropped and reported)."""
        return []

    def model_options(self, variant: Variant, flavour: Optional[str] = None) -> ModelOptions:
        """What the family's network computes with: padding style, BN eps/momentum."""
        return ModelOptions()

    def template_for(self, flavour: Optional[str]) -> str:
        return self.template

    def preprocessing(self, variant: Variant, flavour: Optional[str] = None, hub_config: Optional[Mapping] = None,
                      advprop: bool = False) -> EvalPreprocessing:
        """The source's own evaluation preprocessing for ``variant`` (TF's for TF-converted weights).

        Args:
            variant: the converted variant.
            flavour: timm's ``''`` / ``'tf_'``.
            hub_config: the ``config.json`` of a Hugging Face hub folder, if any.
            advprop: the file or folder name says AdvProp (``advprop`` / ``01norm``).
        """
        return tf_preprocessing(variant, advprop)

    def matches(self, names: AbstractSet[str]) -> bool:
        return all(marker in names for marker in self.markers)

    def count_blocks(self, names: AbstractSet[str]) -> int:
        return len({m.groups() for m in map(self.block_pattern.match, names) if m})


class TimmFamily(Family):
    """timm ``efficientnet_bX`` (its own trainings: symmetric padding, BN eps 1e-5) and ``tf_efficientnet_bX``
    (ported TF weights: TF "SAME" padding, eps 1e-3).  Both share every name and shape: the *flavour* (``''`` or
    ``'tf_'``) comes from the hub folder's ``config.json`` or from ``--arch``."""

    name = 'timm'
    title = 'timm'
    bn_names = TORCH_BN
    markers = ('conv_stem.weight', 'bn1.running_mean', 'conv_head.weight')
    head_conv = 'conv_head.weight'
    block_pattern = re.compile(r'^blocks\.(\d+)\.(\d+)\.')
    classifier = 'classifier'
    FLAVOURS = ('', 'tf_')
    #: timm's own ``efficientnet_bX`` in1k weights, evaluated as timm's validate.py does (test size and test
    #: crop_pct when the pretrained config has them): variant → (size, crop_pct).
    OWN_EVAL = {'b0': (224, 0.875), 'b1': (256, 1.0), 'b2': (288, 1.0), 'b3': (320, 1.0), 'b4': (384, 1.0),
                'b5': (448, 1.0)}

    def stem(self) -> ConvBN:
        return ConvBN('conv_stem.weight', 'bn1')

    def block(self, site: BlockSite, names: AbstractSet[str]) -> BlockNames:
        p = f'blocks.{site.stage}.{site.position}'
        se = (f'{p}.se.conv_reduce', f'{p}.se.conv_expand')
        if site.expands:  # InvertedResidual
            return BlockNames(ConvBN(f'{p}.conv_pw.weight', f'{p}.bn1'), ConvBN(f'{p}.conv_dw.weight', f'{p}.bn2'),
                              *se, ConvBN(f'{p}.conv_pwl.weight', f'{p}.bn3'))
        # DepthwiseSeparableConv: its 1x1 projection is named conv_pw
        return BlockNames(None, ConvBN(f'{p}.conv_dw.weight', f'{p}.bn1'), *se,
                          ConvBN(f'{p}.conv_pw.weight', f'{p}.bn2'))

    def head(self, num_layers: int) -> ConvBN:
        return ConvBN('conv_head.weight', 'bn2')

    def is_training_state(self, name: str) -> bool:
        return name.endswith('.num_batches_tracked')

    def model_options(self, variant: Variant, flavour: Optional[str] = None) -> ModelOptions:
        if flavour not in self.FLAVOURS:
            raise ConversionError(f'timm flavour must be one of {self.FLAVOURS}, got {flavour!r}')
        if flavour == 'tf_':
            return ModelOptions('same', 1e-3, 0.1)
        return ModelOptions('symmetric', 1e-5, 0.1)

    def template_for(self, flavour: Optional[str]) -> str:
        return 'efficientnet-b0_tf-timm_in1k.py' if flavour == 'tf_' else 'efficientnet-b0_timm_in1k.py'

    def preprocessing(self, variant: Variant, flavour: Optional[str] = None, hub_config: Optional[Mapping] = None,
                      advprop: bool = False) -> EvalPreprocessing:
        cfg = (hub_config or {}).get('pretrained_cfg') or {}
        if cfg:
            size = cfg.get('test_input_size') or cfg['input_size']
            crop_pct = cfg.get('test_crop_pct') if cfg.get('test_input_size') else None
            crop_pct = crop_pct or cfg.get('crop_pct', 0.875)
            mean = tuple(round(m * 255, 6) for m in cfg.get('mean', (0.485, 0.456, 0.406)))
            std = tuple(round(s * 255, 6) for s in cfg.get('std', (0.229, 0.224, 0.225)))
            return EvalPreprocessing.from_crop_pct(int(size[-1]), float(crop_pct),
                                                   interpolation=cfg.get('interpolation', 'bicubic'),
                                                   mean=_known_constants(mean), std=_known_constants(std))
        if flavour == 'tf_':  # timm's tf_ configs: the TF resolution and crop fraction S / (S + 32)
            prep = tf_preprocessing(variant, advprop)
            return EvalPreprocessing.from_crop_pct(prep.crop, variant.crop_pct, mean=prep.mean, std=prep.std)
        size, crop_pct = self.OWN_EVAL.get(variant.name, (variant.resolution, 0.875))
        return EvalPreprocessing.from_crop_pct(size, crop_pct)


class MMPretrainFamily(Family):
    """mmpretrain / mmcls EfficientNet (``.pth``): TF weights converted by mmpretrain, the same layer grouping as
    effnet_mm with PyTorch BN names."""

    name = 'mmpretrain'
    title = 'mmpretrain'
    bn_names = TORCH_BN
    markers = ('backbone.layers.0.conv.weight', 'backbone.layers.0.bn.running_mean')
    head_conv = 'backbone.layers.6.conv.weight'
    block_pattern = re.compile(r'^backbone\.layers\.([1-5])\.(\d+)\.')
    classifier = 'head.fc'

    def stem(self) -> ConvBN:
        return ConvBN('backbone.layers.0.conv.weight', 'backbone.layers.0.bn')

    #: What follows ``se.conv1`` / ``se.conv2`` in the SE conv names (mmpretrain wraps them in a ConvModule).
    se_suffix = '.conv'

    def block(self, site: BlockSite, names: AbstractSet[str]) -> BlockNames:
        p = site.target
        return BlockNames(ConvBN(f'{p}.expand_conv.conv.weight', f'{p}.expand_conv.bn') if site.expands else None,
                          ConvBN(f'{p}.depthwise_conv.conv.weight', f'{p}.depthwise_conv.bn'),
                          f'{p}.se.conv1{self.se_suffix}', f'{p}.se.conv2{self.se_suffix}',
                          ConvBN(f'{p}.linear_conv.conv.weight', f'{p}.linear_conv.bn'))

    def head(self, num_layers: int) -> ConvBN:
        return ConvBN(f'backbone.layers.{num_layers - 1}.conv.weight', f'backbone.layers.{num_layers - 1}.bn')

    def is_training_state(self, name: str) -> bool:
        return name.endswith('.num_batches_tracked')


class EffnetMMFamily(MMPretrainFamily):
    """effnet_mm's own checkpoints (the source of ``--to timm``)."""

    name = 'effnet_mm'
    title = 'effnet_mm'
    bn_names = SAME_BN
    markers = ('backbone.layers.0.conv.weight', 'backbone.layers.0.bn.moving_mean')
    se_suffix = ''

    def is_training_state(self, name: str) -> bool:
        return Family.is_training_state(self, name)


class MindCVFamily(Family):
    """MindCV ``efficientnet_bX`` (``.ckpt``): TF "SAME" padding (MindSpore ``pad_mode='same'``), but MindSpore's
    default BN (eps 1e-5, momentum 0.9, i.e. 0.1 in PyTorch terms) for B0–B4; eps 1e-3 / momentum 0.99 only when the
    width multiplier is at least 1.6 (B5 and up)."""

    name = 'mindcv'
    title = 'MindCV'
    markers = ('features.0.weight', 'features.1.moving_mean')
    head_conv = 'features.10.weight'
    block_pattern = re.compile(r'^features\.([3-9])\.(\d+)\.')
    classifier = 'mlp_head'
    #: Index of the SE cell and of the layers after it in ``block``, with and without an expand conv.
    EXPAND_LAYOUT = {'expand': 0, 'expand_bn': 1, 'dw': 3, 'dw_bn': 4, 'se': 6, 'project': 7, 'project_bn': 8}
    PLAIN_LAYOUT = {'dw': 0, 'dw_bn': 1, 'se': 3, 'project': 4, 'project_bn': 5}

    def stem(self) -> ConvBN:
        return ConvBN('features.0.weight', 'features.1')

    def block(self, site: BlockSite, names: AbstractSet[str]) -> BlockNames:
        p = f'features.{3 + site.stage}.{site.position}.block'
        i = self.EXPAND_LAYOUT if site.expands else self.PLAIN_LAYOUT
        expand = ConvBN(f'{p}.{i["expand"]}.weight', f'{p}.{i["expand_bn"]}') if site.expands else None
        return BlockNames(expand, ConvBN(f'{p}.{i["dw"]}.weight', f'{p}.{i["dw_bn"]}'),
                          f'{p}.{i["se"]}.conv_reduce', f'{p}.{i["se"]}.conv_expand',
                          ConvBN(f'{p}.{i["project"]}.weight', f'{p}.{i["project_bn"]}'))

    def head(self, num_layers: int) -> ConvBN:
        return ConvBN('features.10.weight', 'features.11')

    template = 'efficientnet-b0_mindcv_in1k.py'
    #: ``image_resize`` of MindCV's efficientnet_bX_ascend.yaml (crop_pct 0.875, bicubic, ImageNet mean/std).
    IMAGE_RESIZE = {'b0': 224, 'b1': 240}

    def preprocessing(self, variant: Variant, flavour: Optional[str] = None, hub_config: Optional[Mapping] = None,
                      advprop: bool = False) -> EvalPreprocessing:
        return EvalPreprocessing.from_crop_pct(self.IMAGE_RESIZE.get(variant.name, variant.resolution), 0.875)

    def model_options(self, variant: Variant, flavour: Optional[str] = None) -> ModelOptions:
        if variant.width >= 1.6:
            return ModelOptions('same', 1e-3, 0.01)
        return ModelOptions('same', 1e-5, 0.1)


class MSModelsFamily(Family):
    """MindSpore model zoo ``official/cv/Efficientnet/efficientnet-b*`` (``.ckpt``): TF "SAME" padding, BN eps 1e-3 /
    momentum 0.99 (0.01 in PyTorch terms).

    Its ``MBConv`` always builds ``expand_conv`` (skipped in ``construct`` when the expand ratio is 1) and its
    ``Convolution`` always creates a ``bias`` (added only with ``bias=True``, i.e. in the SE convs): those tensors are
    stored but never used, and are dropped.  SE biases are stored as ``(1, C, 1, 1)``.  The B2 folder names the
    projection conv ``project_conv.0.weight`` (an ``nn.Conv2d``), the B1/B3 folders ``project_conv.0.conv.weight``
    (a ``Convolution`` with an unused bias); both are accepted.
    """

    name = 'msmodels'
    title = 'MindSpore model zoo'
    markers = ('stem.0.conv.weight', 'stem.1.moving_mean')
    head_conv = 'head.0.conv.weight'
    block_pattern = re.compile(r'^blocks\.(\d+)\.layers\.(\d+)\.')
    classifier = 'head.6'
    se_weight = 'conv.weight'  # SE convs are ``Convolution`` cells: an inner conv plus their own (used) bias
    se_bias_layout = BIAS_4D
    template = 'efficientnet-b2_msmodels_in1k.py'
    #: src/dataset.py of each zoo folder: (resize, crop, normalisation); bilinear (MindSpore's Resize default).
    EVAL = {'b2': (280, 260, 'advprop'), 'b3': (320, 300, 'imagenet')}

    def preprocessing(self, variant: Variant, flavour: Optional[str] = None, hub_config: Optional[Mapping] = None,
                      advprop: bool = False) -> EvalPreprocessing:
        # Other variants have no zoo recipe: the B2 rule (crop + 20, mean = std = 127.5) is a guess.
        resize, crop, norm = self.EVAL.get(variant.name, (variant.resolution + 20, variant.resolution, 'advprop'))
        if norm == 'advprop':
            return EvalPreprocessing(crop, resize, 'bilinear', ADVPROP_MEAN, ADVPROP_STD)
        return EvalPreprocessing(crop, resize, 'bilinear')

    def stem(self) -> ConvBN:
        return ConvBN('stem.0.conv.weight', 'stem.1')

    def _prefix(self, site: BlockSite) -> str:
        return f'blocks.{site.stage}.layers.{site.position}'

    def block(self, site: BlockSite, names: AbstractSet[str]) -> BlockNames:
        p = self._prefix(site)
        project = f'{p}.project_conv.0.weight'
        if project not in names and f'{p}.project_conv.0.conv.weight' in names:
            project = f'{p}.project_conv.0.conv.weight'
        expand = ConvBN(f'{p}.expand_conv.0.conv.weight', f'{p}.expand_conv.1') if site.expands else None
        return BlockNames(expand, ConvBN(f'{p}.depth_wise_conv.0.conv.weight', f'{p}.depth_wise_conv.1'),
                          f'{p}.se.se.1', f'{p}.se.se.3', ConvBN(project, f'{p}.project_conv.1'))

    def head(self, num_layers: int) -> ConvBN:
        return ConvBN('head.0.conv.weight', 'head.1')

    def unused_by_source(self, names: AbstractSet[str], sites: Sequence[BlockSite]) -> List[str]:
        unused = []
        for site in sites:
            p = self._prefix(site)
            if not site.expands:  # built, never run
                unused += [n for n in names if n.startswith(f'{p}.expand_conv.')]
            unused += [f'{p}.{cell}.0.bias' for cell in ('expand_conv', 'depth_wise_conv', 'project_conv')]
        unused += ['stem.0.bias', 'head.0.bias']
        return sorted({n for n in unused if n in names})


def _known_constants(values: Tuple[float, ...]) -> Tuple[float, ...]:
    """timm's 0..1 constants times 255 as effnet_mm spells them (ImageNet / AdvProp), else as computed."""
    from effnet_mm.variants import IMAGENET_MEAN, IMAGENET_STD
    for known in (IMAGENET_MEAN, IMAGENET_STD, ADVPROP_MEAN, ADVPROP_STD):
        if all(abs(a - b) < 1e-3 for a, b in zip(values, known)):
            return known
    return values


FAMILIES: Dict[str, Family] = {f.name: f for f in (TimmFamily(), MMPretrainFamily(), MindCVFamily(),
                                                        MSModelsFamily(), EffnetMMFamily())}


def detect_family(names: AbstractSet[str], source: str) -> Family:
    """The family whose marker tensors ``names`` holds.

    Raises:
        ConversionError: no or several families match (the message shows some names and what was expected).
    """
    found = [f for f in FAMILIES.values() if f.matches(names)]
    if len(found) == 1:
        return found[0]
    shown = ', '.join(sorted(names)[:6])
    if not found:
        expected = '; '.join(f'{f.name}: {", ".join(f.markers)}' for f in FAMILIES.values())
        raise ConversionError(f'{source}: unknown parameter layout (names like {shown}); not an EfficientNet of a '
                              f'supported library. Expected tensors, per library: {expected}')
    raise ConversionError(f'{source}: the names fit several libraries ({[f.name for f in found]}); pass --from')


def detect_variant(family: Family, shapes: Mapping[str, Shape], source: str) -> Variant:
    """The variant whose head width and block count the tensors show (B0 and B1 differ only in depth)."""
    if family.head_conv not in shapes:
        raise ConversionError(f'{source}: no head conv {family.head_conv!r}, cannot tell the variant')
    head, blocks = int(shapes[family.head_conv][0]), family.count_blocks(set(shapes))
    for variant in VARIANTS.values():
        if variant.head_channels == head and variant.num_blocks == blocks:
            return variant
    known = ', '.join(f'{v.name} ({v.head_channels}, {v.num_blocks})' for v in VARIANTS.values())
    raise ConversionError(f'{source}: {head} head channels and {blocks} blocks match no EfficientNet variant '
                          f'(head channels, blocks): {known}')


def derive_family_mappings(family: Family, model: nn.Cell, names: AbstractSet[str]) -> List[TensorMapping]:
    """Map every parameter of ``model`` to its tensor in ``family``'s naming (see :func:`block_sites`).

    Args:
        family: the source's naming rules.
        model: the rebuilt :class:`ImageClassifier` (see :func:`.tf_names.build_reference_model`).
        names: the checkpoint's tensor names (for families with alternative names).
    """
    pairs: List[Tuple[str, str, str]] = []

    def conv_bn(target: str, names_: ConvBN) -> None:
        pairs.append((f'{target}.conv.weight', names_.conv, 'same'))
        pairs.extend((f'{target}.bn.{p}', f'{names_.bn}.{family.bn_names[p]}', 'vector') for p in BN_PARAMS)

    num_layers = len(model.backbone.layers)
    conv_bn('backbone.layers.0', family.stem())
    for site in block_sites(model):
        block = family.block(site, names)
        if site.expands:
            conv_bn(f'{site.target}.expand_conv', block.expand)
        conv_bn(f'{site.target}.depthwise_conv', block.depthwise)
        for ours, theirs in (('conv1', block.se_reduce), ('conv2', block.se_expand)):
            pairs += [(f'{site.target}.se.{ours}.weight', f'{theirs}.{family.se_weight}', 'same'),
                      (f'{site.target}.se.{ours}.bias', f'{theirs}.{family.se_bias}', family.se_bias_layout)]
        conv_bn(f'{site.target}.linear_conv', block.project)
    conv_bn(f'backbone.layers.{num_layers - 1}', family.head(num_layers))
    pairs += [('head.fc.weight', f'{family.classifier}.weight', 'same'),
              ('head.fc.bias', f'{family.classifier}.bias', 'vector')]

    shapes = {name: tuple(int(d) for d in p.shape) for name, p in model.parameters_and_names()}
    unknown = [target for target, _, _ in pairs if target not in shapes]
    unmapped = sorted(set(shapes) - {target for target, _, _ in pairs})
    if unknown or unmapped:
        raise ConversionError(f'{family.name} naming does not fit the rebuilt model: derived {unknown[:5]} are not '
                              f'parameters, {unmapped[:5]} have no rule')
    return [TensorMapping(target, source, layout, shapes[target]) for target, source, layout in pairs]
