"""The eval stem kernel (``ConvBNSiLUInference``): a dense conv + BN + SiLU against the separate kernels and MindSpore
ops, values and gradients; and ConvBNAct's choice of it."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.layers import ConvBNAct
from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.batchnorm import bn_act_op
from effnet_mm.ops.conv import conv_bn_silu_op, conv_op

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

# (N, Ci, Co, H, W, k, stride, padding): the stem (3 -> 32, k3 s2), output channels that leave a partial block,
# k5/k7, odd and non-square sizes, symmetric padding.
CASES = [
    (2, 3, 32, 33, 32, 3, 2, 'same'),
    (2, 3, 13, 17, 19, 5, 1, 'same'),
    (1, 4, 9, 15, 14, 7, 2, 'same'),
    (2, 3, 16, 16, 18, 3, 2, 'symmetric'),
]


def _inputs(case):
    n, ci, co, h, w, k, _, _ = case
    rng = np.random.default_rng(h * 10 + co)
    stats = np.stack([rng.standard_normal(co), rng.uniform(0.5, 2.0, co)]).astype(np.float32)
    return (ms.Tensor(rng.standard_normal((n, ci, h, w)).astype(np.float32)),
            ms.Tensor((rng.standard_normal((co, ci, k, k)) * 0.3).astype(np.float32)),
            ms.Tensor(rng.uniform(0.5, 1.5, co).astype(np.float32)),
            ms.Tensor(rng.standard_normal(co).astype(np.float32)), ms.Tensor(stats), ms.Tensor([1e-3], ms.float32))


def _separate(stride, padding):
    conv, act = conv_op('dense', stride, padding), bn_act_op(True, False)
    return lambda x, w, *bn: act(conv(x, w), *bn)


def _mindspore_ops(stride, padding):
    def fn(x, w, gamma, beta, stats, eps):
        k = w.shape[2]
        pad = dict(pad_mode='same') if padding == 'same' else dict(pad_mode='pad', pad=k // 2)
        z = ops.Conv2D(w.shape[0], k, stride=stride, **pad)(x, w)
        shape = (1, -1, 1, 1)
        z = (z - stats[0].reshape(shape)) * ops.rsqrt(stats[1] + eps).reshape(shape)
        return ops.silu(z * gamma.reshape(shape) + beta.reshape(shape))

    return fn


def _value_and_grads(fn, inputs):
    out = fn(*inputs)
    dy = ms.Tensor(np.random.default_rng(3).standard_normal(out.shape).astype(np.float32))
    grads = ms.grad(lambda *args: (fn(*args) * dy).sum(), (0, 1, 2, 3))(*inputs)
    return [out.asnumpy()] + [g.asnumpy() for g in grads]


@pytest.mark.parametrize('case', CASES, ids=str)
def test_stem_kernel_equals_separate_kernels_and_mindspore_ops(case):
    stride, padding = case[6], case[7]
    inputs = _inputs(case)
    fused = _value_and_grads(conv_bn_silu_op(stride, padding), inputs)
    separate = _value_and_grads(_separate(stride, padding), inputs)
    reference = _value_and_grads(_mindspore_ops(stride, padding), inputs)
    for got, same_kernels, ref in zip(fused, separate, reference):
        scale = float(np.abs(ref).max())
        # Another summation order over the taps and input channels than the per-channel conv: float rounding.
        np.testing.assert_allclose(got, same_kernels, rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * scale)


def test_conv_bn_act_uses_the_stem_kernel_only_in_eval():
    ms.set_seed(0)
    stem = ConvBNAct(3, 32, 3, stride=2)
    rng = np.random.default_rng(4)
    stem.bn.moving_mean.set_data(ms.Tensor(rng.standard_normal(32).astype(np.float32)))
    stem.bn.moving_variance.set_data(ms.Tensor(rng.uniform(0.5, 2.0, 32).astype(np.float32)))
    x = ms.Tensor(rng.standard_normal((2, 3, 20, 21)).astype(np.float32))
    stem.set_train(False)
    assert stem._inference_kernel_applies(x)
    fused, jitted = stem(x).asnumpy(), ms.jit(stem.construct)(x).asnumpy()
    stem.inference_kernel.enable_kernel(False)
    assert not stem._inference_kernel_applies(x)
    separate = stem(x).asnumpy()
    np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jitted, separate, rtol=1e-5, atol=1e-6)
    stem.inference_kernel.enable_kernel(True)
    stem.set_train(True)
    assert not stem._inference_kernel_applies(x)
    assert ConvBNAct(3, 32, 3, stride=2, act=False).inference_kernel is None  # BN without swish
    assert ConvBNAct(8, 8, 3, groups=8).inference_kernel is None  # depthwise: MBConv's stage covers it
