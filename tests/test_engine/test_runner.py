"""Runner on a tiny network and an in-memory loader that follows the Loaders contract (fast, no image files)."""
import os

import numpy as np
import pytest

from effnet_mm.engine.checkpoints import optimizer_state_params
from effnet_mm.utils import load_checkpoint
from tests.helpers import read_scalars
from tests.test_engine.tiny_run import ColourLoader, make_runner, tiny_model  # noqa: F401


def test_train_validate_checkpoint_layout_and_test(tmp_path):
    work_dir = tmp_path / 'wd'
    runner = make_runner(work_dir, experiment_name='run1')
    runner.train()
    files = sorted(os.listdir(work_dir))
    # max_keep_ckpts=2 removed epoch_1; exactly one best file.
    assert [f for f in files if f.startswith('epoch_')] == ['epoch_2.ckpt', 'epoch_3.ckpt']
    assert len([f for f in files if f.startswith('best_accuracy_top1_epoch_')]) == 1
    assert open(work_dir / 'last_checkpoint').read() == 'epoch_3.ckpt'  # relative: a copied work dir resumes itself
    assert (work_dir / 'run1' / 'run1.log').exists()

    records = read_scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'accuracy/top1' in r]
    assert [r['iter'] for r in train] == list(range(1, 19))
    assert [r['step'] for r in val] == [1, 2, 3]
    # The logged LR is the schedule's: warm-up 0.001 -> 0.01 over 6 iterations, then x0.5 every 1.5 epochs.
    assert train[0]['lr'] == pytest.approx(0.001)
    assert train[5]['lr'] == pytest.approx(0.01)
    assert train[15]['lr'] == pytest.approx(0.005)
    assert np.mean([r['loss'] for r in train[-6:]]) < np.mean([r['loss'] for r in train[:6]])
    assert val[-1]['accuracy/top1'] > 70  # chance is 33 %

    # The checkpoint's plain names are the EMA weights used for validation: testing them reproduces the metric.
    params, meta = load_checkpoint(str(work_dir / 'epoch_3.ckpt'))
    assert meta['epoch'] == '3' and meta['iter'] == '18'
    assert any(k.startswith('online.') for k in params) and any(k.startswith('mean_square.') for k in params)
    tester = make_runner(tmp_path / 'test', load_from=str(work_dir / 'epoch_3.ckpt'))
    metrics = tester.test()
    assert metrics == pytest.approx({k: val[-1][k] for k in metrics})


def _all_state(runner):
    state = {p.name: p.asnumpy() for p in runner.model.get_parameters()}
    state.update({p.name: p.asnumpy()
                  for p in optimizer_state_params(runner.model, runner.optim_wrapper.optimizer)})
    ema = runner.hooks[[type(h).__name__ for h in runner.hooks].index('EMAHook')].ema
    state.update({f'ema.{k}': v for k, v in ema.state().items()})
    return state


def test_resume_is_exact(tmp_path):
    # Drop path and dropout on: their masks are data of the step (seed, epoch, sample), so an in-process resume is
    # exact too; tests/test_tools/test_train_test.py checks SIGKILLed runs across processes.
    model = tiny_model(drop=0.3)
    straight = make_runner(tmp_path / 'a', max_epochs=3, model=model)
    straight.train()
    first = make_runner(tmp_path / 'b', max_epochs=2, model=model)
    first.train()
    resumed = make_runner(tmp_path / 'b', max_epochs=3, resume=True, model=model)
    resumed.train()
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-6, rtol=0, err_msg=name)
    iters = [r['iter'] for r in read_scalars(tmp_path / 'b') if 'loss' in r]
    assert iters == list(range(1, 19))


def test_load_from_skips_a_different_head_and_rejects_other_mismatches(tmp_path, caplog):
    source = make_runner(tmp_path / 'src', max_epochs=1, ema=False)
    source.train()
    ckpt = str(tmp_path / 'src' / 'epoch_1.ckpt')
    finetune = make_runner(tmp_path / 'ft', max_epochs=1, ema=False, model=tiny_model(num_classes=5), load_from=ckpt)
    finetune.load_weights(ckpt, finetune=True)
    stem = source.model.backbone.stem[0].weight.asnumpy()
    np.testing.assert_array_equal(finetune.model.backbone.stem[0].weight.asnumpy(), stem)
    assert finetune.model.head.fc.weight.shape == (5, 8)

    other = make_runner(tmp_path / 'other', max_epochs=1, ema=False,
                        model=dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch='b0'),
                                   neck=dict(type='GlobalAveragePooling'),
                                   head=dict(type='LinearClsHead', num_classes=3, in_channels=1280)))
    with pytest.raises(KeyError, match=r'missing \d+: backbone.layers'):
        other.load_weights(ckpt)


@pytest.mark.parametrize('override, error, text', [
    (dict(optim_wrapper=dict(optimizer=dict(type='Adamax', lr=0.1))), KeyError, 'Adamax'),
    (dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=-1.0))), ValueError, 'lr must be >= 0'),
    (dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=-1))), ValueError,
     'clip_grad.max_norm'),
    (dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1), paramwise=dict())), KeyError, 'paramwise'),
    (dict(train_cfg=dict(max_epochs=0)), ValueError, 'max_epochs'),
    (dict(param_scheduler=[dict(type='PolyLR')]), KeyError, 'PolyLR'),
])
def test_bad_config_values(tmp_path, override, error, text):
    runner = make_runner(tmp_path / 'bad', **override)
    with pytest.raises(error, match=text):
        runner.train()


def test_resume_refuses_weights_only_files(tmp_path):
    from effnet_mm.utils import save_checkpoint
    runner = make_runner(tmp_path / 'r', max_epochs=1)
    path = save_checkpoint(runner.model, str(tmp_path / 'weights.ckpt'))
    runner = make_runner(tmp_path / 'r', max_epochs=1, resume=path)
    with pytest.raises(ValueError, match='not an effnet_mm training checkpoint'):
        runner.train()


@pytest.mark.parametrize('level', ['O1', 'O2'])
def test_amp_trains_and_checkpoints_the_loss_scale(tmp_path, level):
    runner = make_runner(tmp_path / level, max_epochs=1, ema=False,
                         optim_wrapper=dict(type='AmpOptimWrapper', level=level,
                                            loss_scale=dict(init_scale=2.0**20, growth_interval=3),
                                            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)))
    runner.train()
    train = [r for r in read_scalars(tmp_path / level) if 'loss' in r]
    assert all(np.isfinite(r['loss']) for r in train)
    assert all('loss_scale' in r for r in train)
    params, _ = load_checkpoint(str(tmp_path / level / 'epoch_1.ckpt'))
    assert float(params['loss_scaler.scale_value'].asnumpy()) == train[-1]['loss_scale']


def test_amp_rejects_unknown_level(tmp_path):
    runner = make_runner(tmp_path / 'amp', max_epochs=1,
                         optim_wrapper=dict(type='AmpOptimWrapper', level='O3', optimizer=dict(type='SGD', lr=0.1)))
    with pytest.raises(ValueError, match='level'):
        runner.train()


def test_auto_scale_lr_uses_the_real_batch_size(tmp_path):
    runner = make_runner(tmp_path / 'scale', max_epochs=1, ema=False, param_scheduler=[],
                         auto_scale_lr=dict(base_batch_size=32, enable=True))
    runner.train()
    lrs = [r['lr'] for r in read_scalars(tmp_path / 'scale') if 'loss' in r]
    assert lrs == pytest.approx([0.01 * 8 / 32] * 6)


def test_work_dir_priority_and_cli_flags(tmp_path):
    from mmengine.config import Config

    from effnet_mm.engine.cli import apply_train_args
    path = tmp_path / 'my_config.py'
    path.write_text("optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n"
                    "auto_scale_lr = dict(base_batch_size=256)\n"
                    "default_hooks = dict(checkpoint=dict(type='CheckpointHook', save_best='accuracy/top1'))\n")
    cfg = Config.fromfile(str(path))
    assert apply_train_args(cfg.copy()).work_dir == os.path.join('./work_dirs', 'my_config')
    cfg.work_dir = 'from_config'
    assert apply_train_args(cfg.copy()).work_dir == 'from_config'
    out = apply_train_args(cfg.copy(), work_dir='from_cli', resume='auto', amp=True, auto_scale_lr=True,
                           no_validate=True)
    assert out.work_dir == 'from_cli' and out.resume is True and out.load_from is None
    assert out.optim_wrapper.type == 'AmpOptimWrapper' and out.optim_wrapper.loss_scale == 'dynamic'
    assert out.auto_scale_lr.enable is True
    assert out.val_dataloader is None and out.default_hooks.checkpoint.save_best is None
    assert apply_train_args(cfg.copy(), resume='x.ckpt').load_from == 'x.ckpt'
