"""One entry point for every EfficientNet checkpoint: :func:`convert_weights`.

Source → (auto-detected) format and family → plan from tensor shapes (:class:`~.plan.ConversionPlan`: every tensor
mapped, ignored as training state, dropped as never used by the source, or reported) → read → write atomically,
either an effnet_mm ``.ckpt`` carrying its model config (metadata ``cfg``) or, with ``to='timm'``, a timm hub folder
(``model.safetensors`` + ``config.json``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from effnet_mm.variants import VARIANTS, Variant, get_variant
from effnet_mm.version import __version__

from .errors import CheckpointReadError, ConversionError
from .families import FAMILIES, Family, block_sites, derive_family_mappings, detect_family, detect_variant
from .mindspore_reader import MindSporeCkptReader
from .model_config import CFG_KEY, EvalPreprocessing, ModelOptions, model_config, tf_preprocessing
from .plan import ConversionPlan, PlannedTensor, raise_problems, read_converted
from .safetensors_io import SafetensorsReader, is_safetensors_file
from .tf_efficientnet import plan_conversion
from .tf_names import TF_NUM_CLASSES, build_reference_model
from .tf_reader import TensorReader, TFCheckpointReader
from .tf_source import ARCHIVE_SUFFIXES, STATE_FILE, resolve_checkpoint
from .torch_reader import TorchStateDictReader, is_torch_file

if TYPE_CHECKING:
    from mindspore import nn

logger = logging.getLogger(__name__)

#: Bumped whenever converted files could differ (mapping, layouts, metadata).
CONVERTER_VERSION = '2.0'
#: ``--from`` values.
SOURCES = ('auto', 'tf', 'mmpretrain', 'timm', 'mindcv', 'msmodels', 'effnet_mm')
#: ``--to`` values.
TARGETS = ('effnet_mm', 'timm')
#: File names of a Hugging Face hub folder (what timm's ``save_for_hf`` / ``push_to_hf_hub`` write).
HUB_CONFIG = 'config.json'
HUB_WEIGHTS = ('model.safetensors', 'pytorch_model.bin')
_ADVPROP_HINT = re.compile(r'advprop|01norm', re.IGNORECASE)


@dataclass(frozen=True)
class ArchRequest:
    """``--arch``: a variant (``b0``, ``efficientnet-b0``) and, in timm's names, the flavour (``efficientnet_b0``:
    ``''``, ``tf_efficientnet_b0``: ``'tf_'``)."""

    variant: Optional[str] = None
    flavour: Optional[str] = None

    @classmethod
    def parse(cls, arch: str) -> ArchRequest:
        if arch in (None, '', 'auto'):
            return cls()
        match = re.fullmatch(r'(tf_)?efficientnet_([a-z]\d+)', str(arch).lower())
        try:
            if match:
                return cls(get_variant(match.group(2)).name, match.group(1) or '')
            return cls(get_variant(arch).name)
        except KeyError:
            raise ConversionError(f'--arch {arch!r} is not a variant; expected auto, one of {sorted(VARIANTS)}, or a '
                                  f'timm name such as efficientnet_b0 / tf_efficientnet_b0') from None


@dataclass
class Source:
    """An opened checkpoint: where it is, its on-disk format, a reader, and what came with it."""

    path: str
    format: str
    reader: TensorReader
    hub_config: Optional[dict] = None
    ignored: List[str] = field(default_factory=list)  # non-tensor entries of the file
    tf_prefix: Optional[str] = None


@dataclass
class ConversionResult:
    """What :func:`convert_weights` wrote (see :meth:`summary`)."""

    path: str
    source: str
    source_format: str
    family: str
    source_arch: str
    arch: str
    options: ModelOptions
    weights: str
    num_tensors: int
    num_params: int
    classifier_included: bool
    sha256: str
    ignored: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    config: Optional[str] = None
    preprocessing: Optional[EvalPreprocessing] = None
    to: str = 'effnet_mm'
    cfg_text: str = ''

    def summary(self) -> str:
        """Lines for logs and the CLI: what was converted, what was left aside, how to evaluate it."""
        head = 'with classifier' if self.classifier_included else 'without classifier'
        if self.family == 'tf':
            lines = [f'Converted efficientnet-{self.arch} ({self.weights.upper()} weights, {head}): '
                     f'{self.num_tensors} tensors mapped, {self.num_params:,} parameters -> {self.path}']
        else:
            lines = [f'Converted {FAMILIES[self.family].title} {self.source_arch} ({self.source_format}, {head}): '
                     f'{self.num_tensors} tensors mapped, {self.num_params:,} parameters -> {self.path}']
        for title, items in (('ignored (not weights: training state, metadata)', self.ignored),
                             ('dropped (stored by the source, never used by its forward pass)', self.unused)):
            if items:
                lines.append(f'  {title}: {len(items)}: {_shorten(items)}')
        pad = 'TF "SAME"' if self.options.padding == 'same' else 'symmetric (k // 2)'
        lines.append(f'  model: efficientnet-{self.arch}, {pad} padding, BN eps {self.options.bn_eps:g}, momentum '
                     f'{self.options.bn_momentum:g}')
        if self.preprocessing is not None:
            lines.append(f'  evaluation preprocessing of the source: {self.preprocessing.describe()}')
        if self.to == 'timm':
            lines.append(f'  load in timm: timm.create_model("local-dir:{self.path}", pretrained=True)')
        elif self.config:
            lines.append(f'  evaluate: python tools/test.py {self.config} {self.path}')
        else:
            lines.append('  evaluate: no zoo config matches; the model config is stored in the checkpoint '
                         f'(effnet_mm.apis.init_model(checkpoint="{self.path}")), write it out with --save-config')
        return '\n'.join(lines)


def _shorten(items: List[str], limit: int = 4) -> str:
    return ', '.join(items[:limit]) + (f' ... ({len(items) - limit} more)' if len(items) > limit else '')


# ---------------------------------------------------------------------------------------------------------------
# Opening a source: format detection
# ---------------------------------------------------------------------------------------------------------------


def _is_tf_folder(path: str) -> bool:
    names = os.listdir(path)
    return STATE_FILE in names or any(n.endswith('.index') for n in names)


def open_source(src: str, scratch: str, source: str = 'auto') -> Source:
    """Open ``src`` with the reader its on-disk format needs (``source='tf'``: as a TF checkpoint, whatever it is).

    ``src`` may be a TF checkpoint (prefix, folder with a ``checkpoint`` state file, released ``.tar.gz``), a
    Hugging Face hub folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), a ``.safetensors``
    file, a PyTorch ``.pth``/``.bin`` (zip or legacy format) or a MindSpore ``.ckpt``.

    Raises:
        ConversionError: ``src`` does not exist or is of no known format (subclasses for unreadable files).
    """
    if source == 'tf':
        return _open_tf(src, scratch)
    if os.path.isdir(src):
        if os.path.isfile(os.path.join(src, HUB_CONFIG)):
            weights = [os.path.join(src, n) for n in HUB_WEIGHTS if os.path.isfile(os.path.join(src, n))]
            if not weights:
                raise ConversionError(f'Folder {src!r} has a {HUB_CONFIG} but none of {list(HUB_WEIGHTS)}')
            source = open_source(weights[0], scratch)
            source.hub_config = _read_hub_config(os.path.join(src, HUB_CONFIG))
            return source
        if _is_tf_folder(src):
            return _open_tf(src, scratch)
        raise ConversionError(f'Folder {src!r} is neither a TF checkpoint folder (with a "{STATE_FILE}" file) nor a '
                              f'Hugging Face hub folder ({HUB_CONFIG} + {" or ".join(HUB_WEIGHTS)})')
    if os.path.isfile(src) and src.endswith(ARCHIVE_SUFFIXES):
        return _open_tf(src, scratch)
    if not os.path.isfile(src):
        prefix = src[:-len('.index')] if src.endswith('.index') else src
        if os.path.isfile(prefix + '.index'):
            return _open_tf(prefix, scratch)
        raise ConversionError(f'Source {src!r} does not exist')
    if os.path.getsize(src) == 0:
        raise CheckpointReadError(f'{src}: the file is empty')
    if is_safetensors_file(src):
        return Source(src, 'safetensors', SafetensorsReader(src))
    if is_torch_file(src):
        reader = TorchStateDictReader(src)
        return Source(src, f'torch {reader.checkpoint.format} pickle', reader, ignored=list(reader.ignored))
    if src.endswith('.ckpt'):
        reader = MindSporeCkptReader(src)
        return Source(src, 'MindSpore ckpt', reader, ignored=list(reader.ignored))
    if src.endswith('.index'):
        return _open_tf(src, scratch)
    raise CheckpointReadError(f'{src}: unknown file format: not a .safetensors file, a PyTorch checkpoint (zip or '
                              f'legacy torch.save), a MindSpore .ckpt or a TF checkpoint')


def _open_tf(src: str, scratch: str) -> Source:
    prefix = resolve_checkpoint(src, scratch)
    return Source(src, 'TF checkpoint', TFCheckpointReader(prefix), tf_prefix=prefix)


def _read_hub_config(path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointReadError(f'{path}: cannot read the JSON config: {err}') from err
    if not isinstance(config, dict):
        raise CheckpointReadError(f'{path}: expected a JSON object, got {type(config).__name__}')
    return config


# ---------------------------------------------------------------------------------------------------------------
# Planning (shapes only)
# ---------------------------------------------------------------------------------------------------------------


def plan_family_conversion(shapes: Mapping[str, Tuple[int, ...]],
                           family: Family,
                           arch: Optional[str] = None,
                           num_classes: Optional[int] = None,
                           source: str = 'checkpoint',
                           model: Optional[nn.Cell] = None) -> ConversionPlan:
    """Decide and validate a conversion from a non-TF family's tensor shapes alone.

    Args:
        shapes: every checkpoint tensor with its shape.
        family: the source's naming rules.
        arch: the expected variant (None: detected from the head width and the number of blocks).
        num_classes: None keeps the checkpoint's classifier; another count than the checkpoint's leaves it out.
        source: how messages name the checkpoint.
        model: the rebuilt target model (built when None; must be of the checkpoint's variant and classes).

    Raises:
        ConversionError: wrong variant, or any parameter without a tensor, any tensor left unaccounted for, or any
            shape mismatch (all of them listed in one message).
    """
    names = set(shapes)
    ignored = sorted(n for n in names if family.is_training_state(n))
    weights = {n: tuple(s) for n, s in shapes.items() if n not in ignored}
    variant = detect_variant(family, weights, source)
    if arch is not None and arch != variant.name:
        raise ConversionError(f'{source}: the checkpoint holds efficientnet-{variant.name} ({family.title} names, '
                              f'{variant.head_channels} head channels, {variant.num_blocks} blocks) but --arch {arch} '
                              f'was requested; pass --arch {variant.name} or --arch auto')
    fc_bias = weights.get(f'{family.classifier}.bias')
    checkpoint_classes = int(fc_bias[0]) if fc_bias else None
    classes = checkpoint_classes if num_classes is None else num_classes
    if classes is None or classes <= 0:
        raise ConversionError(f'{source}: no classifier {family.classifier}.bias; pass a positive num_classes')
    model = build_reference_model(variant.name, classes) if model is None else model
    unused = family.unused_by_source(names, block_sites(model))
    plan = ConversionPlan(arch=variant.name, scope='', use_ema=False, tensors=[], ignored=ignored, unused=unused,
                          num_classes=classes)
    missing, mismatched, accounted = [], [], set(ignored) | set(unused)
    for mapping in derive_family_mappings(family, model, names):
        accounted.add(mapping.source)
        if mapping.target.startswith('head.fc.') and classes != checkpoint_classes:
            if mapping.source in weights:
                plan.omitted.append(mapping.source)
            continue
        if mapping.source not in weights:
            missing.append(f'{mapping.target} <- {mapping.source}')
        elif weights[mapping.source] != mapping.source_shape:
            mismatched.append(f'{mapping.source}: checkpoint {list(weights[mapping.source])}, expected '
                              f'{list(mapping.source_shape)} for {mapping.target} {list(mapping.target_shape)}')
        else:
            plan.tensors.append(PlannedTensor(mapping, mapping.source))
    if plan.omitted:
        plan.num_classes = None
    left = sorted(names - accounted)
    raise_problems(source, f'{family.title} efficientnet-{variant.name}', [
        ('model parameters without a checkpoint tensor', missing),
        ('checkpoint tensors with the wrong shape', mismatched),
        ('checkpoint tensors left unused', left)])
    return plan


def _timm_flavour(family: Family, request: ArchRequest, hub_config: Optional[dict], variant: str,
                  source: str) -> Optional[str]:
    if family.name != 'timm':
        if request.flavour == 'tf_':
            raise ConversionError(f'--arch tf_efficientnet_{variant} names a timm model, but {source} is a '
                                  f'{family.title} checkpoint; pass --arch {variant}')
        return None
    architecture = (hub_config or {}).get('architecture')
    if architecture:
        match = re.fullmatch(r'(tf_)?efficientnet_([a-z]\d+)', str(architecture))
        if not match:
            raise ConversionError(f'{source}: config.json names the architecture {architecture!r}, not a timm '
                                  f'EfficientNet (efficientnet_bX or tf_efficientnet_bX)')
        flavour = match.group(1) or ''
        if request.flavour is not None and request.flavour != flavour:
            raise ConversionError(f'{source}: config.json says {architecture!r} but --arch '
                                  f'{request.flavour}efficientnet_{variant} was requested')
        return flavour
    if request.flavour is None:
        raise ConversionError(
            f'{source}: timm\'s efficientnet_{variant} and tf_efficientnet_{variant} share every tensor name and '
            f'shape, and there is no config.json to tell them apart. Pass --arch efficientnet_{variant} (timm\'s own '
            f'training: symmetric padding, BN eps 1e-5) or --arch tf_efficientnet_{variant} (ported TF weights: TF '
            f'"SAME" padding, BN eps 1e-3)')
    return request.flavour


def _hub_overrides(options: ModelOptions, hub_config: Optional[dict]) -> ModelOptions:
    """``model_args`` of a timm config.json (written by our export) that change BN eps/momentum or padding."""
    args = (hub_config or {}).get('model_args') or {}
    padding = {'same': 'same', '': 'symmetric'}.get(args.get('pad_type'), options.padding)
    return ModelOptions(padding, float(args.get('bn_eps', options.bn_eps)),
                        float(args.get('bn_momentum', options.bn_momentum)))


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def check_destination(dst: str, to: str, force: bool) -> None:
    """Refuse a destination before any work: a folder where a file goes, or an existing one without ``force``."""
    if to == 'effnet_mm':
        if not dst.endswith('.ckpt'):
            raise ConversionError(f'Destination {dst!r} must end with ".ckpt"')
        if os.path.isdir(dst):
            raise ConversionError(f'Destination {dst!r} is a folder; give the path of the .ckpt file to write')
    elif os.path.exists(dst) and not os.path.isdir(dst):
        raise ConversionError(f'Destination {dst!r} is a file; --to timm writes a folder (model.safetensors + '
                              f'config.json)')
    if os.path.lexists(dst) and not force:
        raise ConversionError(f'Destination {dst!r} already exists; pass --force to replace it')


def _sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha.update(chunk)
    return sha.hexdigest()


def write_weights(params: Mapping[str, np.ndarray], dst: str, meta: Mapping[str, object], publish: bool = False,
                  force: bool = False) -> Tuple[str, str]:
    """Atomically write a weights-only checkpoint; with ``publish`` name it ``<stem>-<sha256[:8]>.ckpt``.

    Nothing is left behind on failure, and an existing file is replaced only with ``force``.

    Returns:
        ``(path written, sha256 hex digest of the file)``.
    """
    from effnet_mm.utils import save_checkpoint
    from effnet_mm.utils.fileio import atomic_write, partial_path

    if not publish:
        try:
            save_checkpoint(dict(params), dst, meta, overwrite=force)
        except FileExistsError as err:
            raise ConversionError(f'Destination {dst!r} already exists; pass --force to replace it') from err
        return dst, _sha256(dst)
    scratch = partial_path(dst)  # the name depends on the content: write, hash, then move into place
    try:
        save_checkpoint(dict(params), scratch, meta)
        digest = _sha256(scratch)
        final = f'{dst[:-len(".ckpt")]}-{digest[:8]}.ckpt'
        try:
            with atomic_write(final, overwrite=force) as tmp:
                os.replace(scratch, tmp)
        except FileExistsError as err:
            raise ConversionError(f'Destination {final!r} already exists; pass --force to replace it') from err
    finally:
        if os.path.lexists(scratch):
            os.remove(scratch)
    return final, digest


def _progress_bar(total: int) -> Callable[[Iterator], Iterator]:
    def wrap(items: Iterator) -> Iterator:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(total, file=sys.stderr)  # stdout stays free for the summary
        step = max(1, total // 50)  # redraw ~50 times: keeps non-terminal logs (CI) short
        done = 0
        for item in items:
            yield item
            done += 1
            if done % step == 0 or done == total:
                bar.update(step if done % step == 0 else done % step)
        bar.file.write('\n')

    return wrap


# ---------------------------------------------------------------------------------------------------------------
# The conversion
# ---------------------------------------------------------------------------------------------------------------


def convert_weights(src: str,
                    dst: str,
                    source: str = 'auto',
                    arch: str = 'auto',
                    to: str = 'effnet_mm',
                    num_classes: Optional[int] = None,
                    use_ema: bool = True,
                    config: Optional[str] = None,
                    force: bool = False,
                    publish: bool = False,
                    show_progress: bool = False) -> ConversionResult:
    """Convert an EfficientNet checkpoint of TF, mmpretrain, timm, MindCV, the MindSpore model zoo (or effnet_mm
    itself) into effnet_mm weights, or into a timm hub folder.

    Args:
        src: the checkpoint: a file, a TF checkpoint folder/prefix/``.tar.gz`` or a Hugging Face hub folder.
        dst: the ``.ckpt`` to write (``to='effnet_mm'``) or the folder to write (``to='timm'``).
        source: ``'auto'`` (from the file type and tensor names) or one of :data:`SOURCES`, checked against the file.
        arch: ``'auto'`` (from the tensor shapes), a variant (``'b3'``) or a timm name (``'tf_efficientnet_b3'``):
            needed for a bare timm file, whose names do not tell timm's two flavours apart.
        to: ``'effnet_mm'`` or ``'timm'`` (``model.safetensors`` + ``config.json`` that timm loads).
        num_classes: None keeps the checkpoint's classifier; another count leaves it out (for fine-tuning).
        use_ema: TF only: take the ExponentialMovingAverage shadows (what TF evaluates).
        config: a config file to store with the weights instead of the automatic one; its model must agree with the
            weights (variant, padding, BN eps).
        force: replace an existing destination.
        publish: ``<dst stem>-<sha256[:8]>.ckpt`` (OpenMMLab's publish_model naming).
        show_progress: a progress bar on stderr while tensors are read.

    Returns:
        what was written; nothing is written when an error is raised.

    Raises:
        ConversionError: any problem with the source, the mapping or the destination (subclasses say which).
    """
    if source not in SOURCES:
        raise ConversionError(f'--from {source!r} is not a source; expected one of {list(SOURCES)}')
    if to not in TARGETS:
        raise ConversionError(f'--to {to!r} is not a target; expected one of {list(TARGETS)}')
    if num_classes is not None and num_classes <= 0:
        raise ConversionError(f'num_classes must be positive, got {num_classes}')
    if publish and to != 'effnet_mm':
        raise ConversionError('--publish names .ckpt files; it does not apply to --to timm')
    check_destination(dst, to, force)
    request = ArchRequest.parse(arch)
    with tempfile.TemporaryDirectory(prefix='effnet_mm_convert_') as scratch:
        opened = open_source(src, scratch, source)
        shapes = opened.reader.shapes()
        flavour = None
        if opened.tf_prefix is not None:
            family_name = 'tf'
            if source not in ('auto', 'tf'):
                raise ConversionError(f'--from {source} was requested but {src!r} is a TF checkpoint')
            plan = plan_conversion(shapes, arch=request.variant or 'auto', use_ema=use_ema,
                                   num_classes=TF_NUM_CLASSES if num_classes is None else num_classes, source=src)
            variant = get_variant(plan.arch)
            options = ModelOptions()
            preprocessing = tf_preprocessing(variant, advprop=bool(_ADVPROP_HINT.search(src)))
            template, source_arch = FAMILIES['mmpretrain'].template, variant.tf_scope
        else:
            family = detect_family(set(shapes), src)
            family_name = family.name
            if source not in ('auto', family.name):
                raise ConversionError(f'--from {source} was requested but {src!r} holds {family.title} tensor names '
                                      f'(--from {family.name})')
            plan = plan_family_conversion(shapes, family, request.variant, num_classes, src)
            variant = get_variant(plan.arch)
            flavour = _timm_flavour(family, request, opened.hub_config, variant.name, src)
            options = _hub_overrides(family.model_options(variant, flavour), opened.hub_config)
            preprocessing = family.preprocessing(variant, flavour, opened.hub_config,
                                                 advprop=bool(_ADVPROP_HINT.search(src)))
            template = family.template_for(flavour)
            source_arch = f'{flavour or ""}efficientnet_{variant.name}' if family.name in ('timm', 'mindcv') else \
                f'efficientnet-{variant.name}'
        if family_name == 'effnet_mm':
            options, preprocessing, template = _effnet_mm_model(opened, variant, options, preprocessing, template)
        logger.info('Converting %s (%s, %s %s): %d tensors', src, opened.format, family_name, source_arch,
                    len(plan.tensors))
        params = read_converted(plan, opened.reader, _progress_bar(len(plan.tensors)) if show_progress else None)
    classes = plan.num_classes if plan.num_classes is not None else (num_classes or TF_NUM_CLASSES)
    if config is not None:
        cfg_text, zoo = _user_config(config, variant, options, classes)
    else:
        cfg_text, zoo = model_config(template, variant, options, preprocessing, classes)
    result = ConversionResult(
        path=dst, source=os.path.abspath(src), source_format=opened.format, family=family_name,
        source_arch=source_arch, arch=variant.name, options=options,
        weights=plan.weights if family_name == 'tf' else 'as stored', num_tensors=len(params),
        num_params=int(sum(v.size for v in params.values())),
        classifier_included=not plan.omitted, sha256='', ignored=list(opened.ignored) + list(plan.ignored),
        unused=list(plan.unused), config=zoo, preprocessing=preprocessing, to=to, cfg_text=cfg_text)
    if to == 'timm':
        from .timm_export import export_timm
        export_timm(params, dst, variant, options, preprocessing, plan.num_classes, force=force)
        result.sha256 = _sha256(os.path.join(dst, 'model.safetensors'))
        return result
    meta = {
        'source': os.path.abspath(src),
        'source_format': opened.format,
        'source_library': family_name,
        'source_arch': source_arch,
        'arch': variant.name,
        'padding': options.padding,
        'bn_eps': options.bn_eps,
        'bn_momentum': options.bn_momentum,
        'num_classes': plan.num_classes if plan.num_classes is not None else 'none (classifier left out)',
        'weights': result.weights,
        'config': zoo or '',
        CFG_KEY: cfg_text,
        'converter': 'effnet_mm.converters.convert_weights',
        'converter_version': CONVERTER_VERSION,
        'effnet_mm_version': __version__,
    }
    if opened.tf_prefix is not None:
        meta['ema'] = result.weights != 'raw'
        meta['tf_scope'] = variant.tf_scope
        in_archive = os.path.commonpath([os.path.abspath(opened.tf_prefix), os.path.abspath(scratch)]) == \
            os.path.abspath(scratch)
        meta['source_checkpoint'] = os.path.relpath(opened.tf_prefix, scratch) if in_archive else \
            os.path.abspath(opened.tf_prefix)
    result.path, result.sha256 = write_weights(params, dst, meta, publish=publish, force=force)
    return result


def _effnet_mm_model(opened: Source, variant: Variant, options: ModelOptions, preprocessing: EvalPreprocessing,
                     template: str) -> Tuple[ModelOptions, EvalPreprocessing, str]:
    """The options and preprocessing an effnet_mm checkpoint's own config says (its ``cfg`` metadata)."""
    from mmengine.config import Config

    text = getattr(opened.reader, 'meta', {}).get(CFG_KEY)
    if not text:
        logger.warning('%s has no stored config (metadata "cfg"): assuming the TF network and preprocessing',
                       opened.path)
        return options, preprocessing, template
    cfg = Config.fromstring(text, '.py')
    backbone = cfg.model.backbone
    norm = {'eps': options.bn_eps, 'momentum': options.bn_momentum, **(backbone.get('norm_cfg') or {})}
    options = ModelOptions(backbone.get('padding', 'same'), float(norm['eps']), float(norm['momentum']))
    return options, _preprocessing_of(cfg, variant), template


def _preprocessing_of(cfg, variant: Variant) -> EvalPreprocessing:
    """The :class:`EvalPreprocessing` a config's test pipeline and data preprocessor describe."""
    pre = cfg.model.get('data_preprocessor') or cfg.data_preprocessor
    mean, std = tuple(pre['mean']), tuple(pre['std'])
    steps = {t['type']: t for t in cfg.test_dataloader.dataset.pipeline}
    if 'ResizeEdge' in steps and 'CenterCrop' in steps:
        return EvalPreprocessing(int(steps['CenterCrop']['crop_size']), int(steps['ResizeEdge']['scale']),
                                 steps['ResizeEdge'].get('interpolation', 'bilinear'), mean, std)
    crop = steps.get('EfficientNetCenterCrop', {}).get('crop_size', variant.resolution)
    return EvalPreprocessing(int(crop), None, 'bicubic', mean, std)


def _user_config(path: str, variant: Variant, options: ModelOptions, num_classes: int) -> Tuple[str, str]:
    """``--config``: its text, after checking that its model computes what the weights need."""
    from mmengine.config import Config

    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    norm = {'eps': 1e-3, **(backbone.get('norm_cfg') or {})}
    found = (backbone.get('arch'), backbone.get('padding', 'same'), float(norm['eps']), cfg.model.head.num_classes)
    wanted = (variant.name, options.padding, options.bn_eps, num_classes)
    if found != wanted:
        raise ConversionError(f'--config {path}: its model has (arch, padding, BN eps, classes) = {found}, the weights '
                              f'need {wanted}')
    return cfg.pretty_text, path


def convert_tf_checkpoint(src: str,
                          dst: str,
                          arch: str = 'auto',
                          use_ema: bool = True,
                          num_classes: int = TF_NUM_CLASSES,
                          publish: bool = False,
                          show_progress: bool = False,
                          force: bool = False):
    """:func:`effnet_mm.converters.convert_weights` with ``source='tf'`` (kept for ``tools/convert_tf_weights.py``).

    Args:
        src: checkpoint prefix (``.../model.ckpt``), folder with a ``checkpoint`` state file, or released
            ``.tar.gz``.
        dst: destination ``.ckpt`` file.
        arch: ``'auto'`` (from the variable scope) or the expected variant, checked against the checkpoint.
        use_ema: prefer the EMA shadows (TF's evaluation weights); False converts the raw variables.
        num_classes: when not 1000 the classifier is left out, for fine-tuning.
        publish: name the file ``<dst stem>-<first 8 hex digits of its sha256>.ckpt`` (OpenMMLab's publish_model).
        show_progress: show a progress bar while reading tensors.
        force: replace an existing destination.
    """
    return convert_weights(src, dst, source='tf', arch=arch, use_ema=use_ema, num_classes=num_classes,
                           publish=publish, show_progress=show_progress, force=force)
