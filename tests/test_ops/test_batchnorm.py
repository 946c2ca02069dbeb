"""``BatchNormAct2d`` (BatchNorm + optional SiLU on kernels) against ``nn.BatchNorm2d`` + ``nn.SiLU``.

Training mode (batch statistics, the full BN gradient, the moving-statistics update) and fixed statistics (eval,
and norm_eval-style training through the fixed-statistics gradient), over repeated calls of compiled graphs;
``nn.BatchNorm2d`` compatibility (type, parameter names, momentum, ``bn_train`` swapping) and AMP.
"""
import mindspore as ms
import numpy as np
import pytest
from mindspore import amp, nn, ops

from effnet_mm.models.layers import ConvBNAct
from effnet_mm.ops import BatchNormAct2d, kernels_unavailable_reason, set_kernels

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')
CALLS = 3


def _randomise_bn(cell, rng):
    for param in cell.get_parameters():
        if param.name.rsplit('.', 1)[-1] in ('gamma', 'beta', 'moving_mean', 'moving_variance'):
            value = rng.random(param.shape).astype(np.float32) + 0.5
            param.set_data(ms.Tensor(value if 'var' in param.name or 'gamma' in param.name else value - 1.0))


def _pair(rng, **kwargs):
    """A ConvBNAct on kernels and an identical copy on MindSpore ops."""
    fast, ref = ConvBNAct(**kwargs), ConvBNAct(**kwargs)
    _randomise_bn(fast, rng)
    ms.load_param_into_net(ref, {p.name: ms.Parameter(p.data.copy(), name=p.name) for p in fast.get_parameters()})
    assert fast.bn.use_kernel and set_kernels(ref, False) == 0
    return fast, ref


def _weighted_sum(cell, weights):
    def loss(a):
        return (cell(a) * weights).sum()

    return loss


def test_is_a_batchnorm2d_with_its_parameters_and_momentum():
    bn = BatchNormAct2d(8, eps=1e-3, momentum=0.99, act=True)
    assert isinstance(bn, nn.BatchNorm2d)
    assert [p.name for p in bn.get_parameters()] == [p.name for p in nn.BatchNorm2d(8).get_parameters()]
    assert bn.eps == 1e-3 and bn.momentum == pytest.approx(0.01)  # MindSpore stores the batch weight 1 - 0.99
    assert [p.name for p in ConvBNAct(3, 8, 3).get_parameters()] == [
        'conv.weight', 'bn.moving_mean', 'bn.moving_variance', 'bn.gamma', 'bn.beta']


# Planes of at least 64 values and smaller ones (those run over whole runs of planes).
PLANES = [(9, 10), (5, 6)]


@pytest.mark.parametrize('plane', PLANES, ids=str)
@pytest.mark.parametrize('act', [True, False])
def test_fixed_statistics_match_batchnorm(act, plane):
    rng = np.random.default_rng(7)
    fast, ref = _pair(rng, in_channels=6, out_channels=6, kernel_size=3, groups=6, act=act)
    x = ms.Tensor(rng.standard_normal((2, 6) + plane).astype(np.float32))
    for cell in (fast, ref):
        cell.set_train(False)
    expected = ref(x).asnumpy()
    np.testing.assert_allclose(fast(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ms.jit(fast)(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    # norm_eval-style training (BN on moving statistics) differentiates through the fixed-statistics gradient.
    for cell in (fast, ref):
        cell.set_train(True)
        cell.bn.use_batch_statistics = False
    params, ref_params = list(fast.trainable_params()), list(ref.trainable_params())

    def loss(a):
        return (fast(a)**2).sum()

    def ref_loss(a):
        return (ref(a)**2).sum()

    want = ms.grad(ref_loss, 0, ref_params)(x)
    for _ in range(CALLS):
        got = ms.jit(ms.grad(loss, 0, params))(x)
        np.testing.assert_allclose(got[0].asnumpy(), want[0].asnumpy(), rtol=1e-4, atol=1e-4)
        for g, w in zip(got[1], want[1]):
            np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('channels,plane', [(8, (19, 17)), (8, (11, 9)), (1030, (3, 3))], ids=str)
@pytest.mark.parametrize('act', [True, False])
def test_batch_statistics_match_batchnorm(act, channels, plane):
    """Outputs, gradients and moving-statistics updates over repeated jit calls, on output planes of 90, 30 and 4
    values (the last with more channels than one work item of the small-plane kernels takes)."""
    rng = np.random.default_rng(8)
    fast, ref = _pair(rng, in_channels=4, out_channels=channels, kernel_size=3, stride=2, act=act)
    x = ms.Tensor((rng.standard_normal((3, 4) + plane) * 2 + 1).astype(np.float32))
    out_plane = tuple((size + 1) // 2 for size in plane)
    gy = ms.Tensor(rng.standard_normal((3, channels) + out_plane).astype(np.float32))
    results = []
    for cell in (fast, ref):
        cell.set_train(True)
        step = ms.jit(ms.value_and_grad(_weighted_sum(cell, gy), 0, list(cell.trainable_params())))
        outs = [step(x) for _ in range(CALLS)]
        stats = [p.asnumpy().copy() for p in cell.get_parameters() if 'moving' in p.name]
        results.append((outs, stats))
    (fast_outs, fast_stats), (ref_outs, ref_stats) = results
    for (fl, (fdx, fdp)), (rl, (rdx, rdp)) in zip(fast_outs, ref_outs):
        np.testing.assert_allclose(float(fl), float(rl), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(fdx.asnumpy(), rdx.asnumpy(), rtol=1e-4, atol=1e-5)
        for g, w in zip(fdp, rdp):
            np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-4, atol=1e-4)
    for got, want in zip(fast_stats, ref_stats):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_swapped_training_primitive_sets_the_update_weight():
    """BN calibration swaps ``bn_train`` for a momentum-1 primitive: the moving statistics become the batch's."""
    rng = np.random.default_rng(10)
    bn = BatchNormAct2d(4, momentum=0.9)
    bn.bn_train = ops.BatchNorm(is_training=True, epsilon=bn.eps, momentum=1.0)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32) * 3 + 2
    bn.set_train(True)
    bn(ms.Tensor(x))
    np.testing.assert_allclose(bn.moving_mean.asnumpy(), x.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.asnumpy(), x.var(axis=(0, 2, 3), ddof=1), rtol=1e-5, atol=1e-5)


def test_amp_o2_keeps_the_kernels_and_trains():
    """AMP O2 wraps every BatchNorm2d in a float32 cast cell; the kernels still run inside it, and the step trains."""
    net = nn.SequentialCell([ConvBNAct(3, 8, 3, stride=2), ConvBNAct(8, 8, 5, groups=8)])
    net = amp.auto_mixed_precision(net, 'O2', dtype=ms.float16)
    assert all(cell.use_kernel for _, cell in net.cells_and_names() if isinstance(cell, BatchNormAct2d))
    net.set_train(True)
    x = ms.Tensor(np.random.default_rng(9).standard_normal((2, 3, 16, 16)).astype(np.float32))
    step = ms.jit(ms.value_and_grad(_weighted_sum(net, 1.0), None, net.trainable_params()))
    for _ in range(2):
        loss, grads = step(x)
        assert np.isfinite(float(loss)) and all(np.isfinite(g.asnumpy()).all() for g in grads)


def test_deprecated_fused_batchnorm_act_keeps_its_interface():
    """``FusedBatchNormAct`` (the former kernel cell of ConvBNAct) still works, with a deprecation warning."""
    from effnet_mm.ops import FusedBatchNormAct

    rng = np.random.default_rng(3)
    x = ms.Tensor(rng.standard_normal((2, 4, 5, 6)).astype(np.float32))
    gamma, beta = (ms.Tensor(rng.random(4).astype(np.float32) + 0.5) for _ in range(2))
    mean, variance = ms.Tensor(rng.standard_normal(4).astype(np.float32)), ms.Tensor(rng.random(4).astype(np.float32))
    with pytest.warns(DeprecationWarning, match='FusedBatchNormAct is deprecated'):
        cell = FusedBatchNormAct(1e-3, silu=True)
    scale = gamma.asnumpy() / np.sqrt(variance.asnumpy() + 1e-3)
    z = x.asnumpy() * scale[:, None, None] + (beta.asnumpy() - mean.asnumpy() * scale)[:, None, None]
    np.testing.assert_allclose(cell(x, gamma, beta, mean, variance).asnumpy(), z / (1 + np.exp(-z)), atol=1e-5)
    y, batch_mean, unbiased = cell.batch_stats(x, gamma, beta)
    data = x.asnumpy()
    np.testing.assert_allclose(batch_mean.asnumpy(), data.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(unbiased.asnumpy(), data.var(axis=(0, 2, 3), ddof=1), rtol=1e-4)
    assert y.shape == x.shape
