"""tools/dist_train.sh and tools/dist_test.sh: 2 msrun processes on CPU against a single-process run.

BatchNorm is kept on its moving statistics (``norm_eval``) and dropout/drop-connect are off, so a sample's gradient
does not depend on which other samples share its device batch: 2 ranks x batch 4 must then reproduce 1 process x
batch 8 (interleaved sharding gives the same global batches) up to float rounding.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from effnet_mm.datasets import DEMO_CLASSES, make_demo_dataset
from tests.helpers import ROOT

TOOLS = ROOT / 'tools'

CONFIG = '''
_base_ = [{demo!r}]
custom_imports = dict(imports=['tests.test_engine.dist_hooks'], allow_failed_imports=False)
data_root = {root!r}
classes = {classes!r}
pipeline = [dict(type='LoadImageFromFile'), dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
            dict(type='PackInputs')]
train_dataloader = dict(batch_size=8, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train', classes=classes,
    pipeline=pipeline))
# 30 validation images: not a multiple of 2 ranks x batch 4.
val_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root=data_root, data_prefix='val', classes=classes, pipeline=pipeline))
test_dataloader = val_dataloader
model = dict(backbone=dict(norm_eval=True, drop_path_rate=0.0), head=dict(num_classes=10, dropout=0.0))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
param_scheduler = []
custom_hooks = [{extra_hook}]
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, GLOG_v='3', PORT=str(_free_port()))
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _losses(work_dir):
    (stamp, ) = [d for d in os.listdir(work_dir) if os.path.exists(os.path.join(work_dir, d, 'vis_data'))]
    with open(os.path.join(work_dir, stamp, 'vis_data', 'scalars.json')) as f:
        return [(r['iter'], r['loss']) for r in map(json.loads, f) if 'loss' in r]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp('dist')
    root = str(base / 'demo')
    make_demo_dataset(root, train_per_class=4, val_per_class=3, size=40)
    demo = str(ROOT / 'configs' / 'efficientnet' / 'efficientnet-b0_1xb32_demo.py')

    def write(name, extra_hook):
        path = base / name
        path.write_text(CONFIG.format(demo=demo, root=root, classes=list(DEMO_CLASSES), extra_hook=extra_hook))
        return str(path)

    dump = write('dump.py', f"dict(type='DumpRankWeightsHook', out_dir={str(base / 'weights')!r})")
    crash = write('crash.py', "dict(type='CrashOnRankHook', rank=1, at_iter=2)")
    return base, dump, crash


@pytest.fixture(scope='module')
def runs(setup):
    base, dump, _ = setup
    single = subprocess.run([sys.executable, str(TOOLS / 'train.py'), dump, '--work-dir', 'single',
                             '--cfg-options', f"custom_hooks.0.out_dir={base / 'weights_single'}"],
                            cwd=base, env=_env(), capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    dual = subprocess.run(['bash', str(TOOLS / 'dist_train.sh'), dump, '2', '--work-dir', 'dual',
                           '--cfg-options', 'train_dataloader.batch_size=4'],
                          cwd=base, env=_env(), capture_output=True, text=True, timeout=900)
    assert dual.returncode == 0, dual.stdout[-3000:] + dual.stderr[-3000:]
    return base


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_global_batch(runs):
    base = runs
    rank0 = np.load(base / 'weights' / 'rank0.npz')
    rank1 = np.load(base / 'weights' / 'rank1.npz')
    single = np.load(base / 'weights_single' / 'rank0.npz')
    assert sorted(rank0.files) == sorted(rank1.files) == sorted(single.files)
    trainable = [n for n in rank0.files if 'moving_' not in n]
    for name in rank0.files:  # gradient averaging keeps the ranks bit-identical
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    for name in trainable:
        np.testing.assert_allclose(rank0[name], single[name], rtol=1e-4, atol=1e-5, err_msg=name)
    single_losses, dual_losses = _losses(base / 'single'), _losses(base / 'dual')
    assert [i for i, _ in dual_losses] == [i for i, _ in single_losses] == list(range(1, 11))
    np.testing.assert_allclose([v for _, v in dual_losses], [v for _, v in single_losses], rtol=1e-5)
    assert (base / 'dual' / 'msrun_logs' / 'worker_1.log').exists()


@pytest.mark.slow
def test_dist_test_equals_single_process_on_uneven_shards(setup, runs):
    base, dump, _ = setup
    ckpt = str(base / 'single' / 'epoch_2.ckpt')
    single = subprocess.run([sys.executable, str(TOOLS / 'test.py'), dump, ckpt, '--work-dir', 'test1',
                             '--out', 'single.json'], cwd=base, env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    dual = subprocess.run(['bash', str(TOOLS / 'dist_test.sh'), dump, ckpt, '2', '--work-dir', 'test2',
                           '--out', 'dual.json'], cwd=base, env=_env(), capture_output=True, text=True, timeout=600)
    assert dual.returncode == 0, dual.stdout[-3000:] + dual.stderr[-3000:]
    with open(base / 'single.json') as f:
        expected = json.load(f)
    with open(base / 'dual.json') as f:
        got = json.load(f)
    assert got['metrics'] == expected['metrics']
    # 30 samples: any lost or repeated sample would move top-1/top-5 off a multiple of 100/30.
    for value in expected['metrics'].values():
        assert round(value * 30 / 100, 6) == round(value * 30 / 100)
    # --out's per-sample records: every validation sample exactly once, gathered from both ranks on rank 0.
    assert [r['sample_idx'] for r in got['predictions']] == list(range(30)) and got['num_samples'] == 30
    for mine, ref in zip(got['predictions'], expected['predictions']):
        assert {k: v for k, v in mine.items() if k != 'pred_score'} == {k: v for k, v in ref.items()
                                                                        if k != 'pred_score'}
        assert mine['pred_score'] == pytest.approx(ref['pred_score'], abs=1e-5)


@pytest.mark.slow
def test_a_crashing_rank_fails_the_whole_launch(setup):
    base, _, crash = setup
    result = subprocess.run(['bash', str(TOOLS / 'dist_train.sh'), crash, '2', '--work-dir', 'crash'],
                            cwd=base, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    with open(base / 'crash' / 'msrun_logs' / 'worker_1.log') as f:
        assert 'rank 1 fails on purpose at iteration 2' in f.read()


def test_launch_scripts_reject_bad_arguments(tmp_path):
    result = subprocess.run(['bash', str(TOOLS / 'dist_train.sh'), 'no_such_config.py', '2'], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "config file 'no_such_config.py' does not exist" in result.stderr
    result = subprocess.run(['bash', str(TOOLS / 'dist_test.sh'), 'x.py', 'x.ckpt', 'two'], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "NPROC must be a positive integer, got 'two'" in result.stderr


def test_device_selection_is_validated():
    from effnet_mm.runtime.dist import select_device

    select_device(None)
    select_device('CPU')
    with pytest.raises(ValueError, match=r"device must be one of \('CPU', 'GPU', 'Ascend'\).*, got 'TPU'"):
        select_device('TPU')


def test_deprecated_engine_dist_module_still_imports():
    import importlib
    import sys

    sys.modules.pop('effnet_mm.engine.dist', None)
    with pytest.warns(DeprecationWarning, match='moved to effnet_mm.runtime.dist'):
        legacy = importlib.import_module('effnet_mm.engine.dist')
    from effnet_mm.runtime import dist
    assert legacy.get_rank is dist.get_rank and legacy.select_device is dist.select_device
