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


_PORTABLE_CHECK = '''
import mindspore as ms, numpy as np
from mindspore import ops
from effnet_mm.ops import BatchNormAct2d, conv_op, library_path
assert library_path().parent.name == 'cache'
rng = np.random.default_rng(0)
for k, s in ((3, 2), (5, 1)):  # 6 output columns (channel tiles) and 11 (row kernels)
    x = ms.Tensor(rng.standard_normal((2, 5, 13, 11)).astype(np.float32))
    w = ms.Tensor(rng.standard_normal((5, 1, k, k)).astype(np.float32))
    ref = ops.Conv2D(out_channel=5, kernel_size=k, pad_mode='same', stride=s, group=5)
    fast = conv_op('depthwise', s)
    def loss(a, b):
        return (fast(a, b) ** 2).sum()
    def ref_loss(a, b):
        return (ref(a, b) ** 2).sum()
    got, want = ms.grad(loss, (0, 1))(x, w), ms.grad(ref_loss, (0, 1))(x, w)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g.asnumpy(), r.asnumpy(), rtol=1e-4, atol=1e-4)
bn = BatchNormAct2d(5, act=True)
bn.set_train(True)
for plane in ((9, 7), (9, 8)):  # below and above the small-plane threshold of the BN kernels
    a = rng.standard_normal((2, 5) + plane).astype(np.float32)
    y = bn(ms.Tensor(a)).asnumpy()
    z = (a - a.mean((0, 2, 3), keepdims=True)) / np.sqrt(a.var((0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, z / (1 + np.exp(-z)), rtol=1e-4, atol=1e-5)
print('PORTABLE_OK')
'''


@pytest.mark.parametrize('march', ['x86-64-v3', 'x86-64-v2'])  # AVX2 (no AVX-512), and SSE4.2 only
def test_kernels_built_for_older_cpus_are_correct(tmp_path, march):
    """The vector code is generic (GCC vector extensions; AVX-512 intrinsics only behind ``__AVX512F__`` with a generic
    fallback): build it for an AVX2-only and an SSE-only CPU with EFFNET_MM_MARCH and check conv gradients and BN +
    SiLU in a fresh process."""
    import platform
    import subprocess
    import sys

    if platform.machine() != 'x86_64':
        pytest.skip('x86-64 targets')
    script = tmp_path / 'check.py'
    script.write_text(_PORTABLE_CHECK)
    env = dict(os.environ, EFFNET_MM_MARCH=march, EFFNET_MM_KERNEL_CACHE=str(tmp_path / 'cache'), GLOG_v='3')
    env.pop('MS_CUSTOM_AOT_WHITE_LIST', None)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600, check=False)
    assert 'PORTABLE_OK' in proc.stdout, proc.stderr[-3000:]


_THREADS_CHECK = '''
import ctypes, os
import mindspore as ms, numpy as np
from effnet_mm.ops import SiLU, library_path
SiLU()(ms.Tensor(np.ones((4, 4), np.float32))).asnumpy()
print('THREADS', ctypes.CDLL(str(library_path())).effnet_kernel_threads(), len(os.sched_getaffinity(0)))
'''


@pytest.mark.skipif(not hasattr(os, 'sched_getaffinity'), reason='needs os.sched_getaffinity')
@pytest.mark.parametrize('env, expected', [({}, None), ({'OMP_NUM_THREADS': '1'}, 1),
                                           ({'EFFNET_MM_NUM_THREADS': '3', 'OMP_NUM_THREADS': '1'}, 3)])
def test_kernel_threads_follow_the_environment_the_process_started_with(env, expected):
    """Importing MindSpore sets OMP_NUM_THREADS=1 in the C environment; the kernels must still use every core by
    default (they ran on one thread when the library read that variable itself)."""
    import subprocess
    import sys
    clean = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'EFFNET_MM_NUM_THREADS')}
    out = subprocess.run([sys.executable, '-c', _THREADS_CHECK], env={**clean, **env, 'GLOG_v': '3'},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    used, cores = map(int, out.stdout.split('THREADS')[1].split())
    assert used == (cores if expected is None else expected)
