"""Helpers shared by the tests (pytest fixtures live in ``conftest.py``)."""
from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import pathlib
from types import ModuleType
from typing import Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'
TF_FIXTURES = SHARED / 'fixtures' / 'tf_effnet'
INTEROP_FIXTURES = SHARED / 'fixtures' / 'interop'
CONFIGS = ROOT / 'configs'
ZOO = CONFIGS / 'efficientnet'


@contextlib.contextmanager
def inside(path):
    """Run a block in ``path`` (for module-scoped fixtures, which cannot use ``monkeypatch.chdir``)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def load_tool(relative_path: str) -> ModuleType:
    """Import a script under ``tools/`` (e.g. ``'analysis/get_flops.py'``) as a module, to call its ``main``."""
    path = ROOT / 'tools' / relative_path
    spec = importlib.util.spec_from_file_location(f'tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_scalar_runs(work_dir) -> List[List[Dict]]:
    """The ``vis_data/scalars.json`` records of every run (timestamp folder) in ``work_dir``, oldest run first."""
    runs = []
    for path in sorted(glob.glob(os.path.join(str(work_dir), '*', 'vis_data', 'scalars.json'))):
        with open(path, encoding='utf-8') as f:
            runs.append([json.loads(line) for line in f if line.strip()])
    return runs


def read_scalars(work_dir) -> List[Dict]:
    """All ``scalars.json`` records of ``work_dir``, runs concatenated in order."""
    return [record for run in read_scalar_runs(work_dir) for record in run]
