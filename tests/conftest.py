import os

# Keep MindSpore's C++ logging to errors; must be set before mindspore is imported.
os.environ.setdefault('GLOG_v', '3')

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _run_in_tmp_dir(tmp_path, monkeypatch):
    """MindSpore writes ``rank_0/`` and ``rewritten_network/`` into the CWD: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)
