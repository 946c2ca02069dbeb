"""Building and caching the kernel library, its shared header, and the per-kernel timer."""
import os

import mindspore as ms
import numpy as np
import pytest

import effnet_mm.ops
from effnet_mm.ops import KernelBuildError, SiLU, kernel_stats, kernels_unavailable_reason, library_path
from effnet_mm.ops.build import HEADERS, SOURCES

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')


def test_build_cache_env_and_errors(monkeypatch, tmp_path):
    monkeypatch.setenv('EFFNET_MM_KERNEL_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('MS_CUSTOM_AOT_WHITE_LIST', raising=False)
    path = library_path()
    assert path.parent == tmp_path / 'cache' and path.is_file() and path.name.startswith('effnet_kernels-')
    assert library_path() == path  # cached: no rebuild
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    monkeypatch.setenv('MS_CUSTOM_AOT_WHITE_LIST', str(tmp_path / 'elsewhere'))
    with pytest.raises(KernelBuildError, match='outside'):
        library_path()
    monkeypatch.delenv('MS_CUSTOM_AOT_WHITE_LIST')
    with pytest.raises(KernelBuildError, match='not found'):
        library_path(compiler='no-such-compiler-effnet')


def test_failed_build_reports_the_compiler_error_and_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv('EFFNET_MM_KERNEL_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('MS_CUSTOM_AOT_WHITE_LIST', raising=False)
    monkeypatch.setattr('effnet_mm.ops.build.CXX_FLAGS', ['-DEFFNET_NO_SUCH_FLAG', '-fno-such-option'])
    with pytest.raises(KernelBuildError, match='failed'):
        library_path()
    assert not list((tmp_path / 'cache').iterdir())


def test_header_is_part_of_the_hash(monkeypatch, tmp_path):
    monkeypatch.setenv('EFFNET_MM_KERNEL_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('MS_CUSTOM_AOT_WHITE_LIST', raising=False)
    header = tmp_path / 'kernels.h'
    header.write_bytes(HEADERS[0].read_bytes() + b'\n// changed\n')
    before = library_path()
    monkeypatch.setattr('effnet_mm.ops.build.HEADERS', (header, ))
    monkeypatch.setattr('effnet_mm.ops.build.CXX_FLAGS', ['-fsyntax-only'])  # the name is all this test needs
    with pytest.raises(KernelBuildError):  # -fsyntax-only writes no library; what matters is the new name
        library_path()
    assert before.is_file() and len(list((tmp_path / 'cache').iterdir())) == 1


def test_package_ships_the_sources_and_the_header_they_include():
    folder = os.path.dirname(effnet_mm.ops.__file__)
    for path in SOURCES + HEADERS:
        assert path.parent == type(path)(folder) and path.is_file()
    for source in SOURCES:
        assert '#include "kernels.h"' in source.read_text()


def test_kernel_timer_counts_calls():
    """The timer is on in the test process only when EFFNET_MM_KERNEL_PROFILE was set; then it must count."""
    silu = SiLU()
    silu(ms.Tensor(np.ones((4, 4), np.float32))).asnumpy()
    stats = kernel_stats()
    if os.environ.get('EFFNET_MM_KERNEL_PROFILE', '0') in ('', '0'):
        assert stats == {}
    else:
        calls, seconds = stats['effnet_silu']
        assert calls >= 1 and seconds >= 0
