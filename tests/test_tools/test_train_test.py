"""tools/train.py and tools/test.py as a user runs them: B0 on a small demo-style dataset at 32 px.

The slow tests share one straight training run (module fixture).  They check that the run learns, that
tools/test.py reproduces the validation metrics from the checkpoint, and that a run SIGKILLed mid-epoch and resumed
with ``--resume`` ends with the same weights as the straight run (dropout and drop path included).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from effnet_mm.datasets import DEMO_CLASSES, make_demo_dataset
from effnet_mm.utils import load_checkpoint
from tests.helpers import ROOT as _ROOT
from tests.helpers import read_scalar_runs

ROOT = str(_ROOT)
TRAIN = os.path.join(ROOT, 'tools', 'train.py')
TEST = os.path.join(ROOT, 'tools', 'test.py')
MAX_EPOCHS = 4

CONFIG = '''
_base_ = [{demo!r}]
data_root = {root!r}
classes = {classes!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetRandomCrop', scale=32, min_covered=0.5, area_range=(0.5, 1.0), crop_padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
    dict(type='PackInputs'),
]
# Validation on the training images: the test is about the tools, a few iterations cannot generalise.
train_dataloader = dict(batch_size=6, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train', classes=classes,
    pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train', classes=classes,
    pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=3))
# Independent of the demo recipe's optimizer: a short, stable SGD run.
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9, nesterov=True,
                                    weight_decay=5e-5))
param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=True, begin=0, end=1,
                        convert_to_iter_based=True)]
train_cfg = dict(max_epochs={epochs})
custom_hooks = [dict(type='EMAHook', momentum=0.2)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=-1))
'''


def _env():
    env = dict(os.environ, GLOG_v='3')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _run(args, cwd, **kwargs):
    return subprocess.run([sys.executable] + args, cwd=cwd, env=_env(), capture_output=True, text=True, **kwargs)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp('tools')
    root = str(base / 'demo_small')
    make_demo_dataset(root, train_per_class=8, val_per_class=1, size=40)
    config = base / 'b0_small.py'
    config.write_text(CONFIG.format(demo=os.path.join(ROOT, 'configs/efficientnet/efficientnet-b0_1xb32_demo.py'),
                                    root=root, classes=list(DEMO_CLASSES[:3]), epochs=MAX_EPOCHS))
    return base, str(config)


@pytest.fixture(scope='module')
def straight_run(setup):
    base, config = setup
    result = _run([TRAIN, config, '--work-dir', 'straight'], cwd=base, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return base / 'straight'


@pytest.mark.slow
def test_train_learns_and_test_reproduces_validation(setup, straight_run):
    base, config = setup
    (records, ) = read_scalar_runs(straight_run)
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'accuracy/top1' in r]
    assert [r['iter'] for r in train] == list(range(1, len(train) + 1))
    assert len(val) == MAX_EPOCHS
    assert all(np.isfinite(r['loss']) for r in train)
    # No learning threshold here: 16 iterations of B0 from scratch (TF classifier init, BN decay 0.99) are noise —
    # the loss of this run went up or down by chance in both the old and the new runner.  That training learns is
    # checked by tests/test_tools/test_demo_learns.py (the demo recipe, long enough to learn) and on the small
    # network in tests/test_engine/test_runner.py.
    assert 0.0 <= val[-1]['accuracy/top1'] <= 100.0

    result = _run([TEST, config, str(straight_run / f'epoch_{MAX_EPOCHS}.ckpt'), '--work-dir', 'test_wd',
                   '--out', 'metrics.json'], cwd=base, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(base / 'metrics.json') as f:
        metrics = json.load(f)['metrics']
    assert metrics == pytest.approx({'accuracy/top1': val[-1]['accuracy/top1'],
                                     'accuracy/top5': val[-1]['accuracy/top5']})
    assert f"accuracy/top1: {metrics['accuracy/top1']:.4f}" in result.stdout


ITER_CHECKPOINTS = ['default_hooks.checkpoint.by_epoch=False', 'default_hooks.checkpoint.interval=2']
ITERATION_BASED = f'''
_base_ = ['./b0_small.py']
train_cfg = dict(_delete_=True, by_epoch=False, max_iters={MAX_EPOCHS * 4}, val_interval=4)
'''


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['epoch-based', 'iteration-based'])
def test_sigkill_mid_epoch_and_resume_matches_straight_run(setup, straight_run, mode):
    """SIGKILL right after an iteration checkpoint inside an epoch, then ``--resume``: the final weights equal the
    uninterrupted epoch-based run (drop path, dropout and EMA on); an iteration-based run of the same length is the
    same training."""
    base, config = setup
    work_dir = base / f'killed-{mode}'
    if mode == 'iteration-based':
        config = str(base / 'b0_small_iters.py')
        open(config, 'w').write(ITERATION_BASED)
    options = ITER_CHECKPOINTS
    args = [TRAIN, config, '--work-dir', work_dir.name, '--cfg-options'] + options
    proc = subprocess.Popen([sys.executable] + args, cwd=base, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        # iter_6 is batch 2 of epoch 2 (4 batches per epoch): kill once iteration 7 has run.
        while proc.poll() is None and time.time() < deadline:
            runs = read_scalar_runs(work_dir)
            if (work_dir / 'iter_6.ckpt').exists() and runs and any(r.get('iter', 0) >= 7 for r in runs[-1]):
                break
            time.sleep(0.1)
        assert proc.poll() is None, 'the run finished before it could be killed'
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = int(open(work_dir / 'last_checkpoint').read().strip().rsplit('_', 1)[1].split('.')[0])
    assert killed_at % 4 != 0, 'the newest checkpoint should lie inside an epoch'

    result = _run(args[:-len(options) - 1] + ['--resume', '--cfg-options'] + options, cwd=base, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    straight, _ = load_checkpoint(str(straight_run / f'epoch_{MAX_EPOCHS}.ckpt'))
    resumed, meta = load_checkpoint(str(work_dir / f'iter_{MAX_EPOCHS * 4}.ckpt'))
    assert straight.keys() == resumed.keys()
    for name, value in straight.items():
        np.testing.assert_allclose(resumed[name].asnumpy(), value.asnumpy(), atol=1e-6, rtol=0, err_msg=name)

    first, second = read_scalar_runs(work_dir)
    first_iters = [r['iter'] for r in first if 'loss' in r]
    second_iters = [r['iter'] for r in second if 'loss' in r]
    assert first_iters == list(range(1, len(first_iters) + 1))
    # The resumed run continues right after the checkpoint: nothing repeated after it, nothing missing.
    assert second_iters == list(range(killed_at + 1, MAX_EPOCHS * 4 + 1))
    assert int(meta['iter']) == MAX_EPOCHS * 4
    losses = {r['iter']: r['loss'] for r in read_scalar_runs(straight_run)[0] if 'loss' in r}
    assert {r['iter']: r['loss'] for r in second if 'loss' in r} == {i: losses[i] for i in second_iters}


@pytest.mark.slow
@pytest.mark.parametrize('amp', [False, True])
def test_diverging_run_stops_with_an_error_and_keeps_the_good_checkpoints(setup, straight_run, amp):
    """``lr=1e30`` from a good checkpoint: the run stops with one error line and a non-zero status; the previous
    checkpoints, the best file included, stay byte-identical and finite (fp32: a non-finite loss; AMP: overflows that
    do not stop)."""
    base, config = setup
    work_dir = base / f'diverging-{"amp" if amp else "fp32"}'
    shutil.copytree(straight_run, work_dir)
    saved = {f: (work_dir / f).read_bytes() for f in os.listdir(work_dir) if f.endswith('.ckpt')}
    assert any(f.startswith('best_') for f in saved)
    options = [f'train_cfg.max_epochs={MAX_EPOCHS + 1}', 'optim_wrapper.optimizer.lr=1e30']
    if amp:
        options.append('optim_wrapper.loss_scale.max_consecutive_skips=2')
    result = _run([TRAIN, config, '--work-dir', work_dir.name, '--resume'] + (['--amp'] if amp else [])
                  + ['--cfg-options'] + options, cwd=base, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    expected = 'consecutive fp16 overflows' if amp else 'the loss is'
    assert len(error) == 1 and 'iteration' in error[0] and expected in error[0], result.stderr[-2000:]
    assert {f: (work_dir / f).read_bytes() for f in os.listdir(work_dir) if f.endswith('.ckpt')} == saved
    for name in saved:
        params, _ = load_checkpoint(str(work_dir / name))
        assert all(np.isfinite(v.asnumpy()).all() for v in params.values()), name


@pytest.mark.parametrize('options, text', [
    (['optim_wrapper.optimizer.type=NoSuchOpt'], 'optim_wrapper.optimizer.type=\'NoSuchOpt\''),
    (['optim_wrapper.optimizer.lr=-0.1'], 'lr must be >= 0'),
    (['train_dataloader.dataset.data_root=/nonexistent/effnet'], '/nonexistent/effnet'),
])
def test_bad_config_values_give_one_error_line(setup, options, text):
    base, config = setup
    result = _run([TRAIN, config, '--work-dir', 'bad', '--cfg-options'] + options, cwd=base, timeout=300)
    assert result.returncode == 1  # the tools' error status (effnet_mm.runtime.cli)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and text in lines[0], result.stderr[-2000:]


def test_missing_checkpoint_for_test_tool(setup):
    base, config = setup
    result = _run([TEST, config, 'nope.ckpt'], cwd=base, timeout=300)
    assert result.returncode == 1  # the tools' error status (effnet_mm.runtime.cli)
    assert result.stderr.strip() == "error: checkpoint 'nope.ckpt' does not exist"


def test_compile_cache_is_refused_with_one_error_line(setup):
    base, config = setup
    result = subprocess.run([sys.executable, TRAIN, str(config), '--work-dir', 'cached'], cwd=base,
                            env=dict(_env(), MS_COMPILER_CACHE_ENABLE='1'), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: MS_COMPILER_CACHE_ENABLE=1'), result.stderr[-2000:]
    assert not (base / 'cached').exists()
