"""Checkpoint tensors → model parameters: the one loader used by the runner, the APIs, tools and converters.

Values are written with :func:`~effnet_mm.runtime.param_io.write_params` (an ``Assign`` inside a graph), so loading
works the same before and after the model's graphs are compiled.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mindspore import Parameter

from .param_io import write_params

#: Prefix under which ``EMAHook`` stores the raw training weights beside the averages (the plain names).
ONLINE_PREFIX = 'online.'
#: Checkpoint entries that are training state, not evaluation weights: the slots of the runner's optimizers
#: (RMSProp ``moment``/``mean_square``/``mean_grad``, SGD ``moments``, AdamW ``adam_m``/``adam_v``), the loss
#: scaler, gradient accumulation buffers and, with ``EMAHook``, the raw training weights ``online.<param>``.
TRAINING_STATE_PREFIXES: Tuple[str, ...] = (ONLINE_PREFIX, 'moment.', 'mean_square.', 'mean_grad.', 'moments.',
                                            'adam_m.', 'adam_v.', 'loss_scaler.', 'accum_grad.')
#: The optimizers' step and learning-rate counters.
TRAINING_STATE_NAMES: Tuple[str, ...] = ('global_step', 'learning_rate')
#: Parameters a fine-tuning run (``load_from``) may leave at their initial values when the shapes differ.
HEAD_PREFIX = 'head.'

logger = logging.getLogger(__name__)


def is_training_state(name: str) -> bool:
    """True for checkpoint entries that hold optimizer/EMA/loss-scale state rather than model weights."""
    return name in TRAINING_STATE_NAMES or name.startswith(TRAINING_STATE_PREFIXES)


def as_array(value: object) -> np.ndarray:
    """A checkpoint value (Parameter, Tensor or array) as a numpy array."""
    return value.asnumpy() if hasattr(value, 'asnumpy') else np.asarray(value)


def _format_names(names: Sequence[str], limit: int = 10) -> str:
    shown = ', '.join(names[:limit])
    return shown + (f' ... ({len(names)} in total)' if len(names) > limit else '')


def _mismatch_hint(model: object, state: Mapping, meta: Mapping[str, str], prefix: str, missing: Sequence[str],
                   mismatched: Sequence[str]) -> str:
    """The likely cause of a failed load, for the error message."""
    head_only = not missing and mismatched and all(m.startswith(f'{prefix}{HEAD_PREFIX}') for m in mismatched)
    fc = state.get(f'{prefix}{HEAD_PREFIX}fc.bias')
    if head_only and fc is not None:
        return (f'  The checkpoint classifies {int(as_array(fc).shape[0])} classes: set model.head.num_classes='
                f'{int(as_array(fc).shape[0])} (or fine-tune from it with load_from=..., which skips the head).')
    arch = getattr(getattr(model, 'backbone', None), 'arch', None)
    saved = f' (its metadata says arch={meta["arch"]!r})' if meta.get('arch') else ''
    return f'  The checkpoint is probably of another variant than the config\'s arch={arch!r}{saved}.'


def load_state(model: object,
               state: Mapping[str, object],
               source: str,
               *,
               params: Optional[Iterable[Parameter]] = None,
               prefix: str = '',
               finetune: bool = False,
               meta: Optional[Mapping[str, str]] = None,
               hint: Optional[str] = None,
               log: Optional[logging.Logger] = None) -> List[str]:
    """Copy ``state[prefix + p.name]`` into every parameter ``p`` of ``model`` (or of ``params``).

    Every parameter must be present with the same shape, otherwise nothing is written and the error lists the
    missing / mismatched names with both shapes and the likely cause.  Only fine-tuning (``finetune=True``, what
    ``load_from`` does in training) leaves ``head.*`` parameters whose shape differs at their initial values, and
    says so in one log line.

    Args:
        model: the classifier (its parameters are loaded unless ``params`` is given; also used for the error hint).
        state: tensors by name; entries that are not parameters are ignored here (see :func:`load_weights`).
        source: where ``state`` comes from, for messages (a checkpoint path).
        params: load these parameters instead of all of the model's (e.g. optimizer state).
        prefix: read ``prefix + name`` (``'online.'``: the raw weights of an ``EMAHook`` run).
        finetune: skip ``head.*`` parameters whose shape differs.
        meta: the checkpoint's metadata, for the error hint.
        hint: the likely cause to state on a mismatch (default: guessed from the model and the checkpoint).
        log: receives the fine-tuning line (default: this module's logger).

    Returns:
        The names of the parameters left unloaded (fine-tuning only).

    Raises:
        KeyError: one message listing every missing or mismatched parameter.
    """
    params = list(model.get_parameters() if params is None else params)
    missing, mismatched, skipped, updates = [], [], [], []
    for param in params:
        key = prefix + param.name
        if key not in state:
            missing.append(key)
            continue
        value = as_array(state[key])
        if tuple(value.shape) != tuple(param.shape):
            text = f'{key}: checkpoint {tuple(value.shape)} vs model {tuple(param.shape)}'
            (skipped if finetune and param.name.startswith(HEAD_PREFIX) else mismatched).append(text)
            continue
        updates.append((param, value))
    if missing or mismatched:
        lines = [f'{source} does not match the model ({len(params)} parameters):']
        if missing:
            lines.append(f'  missing {len(missing)}: {_format_names(missing)}')
        if mismatched:
            lines.append(f'  shape mismatch in {len(mismatched)}: {_format_names(mismatched, 5)}')
        lines.append(hint or _mismatch_hint(model, state, meta or {}, prefix, missing, mismatched))
        raise KeyError('\n'.join(lines))
    write_params([p for p, _ in updates], [v for _, v in updates])
    if skipped:
        (log or logger).warning(f'load_from {source}: fine-tuning, {len(skipped)} head parameters of another shape '
                                f'keep their initial values: {"; ".join(skipped)}')
    return skipped


def load_weights(model: object,
                 checkpoint: str,
                 *,
                 online: bool = False,
                 finetune: bool = False,
                 log: Optional[logging.Logger] = None) -> Dict[str, str]:
    """Load the model weights of a checkpoint file (weights-only, converted, or a runner training checkpoint).

    Under the plain parameter names, converted TF checkpoints hold the EMA weights TF evaluates, and checkpoints of a
    run with ``EMAHook`` hold the averaged weights as well (the ones its validation used).  Training state in the
    file (optimizer slots, counters) is ignored; other entries that are not parameters of the model are reported in
    one warning.

    Args:
        model: the built classifier.
        checkpoint: ``.ckpt`` path.
        online: load the raw training weights ``online.<name>`` that ``EMAHook`` stores beside the averages.
        finetune: see :func:`load_state`.
        log: where warnings go.

    Returns:
        The checkpoint's metadata strings.

    Raises:
        FileNotFoundError / ValueError: unreadable file.
        KeyError: missing parameters or shape mismatches (``online=True``: no ``online.*`` copies).
    """
    from effnet_mm.utils import load_checkpoint

    state, meta = load_checkpoint(checkpoint)
    prefix = ONLINE_PREFIX if online else ''
    if online and not any(name.startswith(ONLINE_PREFIX) for name in state):
        raise KeyError(f'{checkpoint}: online=True but the file has no "{ONLINE_PREFIX}<name>" training weights '
                       f'(only checkpoints of runs with EMAHook have them)')
    load_state(model, state, checkpoint, prefix=prefix, finetune=finetune, meta=meta, log=log)
    known = {p.name for p in model.get_parameters()}
    unknown = sorted(k for k in state if k not in known and not is_training_state(k))
    if unknown:
        (log or logger).warning(f'{checkpoint}: ignoring {len(unknown)} entries that are not parameters of the '
                                f'model: {_format_names(unknown)}')
    return dict(meta)
