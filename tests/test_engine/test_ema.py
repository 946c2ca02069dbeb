"""EMA of weights: TF decay warm-up, in-graph update over all parameters (BN statistics too), swap."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from effnet_mm.engine.ema import EMAWeights, ema_decay
from effnet_mm.runtime.param_io import write_params


def test_decay_warmup_formula():
    assert ema_decay(0.9999, 0) == pytest.approx(0.1)
    assert ema_decay(0.9999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.9999, 10**6) == 0.9999
    assert ema_decay(0.9, 5, warmup=False) == 0.9


def _net():
    net = nn.SequentialCell([nn.Dense(3, 2), nn.BatchNorm1d(2)])
    for name, param in net.parameters_and_names():
        param.name = name
    return net


def test_update_covers_bn_statistics_and_matches_numpy():
    net = _net()
    ema = EMAWeights(net)
    start = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    assert 'net.1.moving_mean' not in start and '1.moving_mean' in start
    new_values = [np.random.default_rng(i).normal(size=p.shape).astype(np.float32)
                  for i, p in enumerate(net.get_parameters())]
    write_params(list(net.get_parameters()), new_values)

    def update(decay):
        return ema(decay)

    ms.jit(update)(Tensor(0.75, ms.float32))
    state = ema.state()
    for (name, old), new in zip(start.items(), new_values):
        np.testing.assert_allclose(state[name], 0.75 * old + 0.25 * new, rtol=1e-6, atol=1e-7)


def test_swap_twice_restores_and_is_seen_by_compiled_graphs():
    net = _net()
    net.set_train(False)
    ema = EMAWeights(net)
    x = Tensor(np.ones((2, 3), np.float32))

    def forward(inputs):
        return net(inputs)

    forward = ms.jit(forward)
    before = forward(x).asnumpy()
    # Make model weights differ from the shadow, then swap: the compiled forward must see the shadow values.
    write_params([net[0].weight], [np.zeros((2, 3), np.float32)])
    changed = forward(x).asnumpy()
    assert not np.allclose(changed, before)
    ema.swap()
    np.testing.assert_allclose(forward(x).asnumpy(), before, rtol=1e-6)
    ema.swap()
    np.testing.assert_allclose(forward(x).asnumpy(), changed, rtol=1e-6)
    np.testing.assert_array_equal(net[0].weight.asnumpy(), 0)
