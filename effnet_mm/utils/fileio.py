"""Atomic output: the one way effnet_mm writes a file (or a folder) that a reader or a later run relies on.

Every writer (checkpoints, ``last_checkpoint``, converted weights, exports, the kernel library, the demo dataset)
writes through :func:`atomic_write`: the content goes to a temporary sibling named
``.<stem>.<random>.partial<ext>`` and is renamed over the destination only once complete, so a reader sees the
old complete file or the new complete file, never a partial one, and a crash leaves the previous file untouched.

Durability policy (stated once, here): a file is ``fsync``-ed before the rename and its directory after it, so a
completed write survives a power loss; a folder is renamed without syncing every file in it (folders are caches
and generated data that can be made again).  Temporary names carry the ``.partial`` marker so that
:func:`remove_stale_partials` can clean up after killed writers without touching anything else.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from typing import Iterator, List

#: Marker in the name of every temporary output (see :func:`remove_stale_partials`).
PARTIAL_MARKER = '.partial'
# ``.<stem>.<8 hex>.partial<ext>`` plus whatever a library writer appends to the name it was given (MindSpore's
# save_checkpoint writes ``<name>.tmp`` first and renames it).
_PARTIAL_RE = re.compile(r'^\..+\.[0-9a-f]{8}' + re.escape(PARTIAL_MARKER) + r'.*$')


def partial_path(path: str) -> str:
    """A fresh temporary sibling of ``path`` that keeps its extension (libraries that append one still match)."""
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(directory, f'.{stem}.{secrets.token_hex(4)}{PARTIAL_MARKER}{ext}')


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync directories; the rename itself is still atomic
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _commit(tmp: str, path: str) -> None:
    """Move the finished temporary output ``tmp`` to ``path`` (the only step that touches the destination)."""
    directory = os.path.dirname(path)
    if os.path.isdir(tmp):
        if os.path.lexists(path):
            # Folders cannot be swapped in one step: the old one goes aside (removed once the new one is in place).
            aside = partial_path(path)
            os.rename(path, aside)
            os.rename(tmp, path)
            _remove(aside)
        else:
            os.rename(tmp, path)
    else:
        _fsync_path(tmp)
        os.replace(tmp, path)
    _fsync_path(directory)


@contextlib.contextmanager
def atomic_write(path: str, *, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path for the caller to write; on success it replaces ``path``, on error it is removed.

    The caller may create a file or a folder at the yielded path.  Example::

        with atomic_write('work_dirs/run/epoch_3.ckpt') as tmp:
            mindspore.save_checkpoint(params, tmp)

    Args:
        path: the destination.
        overwrite: replace an existing destination; False raises ``FileExistsError`` instead (checked before the
            write and again before the rename, so a concurrent writer's result is never replaced).

    Raises:
        IsADirectoryError: ``path`` is an existing folder and the output is a file (or the reverse).
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        RuntimeError: the block finished without creating anything at the temporary path.
    """
    path = os.path.abspath(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f'{path} already exists (refusing to overwrite it)')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise RuntimeError(f'writing {path}: the writer created nothing at {tmp}')
        is_dir = os.path.isdir(tmp)
        if os.path.isdir(path) != is_dir and os.path.lexists(path):
            kind = 'a folder' if os.path.isdir(path) else 'a file'
            raise IsADirectoryError(f'{path} is {kind}; it cannot be replaced by the {"folder" if is_dir else "file"} '
                                    f'being written')
        if not overwrite and os.path.lexists(path):
            raise FileExistsError(f'{path} already exists (refusing to overwrite it)')
        _commit(tmp, path)
    finally:
        _remove(tmp)


def write_text(path: str, text: str) -> str:
    """Atomically write a small text file (``last_checkpoint``-style pointers, JSON results); returns ``path``."""
    with atomic_write(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def remove_stale_partials(directory: str) -> List[str]:
    """Delete the temporary outputs that killed writers left in ``directory`` (not recursive); return their paths.

    Only names made by :func:`partial_path` (and names a library writer derived from them) are touched.
    """
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        if _PARTIAL_RE.match(name):
            path = os.path.join(directory, name)
            _remove(path)
            removed.append(path)
    return removed
