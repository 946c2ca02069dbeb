"""Compile the shipped C++ kernels once per machine into a per-user cache and return the shared library path.

The library is built with ``-O3 -march=native`` and its own threads (MindSpore's own AOT auto-compile uses no
``-O3`` and would make the kernels slow, so the ``.cc`` files are never handed to ``ops.Custom``).
Because ``-march=native`` binaries are not portable, the file name carries a hash of the sources, the shared
header, the compiler command and the CPU flags.  The library is written through
:func:`effnet_mm.utils.fileio.atomic_write`, so parallel processes (data-parallel ranks, pytest workers) never load a
half-written file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

from effnet_mm.utils.fileio import atomic_write

_HERE = Path(__file__).parent
#: C++ sources compiled together into one library, and the header they all include (part of the hash).
SOURCES = tuple(_HERE / name for name in ('conv.cc', 'spatial_mean.cc', 'elementwise.cc', 'batchnorm.cc', 'optim.cc',
                                          'normalize.cc', 'kernels.cc'))
HEADERS = (_HERE / 'kernels.h', _HERE / 'gemm.h')
# OpenMP only for `omp simd` (threads come from kernels.h's pool); -fno-math-errno lets GCC vectorise expf (glibc
# libmvec) in the SiLU kernels.  The -march flag comes from MARCH_ENV.
CXX_FLAGS: List[str] = ['-O3', '-fopenmp-simd', '-pthread', '-fno-math-errno', '-shared', '-fPIC', '-std=c++17']
#: Target CPU of the build (``-march=``; default ``native``).  E.g. ``x86-64-v3`` builds the AVX2 code on an
#: AVX-512 machine (portable to AVX2-only nodes, and how the tests check that path).
MARCH_ENV = 'EFFNET_MM_MARCH'
#: File name prefix of the compiled library: ``effnet_kernels-<hash>.so``.
LIBRARY_PREFIX = 'effnet_kernels'
#: Directory of compiled kernels (default: ``$XDG_CACHE_HOME/effnet_mm/kernels`` or ``~/.cache/effnet_mm/kernels``).
CACHE_ENV = 'EFFNET_MM_KERNEL_CACHE'
#: MindSpore refuses AOT libraries outside this directory when it is set.
WHITE_LIST_ENV = 'MS_CUSTOM_AOT_WHITE_LIST'


class KernelBuildError(RuntimeError):
    """The kernels cannot be built or used here (no compiler, failed build, path outside the AOT white list)."""


def _cpu_flags() -> str:
    # -march=native depends on the CPU: key the cache on its feature flags (Linux) or, failing that, the machine.
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def cache_dir() -> Path:
    """Where compiled kernels live: ``$EFFNET_MM_KERNEL_CACHE``, else ``<white list>/effnet_mm_kernels`` when
    ``MS_CUSTOM_AOT_WHITE_LIST`` is set (MindSpore only loads AOT libraries from there), else the user cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get(WHITE_LIST_ENV):
        return Path(os.environ[WHITE_LIST_ENV]).expanduser() / 'effnet_mm_kernels'
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'effnet_mm' / 'kernels'


def _check_white_list(path: Path) -> None:
    white = os.environ.get(WHITE_LIST_ENV)
    if not white:
        return
    legal = os.path.realpath(white)
    if os.path.commonpath([os.path.realpath(path), legal]) != legal:
        raise KernelBuildError(f'{path} lies outside {WHITE_LIST_ENV}={white}: MindSpore would refuse to load it; '
                               f'unset {CACHE_ENV} or point it inside the white list')


def library_path(compiler: Optional[str] = None) -> Path:
    """Return the compiled kernel library, building it on first use.

    Args:
        compiler: C++ compiler command (default ``$CXX`` or ``g++``).

    Raises:
        KernelBuildError: no compiler, the build failed, or the cache lies outside ``MS_CUSTOM_AOT_WHITE_LIST``.
    """
    cxx = compiler or os.environ.get('CXX') or 'g++'
    cxx_path = shutil.which(cxx)
    if cxx_path is None:
        raise KernelBuildError(f'C++ compiler {cxx!r} not found')
    flags = [*CXX_FLAGS, f'-march={os.environ.get(MARCH_ENV) or "native"}']
    parts = [*(src.read_bytes() for src in SOURCES + HEADERS), cxx_path.encode(), ' '.join(flags).encode(),
             _cpu_flags().encode()]
    key = hashlib.sha256(b'\0'.join(parts)).hexdigest()[:16]
    target = cache_dir() / f'{LIBRARY_PREFIX}-{key}.so'
    _check_white_list(target)
    if target.is_file():
        return target
    try:
        with atomic_write(str(target)) as tmp:
            proc = subprocess.run([cxx_path, *flags, f'-I{_HERE}', '-o', tmp, *map(str, SOURCES)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise KernelBuildError(f'{cxx} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}')
            os.chmod(tmp, 0o755)
    except OSError as exc:
        raise KernelBuildError(f'cannot write to kernel cache {target.parent}: {exc}') from exc
    return target
