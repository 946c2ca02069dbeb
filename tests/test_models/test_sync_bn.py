"""SyncBN (``norm_cfg=dict(type='SyncBN')``): BN in one process; global-batch moments and gradients under msrun."""
import os
import socket
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from effnet_mm.models.layers import ConvBNAct, SyncBatchNorm2d, build_norm_layer, is_norm_layer
from tests.helpers import ROOT

WORKER = ROOT / 'tests' / 'test_models' / 'sync_bn_worker.py'


def _randomised_pair(channels, rng, eps=1e-5, momentum=0.3):
    sync = SyncBatchNorm2d(channels, eps=eps, momentum=momentum)
    bn = nn.BatchNorm2d(channels, eps=eps, momentum=1.0 - momentum)
    values = dict(gamma=rng.uniform(0.5, 1.5, channels), beta=rng.normal(0, 0.3, channels),
                  moving_mean=rng.normal(0, 0.5, channels), moving_variance=rng.uniform(0.5, 2.0, channels))
    for cell in (sync, bn):
        for name, value in values.items():
            getattr(cell, name).set_data(ms.Tensor(value.astype(np.float32)))
    return sync, bn


def _weighted_sum(cell, weights):
    def loss(a):
        return (cell(a).astype(ms.float32) * weights).sum()

    return loss


def test_sync_bn_in_one_process_is_batchnorm():
    """Outside a process group: outputs, gradients and moving statistics bit-identical to nn.BatchNorm2d."""
    rng = np.random.default_rng(0)
    sync, bn = _randomised_pair(5, rng)
    initial_mean = sync.moving_mean.asnumpy().copy()
    assert sync.group_ranks == (0, ) and not sync.synchronised
    names = [[p.name for p in nn.SequentialCell([cell]).get_parameters()] for cell in (sync, bn)]
    assert names[0] == names[1] == ['0.moving_mean', '0.moving_variance', '0.gamma', '0.beta']
    x = ms.Tensor(rng.normal(1.0, 2.0, (3, 5, 6, 7)).astype(np.float32))
    weights = ms.Tensor(rng.normal(size=(3, 5, 6, 7)).astype(np.float32))
    results = []
    for cell in (sync, bn):
        cell.set_train(True)
        step = ms.jit(ms.value_and_grad(_weighted_sum(cell, weights), 0, cell.trainable_params()))
        outs = [step(x) for _ in range(2)]
        stats = [cell.moving_mean.asnumpy().copy(), cell.moving_variance.asnumpy().copy()]
        cell.set_train(False)
        results.append((outs, stats, cell(x).asnumpy()))
    (sync_outs, sync_stats, sync_eval), (bn_outs, bn_stats, bn_eval) = results
    for (sl, (sdx, sdp)), (bl, (bdx, bdp)) in zip(sync_outs, bn_outs):
        assert float(sl) == float(bl)
        np.testing.assert_array_equal(sdx.asnumpy(), bdx.asnumpy())
        for got, want in zip(sdp, bdp):
            np.testing.assert_array_equal(got.asnumpy(), want.asnumpy())
    for got, want in zip(sync_stats, bn_stats):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(sync_stats[0], initial_mean)  # the statistics did move
    np.testing.assert_array_equal(sync_eval, bn_eval)


def test_sync_bn_on_moving_statistics_in_training():
    """``use_batch_statistics=False`` (norm_eval, frozen stages): moving statistics, which stay unchanged."""
    rng = np.random.default_rng(1)
    sync, bn = _randomised_pair(4, rng)
    before = sync.moving_mean.asnumpy().copy()
    x = ms.Tensor(rng.normal(size=(2, 4, 5, 5)).astype(np.float32))
    for cell in (sync, bn):
        cell.set_train(True)
        cell.use_batch_statistics = False
    np.testing.assert_array_equal(sync(x).asnumpy(), bn(x).asnumpy())
    np.testing.assert_array_equal(sync.moving_mean.asnumpy(), before)


def test_build_norm_layer_sync_bn():
    layer = build_norm_layer(dict(type='SyncBN', eps=1e-3, momentum=0.01, group_size=8), 16)
    assert isinstance(layer, SyncBatchNorm2d) and is_norm_layer(layer)
    assert (layer.eps, layer.momentum, layer.num_features) == (1e-3, 0.01, 16)
    assert not isinstance(layer, nn.BatchNorm2d)  # ConvBNAct's fused CPU BN (local statistics) must not apply
    with pytest.raises(ValueError, match=r"norm_cfg.group_size is a key of type='SyncBN', not of 'BN'"):
        build_norm_layer(dict(type='BN', group_size=2), 4)
    for bad in (0, -2, 1.5, '2', True):
        with pytest.raises(ValueError, match=r'norm_cfg.group_size must be a positive int or None, got '):
            build_norm_layer(dict(type='SyncBN', group_size=bad), 4)


def test_conv_bn_act_with_sync_bn_trains_like_batchnorm():
    """ConvBNAct with SyncBN in one process: the same outputs, gradients and statistics as with BN."""
    from effnet_mm.ops import set_fast_conv

    rng = np.random.default_rng(2)
    ms.set_seed(0)
    sync = ConvBNAct(4, 6, 3, stride=2, norm_cfg=dict(type='SyncBN', eps=1e-3, momentum=0.1))
    ref = ConvBNAct(4, 6, 3, stride=2, norm_cfg=dict(type='BN', eps=1e-3, momentum=0.1))
    set_fast_conv(ref, False)
    ms.load_param_into_net(ref, {p.name: ms.Parameter(p.data.copy(), name=p.name) for p in sync.get_parameters()})
    x = ms.Tensor(rng.normal(size=(2, 4, 9, 9)).astype(np.float32))
    weights = ms.Tensor(rng.normal(size=(2, 6, 5, 5)).astype(np.float32))
    results = []
    for cell in (sync, ref):
        cell.set_train(True)
        out = ms.jit(ms.value_and_grad(_weighted_sum(cell, weights), None, cell.trainable_params()))(x)
        results.append((out, [p.asnumpy().copy() for p in cell.get_parameters() if 'moving' in p.name]))
    ((sync_loss, sync_grads), sync_stats), ((ref_loss, ref_grads), ref_stats) = results
    np.testing.assert_allclose(float(sync_loss), float(ref_loss), rtol=1e-5, atol=1e-5)  # fast vs MindSpore conv
    for got, want in zip(list(sync_grads) + sync_stats, list(ref_grads) + ref_stats):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)


def test_sync_bn_trains_under_amp_o2():
    """AMP O2 casts this cell's input to float16 (it spares only nn.BatchNorm*): SyncBN computes in float32 and
    trains like BN does under O2."""
    from effnet_mm.engine.amp import apply_amp

    x = ms.Tensor(np.random.default_rng(3).normal(size=(2, 3, 16, 16)).astype(np.float32))
    results = []
    for norm_type in ('SyncBN', 'BN'):
        ms.set_seed(0)
        norm_cfg = dict(type=norm_type)
        net = apply_amp(nn.SequentialCell([ConvBNAct(3, 8, 3, stride=2, norm_cfg=norm_cfg),
                                           ConvBNAct(8, 8, 3, norm_cfg=norm_cfg)]), 'O2')
        net.set_train(True)
        value, grads = ms.jit(ms.value_and_grad(_weighted_sum(net, 1.0), None, net.trainable_params()))(x)
        assert all(np.isfinite(g.asnumpy()).all() for g in grads)
        stats = [p for p in net.get_parameters() if 'moving' in p.name]
        assert stats and all(p.dtype == ms.float32 for p in stats)
        results.append((float(value), [p.asnumpy() for p in stats]))
    (sync_loss, sync_stats), (bn_loss, bn_stats) = results
    np.testing.assert_allclose(sync_loss, bn_loss, rtol=1e-4)
    for got, want in zip(sync_stats, bn_stats):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_efficientnet_with_sync_bn():
    """Same checkpoint names as BN; norm_eval pins every SyncBN layer to its moving statistics."""
    from mindspore.nn.utils import no_init_parameters

    from effnet_mm.models.backbones import EfficientNet

    with no_init_parameters():
        sync = EfficientNet('b0', norm_cfg=dict(type='SyncBN'), norm_eval=True)
        plain = EfficientNet('b0')
    norms = [c for _, c in sync.cells_and_names() if is_norm_layer(c)]
    assert len(norms) == 49 and all(isinstance(c, SyncBatchNorm2d) for c in norms)
    assert all(c.use_batch_statistics is False for c in norms)
    assert [(p.name, p.shape) for p in sync.get_parameters()] == [(p.name, p.shape) for p in plain.get_parameters()]


# ----------------------------------------------------------------------------------------------- msrun (2-4 ranks)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(args, cwd, msrun_workers=0):
    env = dict(os.environ, GLOG_v='3')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    if msrun_workers:
        command = ['msrun', f'--worker_num={msrun_workers}', f'--local_worker_num={msrun_workers}',
                   f'--master_port={_free_port()}', '--log_dir=msrun_logs', '--join=True', '--tail_worker_log=0',
                   str(WORKER)] + args + ['--launcher', 'msrun']
    else:
        command = [sys.executable, str(WORKER)] + args
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    logs = ''
    if result.returncode and msrun_workers:
        for rank in range(msrun_workers):
            path = os.path.join(cwd, 'msrun_logs', f'worker_{rank}.log')
            if os.path.exists(path):
                with open(path) as f:
                    logs += f.read()[-3000:]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:] + logs


def _load(path):
    with np.load(path) as data:
        return dict(data)


def _assert_stats_close(got, want):
    assert sorted(got) == sorted(want) and len(want) == 6
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_two_ranks_on_half_batches_equal_one_process_on_the_whole_batch(tmp_path):
    """Moving statistics after a step (<= 1e-6), and weights after 3 SGD steps (the gradient of the global-batch
    BN), equal a single process on the whole batch; both ranks end bit-identical."""
    _run(['single'], tmp_path)
    _run(['dual'], tmp_path, msrun_workers=2)
    single = _load(tmp_path / 'single' / 'single_step1.npz')
    for rank in (0, 1):
        _assert_stats_close(_load(tmp_path / 'dual' / f'rank{rank}_step1.npz'), single)
    rank0, rank1 = (_load(tmp_path / 'dual' / f'rank{r}_final.npz') for r in (0, 1))
    expected = _load(tmp_path / 'single' / 'single_final.npz')
    assert sorted(rank0) == sorted(rank1) == sorted(expected)
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
        np.testing.assert_allclose(rank0[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(expected['stem.bn.gamma'], 1.0)  # the weights did train


@pytest.mark.slow
def test_group_size_syncs_within_groups_of_ranks(tmp_path):
    """4 ranks, group_size=2: each pair normalises its own batch (one rank with 3 images, one with 5) like a single
    process on it; the trainable weights stay identical on all ranks (gradients are averaged over all 4)."""
    _run(['single0', '--batch-seed', '0'], tmp_path)
    _run(['single1', '--batch-seed', '1'], tmp_path)
    _run(['groups', '--group-size', '2', '--uneven'], tmp_path, msrun_workers=4)
    singles = [_load(tmp_path / f'single{k}' / 'single_step1.npz') for k in (0, 1)]
    for rank in range(4):
        _assert_stats_close(_load(tmp_path / 'groups' / f'rank{rank}_step1.npz'), singles[rank // 2])
    assert not np.allclose(singles[0]['stem.bn.moving_mean'], singles[1]['stem.bn.moving_mean'], atol=1e-3)
    finals = [_load(tmp_path / 'groups' / f'rank{r}_final.npz') for r in range(4)]
    for name in finals[0]:
        if 'moving_' not in name:
            for other in finals[1:]:
                np.testing.assert_array_equal(finals[0][name], other[name], err_msg=name)
