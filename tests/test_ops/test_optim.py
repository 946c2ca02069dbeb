"""The multi-tensor optimizer kernels (``fused=True``) against MindSpore's per-parameter ops, and the fused
global-norm clipping against ``ops.clip_by_global_norm``."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from effnet_mm.engine.optimizers import build_optimizer
from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.optim import clip_by_global_norm

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

OPTIMIZERS = [
    dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-2),
    dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    dict(type='SGD', lr=0.1),
    dict(type='RMSProp', lr=0.05, alpha=0.9, momentum=0.9, eps=1e-3, weight_decay=1e-2),
    dict(type='AdamW', lr=0.01, weight_decay=0.05),
]


def _net():
    ms.set_seed(0)
    # No bias before the BN: its gradient would be rounding noise, which Adam's normalisation blows up to full steps.
    net = nn.SequentialCell([nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Dense(8 * 64, 5)])
    for name, param in net.parameters_and_names():
        param.name = name
    return net


def _train(cfg, fused, steps=3):
    net = _net()
    opt = build_optimizer(dict(cfg, fused=fused), net.trainable_params(), dict(norm_decay_mult=0.0,
                                                                               bias_decay_mult=0.0))
    assert opt.fused == fused
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction='mean')

    def forward(x, y):
        return loss_fn(net(x), y)

    grad_fn = ms.value_and_grad(forward, None, opt.parameters)

    def step(x, y):
        loss, grads = grad_fn(x, y)
        opt(grads)
        return loss

    step = ms.jit(step)
    rng = np.random.default_rng(0)
    net.set_train(True)
    for _ in range(steps):
        x = Tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
        y = Tensor(rng.integers(0, 5, 4).astype(np.int32))
        step(x, y)
    return {p.name: p.asnumpy().copy() for p in opt.get_parameters()}


@pytest.mark.parametrize('cfg', OPTIMIZERS, ids=lambda c: '-'.join(f'{k}={v}' for k, v in c.items() if k != 'lr'))
def test_fused_step_matches_mindspore_ops(cfg):
    fused, reference = _train(cfg, True), _train(cfg, False)
    assert fused.keys() == reference.keys()  # the same state names (checkpoints do not change)
    # MindSpore's CPU ApplyRMSProp errs by ~3e-5 (see the float64 test below); the other ops are exact.
    atol = 1e-4 if cfg['type'] == 'RMSProp' else 1e-6
    for name, value in reference.items():
        np.testing.assert_allclose(fused[name], value, rtol=1e-5, atol=atol, err_msg=name)


def test_fused_rmsprop_matches_float64():
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(216).astype(np.float32) * 0.1
    grads = [rng.standard_normal(216).astype(np.float32) * 0.1 for _ in range(3)]
    weight = ms.Parameter(Tensor(w0.copy()), name='w')
    opt = build_optimizer(dict(type='RMSProp', lr=0.05, alpha=0.9, momentum=0.9, eps=1e-3, weight_decay=1e-2),
                          [weight])
    assert opt.fused

    def step(g):
        return opt((g, ))

    step = ms.jit(step)
    for g in grads:
        step(Tensor(g))
    w, mean_square, moment = w0.astype(np.float64), np.ones(216), np.zeros(216)
    for g in grads:
        g = g + 1e-2 * w
        mean_square = 0.9 * mean_square + 0.1 * g * g
        moment = 0.9 * moment + 0.05 * g / np.sqrt(mean_square + 1e-3)
        w = w - moment
    np.testing.assert_allclose(weight.asnumpy(), w, rtol=0, atol=1e-7)


@pytest.mark.parametrize('max_norm', [0.5, 1e3])  # clipping and not clipping
def test_clip_by_global_norm_matches_mindspore(max_norm):
    rng = np.random.default_rng(1)
    grads = tuple(Tensor(rng.standard_normal(shape).astype(np.float32)) for shape in [(3, 4), (40000, ), (1, )])

    def fused(*g):
        return clip_by_global_norm(g, Tensor([max_norm], ms.float32))

    def reference(*g):
        return ops.clip_by_global_norm(g, max_norm)

    for got, want in zip(ms.jit(fused)(*grads), ms.jit(reference)(*grads)):
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-5, atol=1e-7)


def test_fused_ema_update_matches_mindspore_ops():
    from effnet_mm.engine.ema import EMAWeights

    results = []
    for fused in (True, False):
        net = _net()
        ema = EMAWeights(net)
        assert ema.fused
        ema.fused = fused  # compile-time switch: the second EMA runs MindSpore's per-parameter ops
        rng = np.random.default_rng(3)
        update = ms.jit(ema.construct)
        for decay in (0.5, 0.9):
            for p in net.get_parameters():
                p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32)))
            update(Tensor(decay, ms.float32))
        results.append([s.asnumpy().copy() for s in ema.shadow])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
