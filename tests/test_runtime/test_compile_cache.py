"""MindSpore's graph compile cache is refused: it reuses graphs compiled for another config."""
import os
import subprocess
import sys

import pytest

from effnet_mm.runtime.dist import select_device

# Two runs of one script whose graph depends on an argument (the output width), sharing a compile cache.
_SCRIPT = '''
import sys
import numpy as np
import mindspore as ms
from mindspore import nn
ms.set_context(mode=ms.GRAPH_MODE)
net = nn.Dense(8, int(sys.argv[1]))
print(ms.jit(net.construct)(ms.Tensor(np.ones((2, 8), np.float32))).shape)
'''


@pytest.mark.parametrize('value', ['1', 'true'])
def test_select_device_refuses_the_compile_cache(monkeypatch, value):
    monkeypatch.setenv('MS_COMPILER_CACHE_ENABLE', value)
    with pytest.raises(RuntimeError, match=f'MS_COMPILER_CACHE_ENABLE={value}: .*another config'):
        select_device(None)
    monkeypatch.setenv('MS_COMPILER_CACHE_ENABLE', '0')
    select_device(None)


def test_mindspore_compile_cache_still_reuses_a_stale_graph(tmp_path):
    """Why the cache is refused.  If this starts failing, MindSpore keys its cache on the graph now: the refusal in
    ``effnet_mm.runtime.dist`` can then be reconsidered."""
    script = tmp_path / 'net.py'
    script.write_text(_SCRIPT)
    env = dict(os.environ, GLOG_v='3', MS_COMPILER_CACHE_ENABLE='1', MS_COMPILER_CACHE_PATH=str(tmp_path / 'cache'))
    shapes = [subprocess.run([sys.executable, str(script), width], env=env, cwd=tmp_path, capture_output=True,
                             text=True, check=True, timeout=300).stdout.strip() for width in ('4', '5')]
    assert shapes == ['(2, 4)', '(2, 4)']  # the second run asked for 5 outputs
