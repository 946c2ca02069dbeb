"""Utilities: atomic file output (``fileio``, no MindSpore import), checkpoint I/O, module registration.

The MindSpore-dependent names are imported on first use, so that datasets and transforms, which write files through
:mod:`effnet_mm.utils.fileio`, stay importable without MindSpore.
"""
from .fileio import atomic_write, remove_stale_partials, write_text

__all__ = ['atomic_write', 'load_checkpoint', 'register_all_modules', 'remove_stale_partials', 'save_checkpoint',
           'write_text']


def __getattr__(name: str):
    if name in ('load_checkpoint', 'save_checkpoint'):
        from . import checkpoint
        return getattr(checkpoint, name)
    if name == 'register_all_modules':
        from .setup_env import register_all_modules
        return register_all_modules
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
