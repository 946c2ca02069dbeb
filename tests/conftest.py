import contextlib
import os
import pathlib

# Keep MindSpore's C++ logging to errors; must be set before mindspore is imported.
os.environ.setdefault('GLOG_v', '3')

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'
TF_FIXTURES = SHARED / 'fixtures' / 'tf_effnet'


@pytest.fixture(autouse=True)
def _run_in_tmp_dir(tmp_path, monkeypatch):
    """MindSpore writes ``rank_0/`` and ``rewritten_network/`` into the CWD: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def inside(path):
    """Run a block in ``path`` (for module-scoped fixtures, which cannot use ``monkeypatch.chdir``)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
