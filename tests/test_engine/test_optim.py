"""Optimizers under TF/PyTorch semantics, weight-decay param groups, LR Parameter, gradient clipping."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from effnet_mm.engine.optim_wrapper import OptimWrapper
from effnet_mm.engine.optimizers import build_optimizer, build_param_groups
from effnet_mm.engine.train_step import TrainStep


class Quadratic(nn.Cell):
    """loss = sum(w * x); the gradient wrt w is x."""

    def __init__(self, w):
        super().__init__()
        self.w = Parameter(Tensor(np.asarray(w, np.float32)), name='layer.weight')

    def loss(self, x, y, drop_masks=None, dropout_mask=None):
        return (self.w * x).sum() + y.astype(ms.float32).sum() * 0


def make_train_step(net, opt, max_norm=None):
    return TrainStep(net, OptimWrapper(optimizer=opt, base_lr=float(opt.learning_rate.asnumpy()), max_norm=max_norm))


def _run(opt_cfg, grads, w0, max_norm=None):
    net = Quadratic(w0)
    opt = build_optimizer(opt_cfg, net.trainable_params())
    step = make_train_step(net, opt, max_norm=max_norm)
    labels = np.zeros(1, np.int32)
    for g in grads:
        step(np.asarray(g, np.float32), labels, float(opt_cfg['lr']), None, None)
    return net.w.asnumpy()


def test_rmsprop_matches_tf1_formula():
    lr, rho, mom, eps, wd = 0.1, 0.9, 0.9, 1e-3, 0.01
    w = np.array([1.0, -2.0, 0.5], np.float32)
    grads = [np.array([0.3, -0.1, 2.0]), np.array([-0.5, 0.2, 0.1]), np.array([0.05, 0.0, -1.0])]
    got = _run(dict(type='RMSProp', lr=lr, alpha=rho, momentum=mom, eps=eps, weight_decay=wd), grads, w)
    # TF1 RMSPropOptimizer: ms starts at 1, eps inside sqrt, lr inside the momentum accumulator; L2 added to grad.
    ref, ms_, mo = w.astype(np.float64), np.ones(3), np.zeros(3)
    for g in grads:
        g = g + wd * ref
        ms_ = rho * ms_ + (1 - rho) * g * g
        mo = mom * mo + lr * g / np.sqrt(ms_ + eps)
        ref = ref - mo
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_rmsprop_decay_alias():
    w = np.ones(2, np.float32)
    a = _run(dict(type='RMSProp', lr=0.1, alpha=0.5), [np.array([1.0, 2.0])], w)
    b = _run(dict(type='RMSProp', lr=0.1, decay=0.5), [np.array([1.0, 2.0])], w)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('nesterov', [False, True])
def test_sgd_momentum_matches_pytorch_formula(nesterov):
    lr, mom, wd = 0.1, 0.9, 0.001
    w = np.array([1.0, -1.0], np.float32)
    grads = [np.array([1.0, 0.5]), np.array([0.2, -0.3]), np.array([-1.0, 0.0])]
    got = _run(dict(type='SGD', lr=lr, momentum=mom, weight_decay=wd, nesterov=nesterov), grads, w)
    ref, v = w.astype(np.float64), np.zeros(2)
    for g in grads:
        g = g + wd * ref
        v = mom * v + g
        ref = ref - lr * (g + mom * v if nesterov else v)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_adamw_is_mindspore_adamweightdecay_without_bias_correction():
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    w = np.array([1.0, -1.0], np.float32)
    g = np.array([1.0, -2.0])
    got = _run(dict(type='AdamW', lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), [g], w)
    m, v = (1 - b1) * g, (1 - b2) * g * g
    ref = w - lr * (m / (np.sqrt(v) + eps) + wd * w)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_gradient_clipping_by_global_norm():
    # |g| = 5 clipped to 1: plain SGD moves by lr * g / 5.
    got = _run(dict(type='SGD', lr=1.0), [np.array([3.0, 4.0])], np.zeros(2, np.float32), max_norm=1.0)
    np.testing.assert_allclose(got, [-0.6, -0.8], rtol=1e-5)


def test_lr_input_is_used_by_the_compiled_step():
    net = Quadratic(np.zeros(1, np.float32))
    opt = build_optimizer(dict(type='SGD', lr=1.0), net.trainable_params())
    step = make_train_step(net, opt)
    x, y = np.ones(1, np.float32), np.zeros(1, np.int32)
    step(x, y, 1.0, None, None)
    step(x, y, 0.25, None, None)
    np.testing.assert_allclose(net.w.asnumpy(), [-1.25])
    assert float(opt.learning_rate.asnumpy()) == 0.25


def test_param_groups_exclude_bn_and_bias_from_decay():
    net = nn.SequentialCell([nn.Conv2d(3, 4, 3, has_bias=True), nn.BatchNorm2d(4), nn.Dense(4, 2)])
    for name, param in net.parameters_and_names():
        param.name = name
    groups = build_param_groups(net.trainable_params(), 1e-5, dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
    by_decay = {g['weight_decay']: sorted(p.name for p in g['params']) for g in groups}
    assert by_decay == {1e-5: ['0.weight', '2.weight'], 0.0: ['0.bias', '1.beta', '1.gamma', '2.bias']}
    # Without paramwise_cfg everything decays.
    assert len(build_param_groups(net.trainable_params(), 1e-5)) == 1


def test_param_groups_reach_the_optimizer():
    net = nn.SequentialCell([nn.Dense(3, 2), nn.BatchNorm1d(2)])
    for name, param in net.parameters_and_names():
        param.name = name
    opt = build_optimizer(dict(type='RMSProp', lr=0.1, weight_decay=1e-5), net.trainable_params(),
                          dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
    decays = {p.name: float(d.asnumpy()) for p, d in zip(opt.parameters, opt.weight_decay)}
    assert decays == pytest.approx({'0.weight': 1e-5, '0.bias': 0.0, '1.gamma': 0.0, '1.beta': 0.0})


@pytest.mark.parametrize('cfg, error, text', [
    (dict(type='NoSuchOpt', lr=0.1), KeyError, 'NoSuchOpt'),
    (dict(type='RMSProp', lr=-0.1), ValueError, 'lr must be >= 0'),
    (dict(type='SGD'), KeyError, '"lr" is required'),
    (dict(type='SGD', lr=0.1, weight_decay=-1), ValueError, 'weight_decay'),
])
def test_bad_optimizer_configs(cfg, error, text):
    net = nn.Dense(2, 2)
    with pytest.raises(error, match=text):
        build_optimizer(cfg, net.trainable_params())


def test_unknown_paramwise_key():
    with pytest.raises(KeyError, match='custom_keys'):
        build_param_groups([], 0.1, dict(custom_keys={}))
