"""Locate the TF checkpoint behind a user-given source: a prefix, a folder, or a released ``.tar.gz``.

Checkpoints are always found through TF's ``checkpoint`` state file (``tf.train.get_checkpoint_state`` /
``tf.train.latest_checkpoint``), exactly like TF's own evaluation does, never by globbing for ``*.index``: the
released folders (and our fixtures) hold other files next to the checkpoint.
"""
from __future__ import annotations

import logging
import os
import tarfile
import zlib

from .errors import CheckpointReadError, ConversionError
from .tf_reader import import_tensorflow

logger = logging.getLogger(__name__)

#: Name of TF's checkpoint state file inside a checkpoint folder.
STATE_FILE = 'checkpoint'
ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar')


def resolve_checkpoint(src: str, scratch_dir: str) -> str:
    """Return the TF checkpoint prefix that ``src`` designates.

    Args:
        src: a checkpoint prefix (``.../model.ckpt``; a trailing ``.index`` is tolerated), a folder holding a
            ``checkpoint`` state file, or a ``.tar.gz``/``.tgz``/``.tar`` archive holding such a folder.
        scratch_dir: empty folder an archive is extracted into; the caller owns (and removes) it.

    Raises:
        ConversionError: ``src`` is none of the above, or the state file names a checkpoint that does not exist.
    """
    if os.path.isdir(src):
        return checkpoint_from_folder(src)
    if os.path.isfile(src) and src.endswith(ARCHIVE_SUFFIXES):
        return checkpoint_from_folder(extract_archive(src, scratch_dir))
    prefix = src[:-len('.index')] if src.endswith('.index') else src
    if os.path.isfile(prefix + '.index'):
        return prefix
    what = 'does not exist' if not os.path.exists(src) else 'is a file of none of these kinds'
    raise ConversionError(
        f'Source {src!r} {what}: expected a folder with a TF "{STATE_FILE}" state file, a .tar.gz/.tgz/.tar archive '
        f'or a checkpoint prefix ({prefix + ".index"!r} does not exist)')


def checkpoint_from_folder(folder: str) -> str:
    """The prefix named by ``folder/checkpoint`` (TF's state file), resolved relative to ``folder``.

    The state file of a released checkpoint may hold an absolute path of the machine it was trained on; when that
    path does not exist, the file name it ends with is looked up in ``folder`` instead.
    """
    state_file = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(state_file):
        raise ConversionError(f'Folder {folder!r} has no TF "{STATE_FILE}" state file; pass the checkpoint prefix '
                              f'(e.g. {os.path.join(folder, "model.ckpt")!r}) instead')
    tf = import_tensorflow()
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception as err:  # a malformed text proto raises a TF/protobuf-specific error
        raise CheckpointReadError(f'Cannot parse the TF state file {state_file!r}: {type(err).__name__}: {err}') \
            from err
    if state is None or not state.model_checkpoint_path:
        raise ConversionError(f'The TF state file {state_file!r} names no checkpoint (model_checkpoint_path is '
                              f'empty)')
    prefix = tf.train.latest_checkpoint(folder)
    if prefix is not None:
        return prefix
    named = state.model_checkpoint_path
    local = os.path.join(folder, os.path.basename(named))
    if os.path.isfile(local + '.index'):
        logger.info('%s names %r, which does not exist; using %r from the same folder', state_file, named, local)
        return local
    raise ConversionError(f'The TF state file {state_file!r} names the checkpoint {named!r}, but neither '
                          f'{named + ".index"!r} nor {local + ".index"!r} exists')


def extract_archive(archive: str, dest: str) -> str:
    """Safely extract ``archive`` into ``dest`` and return the folder holding its ``checkpoint`` state file.

    Only regular files and folders inside ``dest`` are accepted: absolute names, ``..`` components, links and
    device files are rejected before anything is written (a tarball must not write outside the scratch folder).

    Raises:
        CheckpointReadError: the archive is unreadable or holds a member that is not safe to extract.
        ConversionError: the archive holds no, or more than one, ``checkpoint`` state file.
    """
    root = os.path.realpath(dest)
    try:
        with tarfile.open(archive, 'r:*') as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member, root)
            state_files = [m.name for m in members if m.isfile() and os.path.basename(m.name) == STATE_FILE]
            if len(state_files) != 1:
                found = 'none' if not state_files else ', '.join(sorted(state_files))
                raise ConversionError(f'Archive {archive!r} must hold exactly one TF "{STATE_FILE}" state file next '
                                      f'to the checkpoint; found {found}')
            logger.info('Extracting %s (%d members) to a temporary folder', archive, len(members))
            if hasattr(tarfile, 'data_filter'):  # Python >= 3.9.17 / 3.11.4: a second line of defence
                tar.extractall(dest, members=members, filter='data')
            else:
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise CheckpointReadError(f'Cannot read the archive {archive!r} (truncated or not a tar file?): '
                                  f'{type(err).__name__}: {err}') from err
    return os.path.join(dest, os.path.dirname(state_files[0]))


def _check_member(archive: str, member: tarfile.TarInfo, root: str) -> None:
    if not (member.isfile() or member.isdir()):
        raise CheckpointReadError(f'Archive {archive!r}: member {member.name!r} is a link or special file; only '
                                  f'regular files and folders are extracted')
    target = os.path.realpath(os.path.join(root, member.name))
    if os.path.isabs(member.name) or os.path.commonpath([root, target]) != root:
        raise CheckpointReadError(f'Archive {archive!r}: member {member.name!r} would be written outside the '
                                  f'extraction folder')
