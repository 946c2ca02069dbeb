"""Production-scale training state: one compiled graph per run, iteration-based training, iteration checkpoints and
mid-epoch resume, gradient accumulation, the divergence guard, and the checkpoint-folder rules."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from effnet_mm.engine import TrainingDivergedError
from effnet_mm.engine.checkpoints import optimizer_state_params
from effnet_mm.engine.hooks import Hook
from effnet_mm.utils import load_checkpoint, save_checkpoint
from tests.helpers import ROOT, read_scalars
from tests.test_engine.tiny_run import ColourLoader, make_runner, tiny_model

ITER_CHECKPOINTS = dict(logger=dict(type='LoggerHook', interval=1),
                        checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4, save_best='accuracy/top1'))


def _state(runner):
    state = {p.name: p.asnumpy() for p in runner.model.get_parameters()}
    state.update({p.name: p.asnumpy() for p in optimizer_state_params(runner.model, runner.optim_wrapper.optimizer)})
    ema = runner.hooks[[type(h).__name__ for h in runner.hooks].index('EMAHook')].ema
    state.update({f'ema.{k}': v for k, v in ema.state().items()})
    return state


def _assert_same_state(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=atol, rtol=0, err_msg=name)


class _StopAt(Hook):
    """Raises after iteration ``n`` (and its checkpoint): an interrupted process."""

    priority = 'LOWEST'

    def __init__(self, n):
        self.n = n

    def after_iter(self, runner):
        if runner.iter == self.n:
            raise KeyboardInterrupt(f'stopped after iteration {self.n}')


COMPILE_COUNT_SCRIPT = '''
import sys
from tests.test_engine.tiny_run import make_runner
make_runner('wd', max_epochs=int(sys.argv[1]), default_hooks=dict(logger=dict(type='LoggerHook', interval=100))).train()
'''


def _compilations(tmp_path, epochs):
    """Graphs compiled by a run of ``epochs`` epochs: MindSpore writes one ``00_bootstrap_*.ir`` per compilation."""
    ir_dir = tmp_path / f'ir{epochs}'
    env = dict(os.environ, MS_DEV_SAVE_GRAPHS='1', MS_DEV_SAVE_GRAPHS_PATH=str(ir_dir), PYTHONPATH=str(ROOT),
               GLOG_v='3')
    run = subprocess.run([sys.executable, '-c', COMPILE_COUNT_SCRIPT, str(epochs)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    count = sum(name.startswith('00_bootstrap') for _, _, files in os.walk(ir_dir) for name in files)
    shutil.rmtree(ir_dir)  # tens of MB of IR text
    return count


def test_three_epochs_compile_no_more_graphs_than_one(tmp_path):
    """Validation every epoch, EMA, drop path and dropout on: the graphs are compiled once per run, not per epoch."""
    one, three = _compilations(tmp_path, 1), _compilations(tmp_path, 3)
    assert one > 0
    assert three <= one, f'a 3-epoch run compiled {three} graphs, a 1-epoch run {one}'


def test_iteration_based_training_checkpoints_and_validation(tmp_path):
    work_dir = tmp_path / 'iters'
    runner = make_runner(work_dir, train_cfg=dict(by_epoch=False, max_iters=14, val_interval=5),
                         default_hooks=ITER_CHECKPOINTS,
                         param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)])
    runner.train()
    assert (runner.iter, runner.epoch, runner.batch_in_epoch) == (14, 2, 2)  # 6 batches per data epoch
    records = read_scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in train] == list(range(1, 15))
    assert [r['lr'] for r in train[:10]] == pytest.approx([0.001 + 0.001 * i for i in range(10)])
    assert [r['step'] for r in records if 'accuracy/top1' in r] == [5, 10, 14]
    files = sorted(os.listdir(work_dir))
    assert [f for f in files if f.startswith('iter_')] == ['iter_12.ckpt', 'iter_14.ckpt', 'iter_4.ckpt',
                                                           'iter_8.ckpt']
    assert len([f for f in files if f.startswith('best_accuracy_top1_iter_')]) == 1
    assert (work_dir / 'last_checkpoint').read_text() == 'iter_14.ckpt'
    log = open(next(work_dir.glob('*/*.log'))).read()
    assert 'Iter(train) [14/14]' in log and 'Iter(val) [14]' in log


def test_by_epoch_checkpoints_are_refused_in_iteration_based_training(tmp_path):
    runner = make_runner(tmp_path / 'x', train_cfg=dict(by_epoch=False, max_iters=2))
    with pytest.raises(ValueError, match='checkpoint.by_epoch=True in an iteration-based run'):
        runner.train()


@pytest.mark.parametrize('train_cfg, stop', [(dict(by_epoch=True, max_epochs=3), 8),
                                             (dict(by_epoch=False, max_iters=16, val_interval=6), 10)])
def test_resume_from_an_iteration_checkpoint_mid_epoch_is_exact(tmp_path, train_cfg, stop):
    """Drop path, dropout and EMA on; the interrupted run resumes from iter_N.ckpt inside an epoch."""
    straight = make_runner(tmp_path / 'a', train_cfg=train_cfg, default_hooks=ITER_CHECKPOINTS)
    straight.train()
    interrupted = make_runner(tmp_path / 'b', train_cfg=train_cfg, default_hooks=ITER_CHECKPOINTS,
                              custom_hooks=[dict(type='EMAHook', momentum=0.1), _StopAt(stop)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    newest = 'iter_8.ckpt'
    assert (tmp_path / 'b' / 'last_checkpoint').read_text() == newest
    assert load_checkpoint(str(tmp_path / 'b' / newest))[1]['batch_in_epoch'] == '2'  # inside epoch 2 (6 per epoch)
    resumed = make_runner(tmp_path / 'b', train_cfg=train_cfg, default_hooks=ITER_CHECKPOINTS, resume=True)
    resumed.train()
    _assert_same_state(_state(straight), _state(resumed))
    losses = {r['iter']: r['loss'] for r in read_scalars(tmp_path / 'a') if 'loss' in r}
    again = {r['iter']: r['loss'] for r in read_scalars(tmp_path / 'b') if 'loss' in r}
    assert again == losses  # every iteration of the resumed run saw the same data, masks and LR


def test_mixup_cutmix_resume_reproduces_the_mixes(tmp_path):
    model = dict(tiny_model(), train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix',
                                                                                            alpha=1.0)]))
    cfg = dict(model=model, default_hooks=ITER_CHECKPOINTS)
    straight = make_runner(tmp_path / 'a', **cfg)
    straight.train()
    interrupted = make_runner(tmp_path / 'b', custom_hooks=[dict(type='EMAHook', momentum=0.1), _StopAt(9)], **cfg)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    resumed = make_runner(tmp_path / 'b', resume=True, **cfg)
    resumed.train()
    _assert_same_state(_state(straight), _state(resumed))


def test_accumulation_of_four_micro_batches_equals_one_large_batch(tmp_path):
    """K=4 micro-batches of 8 and batches of 32 give the same run (norm-free network; drop path, dropout and EMA on:
    their masks belong to the samples, not to the batches)."""
    model = tiny_model(backbone='NormFreeTestBackbone')
    optim = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4), clip_grad=dict(max_norm=5.0))
    common = dict(model=model, max_epochs=2, val_cfg=None,
                  default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
                  param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=True, begin=0, end=1,
                                        convert_to_iter_based=True)])
    large = make_runner(tmp_path / 'large', train_dataloader=ColourLoader(64, 32, shuffle=True), optim_wrapper=optim,
                        **common)
    large.train()
    micro = make_runner(tmp_path / 'micro', train_dataloader=ColourLoader(64, 8, shuffle=True),
                        optim_wrapper=dict(optim, accumulative_counts=4), **common)
    micro.train()
    _assert_same_state(_state(large), _state(micro))
    # The schedule counts updates: the 4 micro-batches of an update share its LR.
    micro_lrs = [r['lr'] for r in read_scalars(tmp_path / 'micro') if 'loss' in r]
    large_lrs = [r['lr'] for r in read_scalars(tmp_path / 'large') if 'loss' in r]
    assert micro_lrs == [lr for lr in large_lrs for _ in range(4)]


def test_diverged_run_stops_and_keeps_the_good_checkpoints(tmp_path):
    good = make_runner(tmp_path / 'wd', max_epochs=1)
    good.train()
    files = {f: open(tmp_path / 'wd' / f, 'rb').read() for f in os.listdir(tmp_path / 'wd') if f.endswith('.ckpt')}
    assert len(files) == 2  # epoch_1 and the best file
    diverging = make_runner(tmp_path / 'wd', max_epochs=2, resume=True,
                            optim_wrapper=dict(optimizer=dict(type='RMSProp', lr=1e30, alpha=0.9, momentum=0.9)))
    with pytest.raises(TrainingDivergedError, match=r'iteration \d+ \(epoch 2\): the loss is'):
        diverging.train()
    for name, data in files.items():
        assert open(tmp_path / 'wd' / name, 'rb').read() == data, name
        params, _ = load_checkpoint(str(tmp_path / 'wd' / name))
        assert all(np.isfinite(v.asnumpy()).all() for v in params.values())
    assert sorted(f for f in os.listdir(tmp_path / 'wd') if f.endswith('.ckpt')) == sorted(files)


def test_fp16_overflows_that_never_stop_end_the_run(tmp_path):
    runner = make_runner(tmp_path / 'amp', max_epochs=2, ema=False,
                         optim_wrapper=dict(type='AmpOptimWrapper', level='O2',
                                            loss_scale=dict(init_scale=2.0**4, max_consecutive_skips=3),
                                            optimizer=dict(type='SGD', lr=1e20)))
    with pytest.raises(TrainingDivergedError, match='consecutive fp16 overflows'):
        runner.train()
    assert not [f for f in os.listdir(tmp_path / 'amp') if f.endswith('.ckpt')]


def test_copied_work_dir_resumes_its_own_files(tmp_path):
    make_runner(tmp_path / 'W', max_epochs=2).train()
    shutil.copytree(tmp_path / 'W', tmp_path / 'W2')
    original = {f: (tmp_path / 'W' / f).read_bytes() for f in os.listdir(tmp_path / 'W') if f.endswith('.ckpt')}
    resumed = make_runner(tmp_path / 'W2', max_epochs=3, resume=True)
    resumed.train()
    assert resumed.iter == 18
    assert {f: (tmp_path / 'W' / f).read_bytes() for f in os.listdir(tmp_path / 'W') if f.endswith('.ckpt')} == \
        original


def test_metadata_paths_outside_the_work_dir_are_never_deleted(tmp_path):
    make_runner(tmp_path / 'W', max_epochs=1, ema=False).train()
    victim = tmp_path / 'precious.ckpt'
    victim.write_text('do not delete')
    crafted = tmp_path / 'W' / 'epoch_1.ckpt'
    params, meta = load_checkpoint(str(crafted))
    for path in (str(victim), '../precious.ckpt', str(tmp_path / 'W' / 'notes.txt')):
        meta.update(best_path=path, best_score='-1.0')  # any new score is better: the "old best" gets replaced
        save_checkpoint(params, str(crafted), meta)
        (tmp_path / 'W' / 'notes.txt').write_text('mine')
        make_runner(tmp_path / 'W', max_epochs=2, ema=False, resume=True).train()
        assert victim.read_text() == 'do not delete' and (tmp_path / 'W' / 'notes.txt').exists()
        (tmp_path / 'W' / 'last_checkpoint').write_text('epoch_1.ckpt')


def test_pointer_to_a_broken_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    make_runner(tmp_path / 'W', max_epochs=2, ema=False).train()
    newest = tmp_path / 'W' / 'epoch_2.ckpt'
    newest.write_bytes(newest.read_bytes()[:1000])  # killed between the rename and... or a broken disk
    resumed = make_runner(tmp_path / 'W', max_epochs=3, ema=False, resume=True)
    resumed.train()
    log = open(sorted((tmp_path / 'W').glob('*/*.log'))[-1]).read()
    assert 'epoch_2.ckpt' in log and 'resuming from' in log and 'epoch_1.ckpt' in log
    assert resumed.iter == 18


def test_stale_partial_saves_are_cleaned_at_start(tmp_path):
    make_runner(tmp_path / 'W', max_epochs=1, ema=False).train()
    stale = tmp_path / 'W' / '.epoch_2.0badc0de.partial.ckpt.tmp'
    stale.write_bytes(b'x' * 100)
    make_runner(tmp_path / 'W', max_epochs=2, ema=False, resume=True).train()
    assert not stale.exists()


@pytest.mark.parametrize('level', ['O1', 'O2'])
def test_amp_trains_the_real_network(level):
    """Mixed precision through every layer type of B0 (kernel convs with bias in the SE, BN + SiLU, the head)."""
    import mindspore as ms

    from effnet_mm.engine.optim_wrapper import build_optim_wrapper
    from effnet_mm.engine.train_step import TrainStep
    from effnet_mm.registry import MODELS

    ms.set_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch='b0'),
                              neck=dict(type='GlobalAveragePooling'),
                              head=dict(type='LinearClsHead', num_classes=3, in_channels=1280)))
    model.set_train(True)
    wrapper = build_optim_wrapper(dict(type='AmpOptimWrapper', level=level, loss_scale=dict(init_scale=2.0**4),
                                       optimizer=dict(type='SGD', lr=0.01)), model)
    step = TrainStep(model, wrapper)
    images = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32)).astype(np.uint8)
    before = model.head.fc.weight.asnumpy().copy()
    loss, finite = step(images, np.array([0, 1, 2, 0], np.int32), 0.01, None, None)
    assert np.isfinite(loss) and finite
    assert np.abs(model.head.fc.weight.asnumpy() - before).max() > 0
