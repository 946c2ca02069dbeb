"""Convert official TensorFlow EfficientNet checkpoints (tensorflow/tpu) to effnet_mm MindSpore weights.

Pipeline: :func:`plan_conversion` (shapes only: detect the variant, derive the name mapping from the rebuilt model
(:mod:`.tf_names`), choose EMA or raw tensors, validate coverage and shapes) → :func:`read_converted` (read and
re-layout the tensors) → :func:`write_weights` (atomic write).  :func:`convert_tf_checkpoint` runs all three on a
checkpoint prefix, a folder or a released ``.tar.gz``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from effnet_mm.variants import VARIANTS, get_variant
from effnet_mm.version import __version__

from .errors import ConversionError
from .tf_names import LAYOUT_AXES, TF_NUM_CLASSES, TensorMapping, build_reference_model, derive_mappings
from .tf_reader import TensorReader, TFCheckpointReader
from .tf_source import resolve_checkpoint

if TYPE_CHECKING:
    from mindspore import nn

logger = logging.getLogger(__name__)

#: Bumped whenever converted files could differ (mapping, layouts, metadata).
CONVERTER_VERSION = '1.0'
EMA_SUFFIX = '/ExponentialMovingAverage'


@dataclass(frozen=True)
class PlannedTensor:
    """A mapping with the checkpoint tensor actually chosen for it (the EMA shadow or the raw variable)."""

    mapping: TensorMapping
    tensor: str
    is_ema: bool


@dataclass
class ConversionPlan:
    """Everything decided before a single value is read.

    Attributes:
        arch: variant name (``'b0'`` ...).
        scope: TF variable scope (``'efficientnet-b0'``).
        use_ema: EMA shadows were requested.
        tensors: the tensors to convert, in model order.
        omitted: TF variables deliberately left out (the classifier when ``num_classes`` differs).
        ignored: checkpoint tensors that are not weights (``global_step``, RMSProp slots).
        raw_fallbacks: variables converted from raw values although EMA was requested (no shadow).
    """

    arch: str
    scope: str
    use_ema: bool
    tensors: List[PlannedTensor]
    omitted: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)
    raw_fallbacks: List[str] = field(default_factory=list)

    @property
    def weights(self) -> str:
        """``'ema'``, ``'raw'`` or ``'mixed'``: which values the converted tensors hold."""
        kinds = {t.is_ema for t in self.tensors}
        return 'mixed' if len(kinds) > 1 else ('ema' if True in kinds else 'raw')

    @property
    def num_params(self) -> int:
        return int(sum(np.prod(t.mapping.target_shape, dtype=np.int64) for t in self.tensors))


@dataclass
class ConversionResult:
    """What :func:`convert_tf_checkpoint` wrote."""

    path: str
    arch: str
    weights: str
    num_tensors: int
    num_params: int
    classifier_included: bool
    sha256: str

    def summary(self) -> str:
        """One line for logs and the CLI."""
        head = 'with classifier' if self.classifier_included else 'without classifier'
        return (f'Converted efficientnet-{self.arch} ({self.weights.upper()} weights, {head}): '
                f'{self.num_tensors} tensors mapped, {self.num_params:,} parameters -> {self.path}')


# ---------------------------------------------------------------------------------------------------------------
# Planning: variant detection, EMA choice, validation (shapes only)
# ---------------------------------------------------------------------------------------------------------------


def is_ignored(name: str) -> bool:
    """Tensors that are not model weights: the step counter and RMSProp slots (``<var>/RMSProp``, ``_1``)."""
    return name == 'global_step' or any(part.startswith('RMSProp') for part in name.split('/'))


def detect_arch(names: Sequence[str], source: str = 'checkpoint') -> str:
    """The variant whose ``efficientnet-<arch>/`` scope holds the weights in ``names``.

    Raises:
        ConversionError: no, several or an unknown ``efficientnet-*`` scope.
    """
    scopes = Counter(n.split('/', 1)[0] for n in names if '/' in n and not is_ignored(n))
    candidates = sorted(s for s in scopes if s.startswith('efficientnet-'))
    if len(candidates) != 1:
        raise ConversionError(f'{source}: expected the tensors of exactly one "efficientnet-<arch>/" variable scope, '
                              f'found top-level scopes {dict(sorted(scopes.items()))}')
    try:
        return get_variant(candidates[0]).name
    except KeyError as err:
        raise ConversionError(f'{source}: variable scope {candidates[0]!r} is not a supported variant; supported: '
                              f'{["efficientnet-" + v for v in VARIANTS]}') from err


def plan_conversion(shapes: Mapping[str, Sequence[int]],
                    arch: str = 'auto',
                    use_ema: bool = True,
                    num_classes: int = TF_NUM_CLASSES,
                    source: str = 'checkpoint',
                    model: Optional[nn.Cell] = None) -> ConversionPlan:
    """Decide and validate the whole conversion from the checkpoint's tensor shapes alone.

    Args:
        shapes: every checkpoint tensor name with its shape (:meth:`TensorReader.shapes`).
        arch: ``'auto'`` or the expected variant; a different variant in the checkpoint is an error.
        use_ema: take ``<var>/ExponentialMovingAverage`` (what TF's evaluation restores) when it exists, falling
            back to the raw variable with a warning; False takes the raw variables.
        num_classes: classes of the target model; when it is not 1000 the TF classifier is left out (the file is
            then meant for fine-tuning with a freshly initialised ``head.fc``).
        source: how error messages name the checkpoint.
        model: the rebuilt target model; built by :func:`build_reference_model` when None.

    Raises:
        ConversionError: wrong variant, or any parameter without a tensor, any tensor left unused, or any shape
            mismatch (all of them listed in one message).
    """
    shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
    detected = detect_arch(list(shapes), source)
    if arch != 'auto':
        requested = _requested_arch(arch)
        if requested != detected:
            raise ConversionError(f'{source}: the checkpoint holds efficientnet-{detected} (variable scope '
                                  f'"efficientnet-{detected}/") but --arch {requested} was requested; pass '
                                  f'--arch {detected} or --arch auto')
    if num_classes <= 0:
        raise ConversionError(f'num_classes must be positive, got {num_classes}')
    scope = get_variant(detected).tf_scope
    model = build_reference_model(detected) if model is None else model
    mappings = derive_mappings(model, scope)
    keep_classifier = num_classes == TF_NUM_CLASSES

    plan = ConversionPlan(arch=detected, scope=scope, use_ema=use_ema, tensors=[])
    accounted = set()
    missing, mismatched = [], []
    for mapping in mappings:
        ema = mapping.source + EMA_SUFFIX
        accounted.update((mapping.source, ema))
        if mapping.target.startswith('head.fc.') and not keep_classifier:
            plan.omitted.append(mapping.source)  # a new head is trained: the TF classifier's shape is irrelevant
            continue
        chosen = ema if use_ema and ema in shapes else mapping.source
        if chosen not in shapes:
            hint = ' (only its EMA shadow exists: drop --no-ema)' if ema in shapes else ''
            missing.append(f'{mapping.target} <- {mapping.source}{hint}')
            continue
        if shapes[chosen] != mapping.source_shape:
            mismatched.append(f'{chosen}: checkpoint {list(shapes[chosen])}, expected {list(mapping.source_shape)} '
                              f'for {mapping.target} {list(mapping.target_shape)}')
            continue
        if use_ema and chosen == mapping.source:
            plan.raw_fallbacks.append(mapping.source)
        plan.tensors.append(PlannedTensor(mapping, chosen, chosen == ema))

    plan.ignored = sorted(n for n in shapes if is_ignored(n))
    unused = sorted(set(shapes) - accounted - set(plan.ignored))
    problems = []
    for title, items in (('model parameters without a checkpoint tensor', missing),
                         ('checkpoint tensors with the wrong shape', mismatched),
                         ('checkpoint tensors left unused', unused)):
        if items:
            problems.append(f'{len(items)} {title}:\n  ' + '\n  '.join(items))
    if problems:
        raise ConversionError(f'{source} does not match efficientnet-{detected}:\n' + '\n'.join(problems))

    if plan.omitted:
        logger.info('num_classes=%d differs from the checkpoint\'s %d: leaving out the classifier (%s), so the file '
                    'suits fine-tuning with a new head.fc', num_classes, TF_NUM_CLASSES, ', '.join(plan.omitted))
    if plan.raw_fallbacks:
        shown = ', '.join(plan.raw_fallbacks[:5]) + (' ...' if len(plan.raw_fallbacks) > 5 else '')
        logger.warning('%s: %d of %d variables have no ExponentialMovingAverage shadow; using their raw values (%s). '
                       'TF evaluates with the EMA values, so accuracy may fall short of the published numbers',
                       source, len(plan.raw_fallbacks), len(mappings), shown)
    return plan


def _requested_arch(arch: str) -> str:
    try:
        return get_variant(arch).name
    except KeyError as err:
        raise ConversionError(f'--arch {arch!r} is not a variant; expected auto or one of {sorted(VARIANTS)}') \
            from err


# ---------------------------------------------------------------------------------------------------------------
# Reading, writing, the whole conversion
# ---------------------------------------------------------------------------------------------------------------


def read_converted(plan: ConversionPlan,
                   reader: TensorReader,
                   progress: Optional[Callable[[Iterator], Iterator]] = None) -> Dict[str, np.ndarray]:
    """Read every planned tensor and convert it to MindSpore's layout (float32, C-contiguous).

    Args:
        plan: from :func:`plan_conversion`.
        reader: the checkpoint the plan was made from.
        progress: optional wrapper of the tensor iterator (e.g. a progress bar).

    Raises:
        CheckpointReadError: a tensor cannot be read (truncated or corrupt data file).
        ConversionError: a tensor is not floating point or does not have its declared shape.
    """
    params: Dict[str, np.ndarray] = {}
    items = iter(plan.tensors)
    for planned in (progress(items) if progress else items):
        value = reader.read(planned.tensor)
        if not np.issubdtype(value.dtype, np.floating):
            raise ConversionError(f'Tensor {planned.tensor!r} has dtype {value.dtype}, expected floating point')
        if tuple(value.shape) != planned.mapping.source_shape:
            raise ConversionError(f'Tensor {planned.tensor!r} read with shape {list(value.shape)}, its index '
                                  f'declares {list(planned.mapping.source_shape)}')
        axes = LAYOUT_AXES[planned.mapping.layout]
        if axes is not None:
            value = np.transpose(value, axes)
        params[planned.mapping.target] = np.ascontiguousarray(value, dtype=np.float32)
    return params


def write_weights(params: Mapping[str, np.ndarray], dst: str, meta: Mapping[str, object],
                  publish: bool = False) -> Tuple[str, str]:
    """Atomically write a weights-only checkpoint; with ``publish`` name it ``<stem>-<sha256[:8]>.ckpt``.

    The file is written atomically (a failure leaves nothing behind); with ``publish`` the complete file is then
    renamed to its hashed name.

    Returns:
        ``(path written, sha256 hex digest of the file)``.
    """
    from effnet_mm.utils import save_checkpoint

    if not dst.endswith('.ckpt'):
        raise ConversionError(f'Destination {dst!r} must end with ".ckpt"')
    save_checkpoint(dict(params), dst, meta)
    digest = _sha256(dst)
    if not publish:
        return dst, digest
    final = f'{dst[:-len(".ckpt")]}-{digest[:8]}.ckpt'
    os.replace(dst, final)
    return final, digest


def _sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha.update(chunk)
    return sha.hexdigest()


def convert_tf_checkpoint(src: str,
                          dst: str,
                          arch: str = 'auto',
                          use_ema: bool = True,
                          num_classes: int = TF_NUM_CLASSES,
                          publish: bool = False,
                          show_progress: bool = False) -> ConversionResult:
    """Convert an official TF EfficientNet checkpoint into a weights-only effnet_mm checkpoint.

    Args:
        src: checkpoint prefix (``.../model.ckpt``), folder with a ``checkpoint`` state file, or released
            ``.tar.gz``.
        dst: destination ``.ckpt`` file.
        arch: ``'auto'`` (from the variable scope) or the expected variant, checked against the checkpoint.
        use_ema: prefer the EMA shadows (TF's evaluation weights); False converts the raw variables.
        num_classes: when not 1000 the classifier is left out, for fine-tuning.
        publish: name the file ``<dst stem>-<first 8 hex digits of its sha256>.ckpt`` (OpenMMLab's publish_model).
        show_progress: show a progress bar while reading tensors.

    Returns:
        what was written; nothing is written when an error is raised.

    Raises:
        ConversionError: any problem with the source, the mapping or the destination (subclasses say which).
    """
    if not dst.endswith('.ckpt'):
        raise ConversionError(f'Destination {dst!r} must end with ".ckpt"')
    with tempfile.TemporaryDirectory(prefix='effnet_mm_tf_') as scratch:
        prefix = resolve_checkpoint(src, scratch)
        reader = TFCheckpointReader(prefix)
        plan = plan_conversion(reader.shapes(), arch=arch, use_ema=use_ema, num_classes=num_classes, source=src)
        logger.info('Converting %s (%s, %s weights): %d tensors', src, plan.scope, plan.weights.upper(),
                    len(plan.tensors))
        params = read_converted(plan, reader, _progress_bar(len(plan.tensors)) if show_progress else None)
    in_archive = os.path.commonpath([os.path.abspath(prefix), os.path.abspath(scratch)]) == os.path.abspath(scratch)
    meta = {
        'source': os.path.abspath(src),
        # inside an archive, the path of the checkpoint relative to the archive root
        'source_checkpoint': os.path.relpath(prefix, scratch) if in_archive else os.path.abspath(prefix),
        'arch': plan.arch,
        'tf_scope': plan.scope,
        'ema': plan.weights != 'raw',
        'weights': plan.weights,
        'num_classes': TF_NUM_CLASSES if not plan.omitted else 'none (classifier left out)',
        'converter': 'effnet_mm.converters.tf_efficientnet',
        'converter_version': CONVERTER_VERSION,
        'effnet_mm_version': __version__,
    }
    path, digest = write_weights(params, dst, meta, publish=publish)
    return ConversionResult(path=path, arch=plan.arch, weights=plan.weights, num_tensors=len(params),
                            num_params=int(sum(v.size for v in params.values())),
                            classifier_included=not plan.omitted, sha256=digest)


def _progress_bar(total: int) -> Callable[[Iterator], Iterator]:
    def wrap(items: Iterator) -> Iterator:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(total, file=sys.stderr)  # stdout stays free for the summary line
        step = max(1, total // 50)  # redraw ~50 times: keeps non-terminal logs (CI) short
        done = 0
        for item in items:
            yield item
            done += 1
            if done % step == 0 or done == total:
                bar.update(step if done % step == 0 else done % step)
        bar.file.write('\n')

    return wrap
