"""Training checkpoints: what they hold, how a run resumes from one, and the bookkeeping of a checkpoint folder.

A training checkpoint holds the model (with ``EMAHook``: the averages under the plain names and the raw weights as
``online.<name>``), the optimizer slots, the loss scale, gradient-accumulation buffers, and metadata strings:
progress (``epoch``, ``iter``, ``batch_in_epoch``), ``seed``, the full config (``cfg``) and the dataset's class names
(``dataset_meta``), plus what hooks add (best score, EMA update count).  Random state is not saved: every random
draw is a function of ``(seed, epoch, sample_idx)`` (see :mod:`.randomness`).

Folder rules (:class:`CheckpointFolder`): every path written into ``last_checkpoint`` or into metadata is a file
name relative to the folder, so a copied work dir resumes from its own files; the runner deletes only files inside
its folder whose names it makes itself (``epoch_N.ckpt``, ``iter_N.ckpt``, ``best_<key>_{epoch,iter}_N.ckpt``).
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from effnet_mm.runtime.param_io import write_params
from effnet_mm.runtime.weights import as_array, load_state
from effnet_mm.utils import load_checkpoint, save_checkpoint
from effnet_mm.utils.fileio import remove_stale_partials, write_text

#: Written into every training checkpoint; a resume refuses other files.
CHECKPOINT_FORMAT = 'effnet_mm-train-v2'
#: Earlier training checkpoints that can still be resumed (they lack only ``batch_in_epoch``).
COMPATIBLE_FORMATS = (CHECKPOINT_FORMAT, 'effnet_mm-train-v1')
POINTER = 'last_checkpoint'
_OURS = re.compile(r'^(?:(?:epoch|iter)_\d+|best_.+_(?:epoch|iter)_\d+)\.ckpt$')
_PERIODIC = re.compile(r'^(epoch|iter)_(\d+)\.ckpt$')


class CheckpointFolder:
    """The checkpoint files of one run folder (the work dir unless ``CheckpointHook.out_dir`` says otherwise)."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)

    def path(self, name: str) -> str:
        """Absolute path of a file name of this folder."""
        return os.path.join(self.directory, name)

    def owns(self, path: str) -> bool:
        """True for a file directly in this folder whose name the runner makes (the only files it deletes)."""
        path = os.path.abspath(path)
        return os.path.dirname(path) == self.directory and bool(_OURS.match(os.path.basename(path)))

    def remove(self, name: str) -> bool:
        """Delete ``name`` if it is ours (see :meth:`owns`) and exists; True when something was deleted."""
        if not name or os.path.basename(name) != name:
            return False  # metadata names plain file names; anything else is not ours to delete
        path = self.path(name)
        if self.owns(path) and os.path.isfile(path):
            os.remove(path)
            return True
        return False

    def clean_partials(self) -> List[str]:
        """Remove temporary files that killed saves left behind."""
        return remove_stale_partials(self.directory)

    def write_pointer(self, name: str) -> None:
        """Point ``last_checkpoint`` at file ``name`` of this folder (atomically)."""
        write_text(self.path(POINTER), name)

    def read_pointer(self) -> Optional[str]:
        """The absolute path ``last_checkpoint`` names, or None without a pointer.

        Pointers of earlier versions hold absolute paths: only their file name is used, inside this folder.
        """
        pointer = self.path(POINTER)
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding='utf-8') as f:
            name = os.path.basename(f.read().strip())
        return self.path(name) if name else None

    def periodic_checkpoints(self) -> List[str]:
        """``epoch_N.ckpt`` / ``iter_N.ckpt`` files of this folder, newest (highest N) first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            match = _PERIODIC.match(name)
            if match:
                found.append((int(match.group(2)), name))
        return [self.path(name) for _, name in sorted(found, reverse=True)]


def is_readable_training_checkpoint(path: str) -> bool:
    """True when ``path`` loads and carries a training-checkpoint format."""
    try:
        _, meta = load_checkpoint(path)
    except (OSError, ValueError):
        return False
    return meta.get('format') in COMPATIBLE_FORMATS


def find_resume_checkpoint(folder: CheckpointFolder, logger) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from: the one ``last_checkpoint`` names if it is complete,
    else the newest complete periodic checkpoint of the folder (with a warning naming both); None if there is none."""
    named = folder.read_pointer()
    if named is not None and is_readable_training_checkpoint(named):
        return named
    for candidate in folder.periodic_checkpoints():
        if candidate != named and is_readable_training_checkpoint(candidate):
            if named is not None:
                logger.warning(f'resume: {named} (named by {folder.path(POINTER)}) is missing or incomplete; '
                               f'resuming from {candidate} instead')
            return candidate
    if named is not None:
        logger.warning(f'resume: {named} is missing or incomplete and no other checkpoint is in {folder.directory}; '
                       f'training from scratch')
    return None


def optimizer_state_params(model, optimizer) -> list:
    """The optimizer's own parameters (slots, step, LR), i.e. those that are not model parameters."""
    model_names = {p.name for p in model.get_parameters()}
    return [p for p in optimizer.get_parameters() if p.name not in model_names]


def collect_state(runner) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """The tensors and metadata of a training checkpoint of ``runner`` now (hooks add theirs when saving)."""
    state: Dict[str, np.ndarray] = {p.name: p.asnumpy() for p in runner.model.get_parameters()}
    wrapper = runner.optim_wrapper
    for param in optimizer_state_params(runner.model, wrapper.optimizer):
        state[param.name] = param.asnumpy()
    if wrapper.loss_scaler is not None:
        for name in ('scale_value', 'counter'):
            if hasattr(wrapper.loss_scaler, name):
                state[f'loss_scaler.{name}'] = getattr(wrapper.loss_scaler, name).asnumpy()
    if runner.train_step is not None and runner.train_step.buffers is not None:
        for buffer in runner.train_step.buffers:
            state[buffer.name] = buffer.asnumpy()
    meta = dict(format=CHECKPOINT_FORMAT, epoch=str(runner.epoch), iter=str(runner.iter),
                batch_in_epoch=str(runner.batch_in_epoch), seed=str(runner.seed), world_size=str(runner.world_size),
                timestamp=runner.timestamp, amp_consecutive_skips=str(runner.amp_consecutive_skips))
    if runner.cfg is not None:
        meta['config'] = os.path.basename(runner.cfg.filename) if runner.cfg.filename else ''
        meta['cfg'] = runner.cfg.pretty_text
    if runner.dataset_meta:
        meta['dataset_meta'] = json.dumps(runner.dataset_meta)
    return state, meta


def save_training_checkpoint(runner, path: str, extra_meta: Optional[Dict[str, str]] = None) -> None:
    """Write ``runner``'s training state to ``path`` (rank 0; atomic); hooks add entries first.

    Raises:
        FloatingPointError: a model parameter is not finite (nothing is written).
    """
    state, meta = collect_state(runner)
    meta.update(extra_meta or {})
    runner.call_hook('before_save_checkpoint', state, meta)
    if runner.rank != 0:
        return
    bad = [name for name, value in state.items() if not np.isfinite(value).all()]
    if bad:
        raise FloatingPointError(f'not saving {path}: {len(bad)} tensors hold NaN/inf (e.g. {", ".join(bad[:5])})')
    save_checkpoint(state, path, meta)
    runner.logger.info(f'Saved checkpoint {path}')


def restore_training_checkpoint(runner, path: str) -> Tuple[Dict[str, object], Dict[str, str]]:
    """Restore the tensors of a training checkpoint into ``runner``; returns ``(tensors, metadata)``."""
    params, meta = load_checkpoint(path)
    if meta.get('format') not in COMPATIBLE_FORMATS:
        raise ValueError(f'{path} is not an effnet_mm training checkpoint (meta format={meta.get("format")!r}); '
                         f'use load_from=... for weights-only files')
    wrapper = runner.optim_wrapper
    load_state(runner.model, params, path, meta=meta)
    load_state(runner.model, params, f'{path} (optimizer state)',
               params=optimizer_state_params(runner.model, wrapper.optimizer),
               hint=f'  The checkpoint was probably written with another optimizer than '
                    f'{type(wrapper.optimizer).__name__}; resume with the same optim_wrapper.optimizer.')
    scaler = wrapper.loss_scaler
    if scaler is not None and 'loss_scaler.scale_value' in params:
        names = [n for n in ('scale_value', 'counter') if hasattr(scaler, n) and f'loss_scaler.{n}' in params]
        write_params([getattr(scaler, n) for n in names], [as_array(params[f'loss_scaler.{n}']) for n in names])
    buffers = runner.train_step.buffers if runner.train_step is not None else None
    if buffers is not None:
        present = [b for b in buffers if b.name in params]
        write_params(present, [as_array(params[b.name]) for b in present])
    return params, meta
