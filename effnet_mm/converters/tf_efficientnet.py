"""Plan the conversion of an official TensorFlow EfficientNet checkpoint (tensorflow/tpu) from its tensor shapes.

:func:`plan_conversion` detects the variant from the variable scope, derives the name mapping from the rebuilt model
(:mod:`.tf_names`), chooses EMA or raw tensors and validates coverage and shapes; the conversion itself (reading,
writing, the config stored with the weights) is :func:`effnet_mm.converters.convert_weights` with ``source='tf'``.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from effnet_mm.variants import VARIANTS, get_variant

from .errors import ConversionError
from .plan import ConversionPlan, PlannedTensor, raise_problems
from .tf_names import TF_NUM_CLASSES, build_reference_model, derive_mappings

if TYPE_CHECKING:
    from mindspore import nn

logger = logging.getLogger(__name__)

EMA_SUFFIX = '/ExponentialMovingAverage'


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
    raise_problems(source, f'efficientnet-{detected}', [('model parameters without a checkpoint tensor', missing),
                                                        ('checkpoint tensors with the wrong shape', mismatched),
                                                        ('checkpoint tensors left unused', unused)])
    plan.num_classes = TF_NUM_CLASSES if keep_classifier else None

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
