"""The small-map eval kernels of 1x1 convs (``pointwise_eval_op``, ``PointwiseBNInference``): plain, + BN, + BN + SiLU
against MindSpore ops, values and gradients; and which layers choose them."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.layers import Conv2dSame, ConvBNAct
from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.conv import POINTWISE_EVAL_MAX_PIXELS, pointwise_eval_op, small_maps

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

# (N, Ci, Co, H, W): B0's 7x7 with the columns of one GEMM panel spanning two images, maps smaller than a vector
# (2x2: one vector spans four images), 1x1, non-square, 10x10 (the kernel is correct beyond the maps it is chosen
# for), output channels that leave a partial row block, a single image.
CASES = [
    (4, 24, 40, 7, 7),
    (3, 13, 20, 2, 2),
    (2, 16, 9, 1, 1),
    (5, 8, 17, 7, 9),
    (2, 12, 16, 10, 10),
    (1, 32, 24, 4, 4),
]
MODES = [(False, False), (True, False), (True, True)]  # (bn, silu)


def _inputs(case):
    n, ci, co, h, w = case
    rng = np.random.default_rng(h * 10 + co)
    stats = np.stack([rng.standard_normal(co), rng.uniform(0.5, 2.0, co)]).astype(np.float32)
    return (ms.Tensor(rng.standard_normal((n, ci, h, w)).astype(np.float32)),
            ms.Tensor((rng.standard_normal((co, ci, 1, 1)) * 0.3).astype(np.float32)),
            ms.Tensor(rng.uniform(0.5, 1.5, co).astype(np.float32)),
            ms.Tensor(rng.standard_normal(co).astype(np.float32)), ms.Tensor(stats), ms.Tensor([1e-3], ms.float32))


def _mindspore_ops(bn, silu):
    def fn(x, w, gamma, beta, stats, eps):
        z = ops.Conv2D(w.shape[0], 1)(x, w)
        if not bn:
            return z
        shape = (1, -1, 1, 1)
        z = (z - stats[0].reshape(shape)) * ops.rsqrt(stats[1] + eps).reshape(shape)
        z = z * gamma.reshape(shape) + beta.reshape(shape)
        return ops.silu(z) if silu else z

    return fn


def _kernel(ci, co, bn, silu):
    op = pointwise_eval_op(ci, co, bn=bn, silu=silu)
    if bn:
        return op
    return lambda x, w, *unused: op(x, w)


def _value_and_grads(fn, inputs, bn):
    out = fn(*inputs)
    dy = ms.Tensor(np.random.default_rng(3).standard_normal(out.shape).astype(np.float32))
    grads = ms.grad(lambda *args: (fn(*args) * dy).sum(), (0, 1, 2, 3) if bn else (0, 1))(*inputs)
    return [out.asnumpy()] + [g.asnumpy() for g in grads]


@pytest.mark.parametrize('mode', MODES, ids=['conv', 'bn', 'bn_silu'])
@pytest.mark.parametrize('case', CASES, ids=str)
def test_small_map_kernel_equals_mindspore_ops(case, mode):
    bn, silu = mode
    inputs = _inputs(case)
    got = _value_and_grads(_kernel(case[1], case[2], bn, silu), inputs, bn)
    ref = _value_and_grads(_mindspore_ops(bn, silu), inputs, bn)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))


def test_layers_choose_the_kernel_on_small_maps_in_eval_only():
    rng = np.random.default_rng(0)
    small = ms.Tensor(rng.standard_normal((3, 16, 8, 8)).astype(np.float32))
    large = ms.Tensor(rng.standard_normal((3, 16, 9, 9)).astype(np.float32))
    assert small_maps(small) and not small_maps(large) and 9 * 9 > POINTWISE_EVAL_MAX_PIXELS >= 8 * 8
    for act in (False, True):
        layer = ConvBNAct(16, 24, 1, act=act)
        layer.bn.moving_mean.set_data(ms.Tensor(rng.standard_normal(24).astype(np.float32)))
        layer.bn.moving_variance.set_data(ms.Tensor(rng.uniform(0.5, 2.0, 24).astype(np.float32)))
        layer.set_train(False)
        assert layer._inference_kernel_applies(small) and not layer._inference_kernel_applies(large)
        fused, jitted = layer(small).asnumpy(), ms.jit(layer.construct)(small).asnumpy()
        layer.inference_kernel.enable_kernel(False)
        assert not layer._inference_kernel_applies(small)
        separate = layer(small).asnumpy()  # conv (the plain small-map kernel: PointwiseConv is in eval too), BN
        layer.conv.enable_kernel(False)
        mindspore = layer(small).asnumpy()
        for got in (fused, jitted, separate):
            np.testing.assert_allclose(got, mindspore, rtol=1e-5, atol=1e-6 * float(np.abs(mindspore).max()))
        layer.conv.enable_kernel(True)
        layer.inference_kernel.enable_kernel(True)
        layer.set_train(True)
        assert not layer._inference_kernel_applies(small)
    # A 1x1 conv alone (e.g. MBConv's expansion before its fused depthwise stage): the plain kernel in eval mode.
    conv = Conv2dSame(16, 24, 1)
    conv.set_train(False)
    np.testing.assert_allclose(conv(small).asnumpy(), ops.Conv2D(24, 1)(small, conv.weight).asnumpy(), rtol=1e-5,
                               atol=1e-5)
