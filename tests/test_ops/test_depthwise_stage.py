"""The fused inference depthwise stage (``DepthwiseStage``, with and without the SE): against the separate kernels and
MindSpore ops, values and gradients; and MBConv's choice between it and its separate layers."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.backbones.mbconv import MBConv
from effnet_mm.ops import kernels_unavailable_reason, set_kernels
from effnet_mm.ops.batchnorm import bn_act_op
from effnet_mm.ops.conv import conv_op
from effnet_mm.ops.depthwise_stage import DepthwiseStage, depthwise_stage_op
from effnet_mm.ops.elementwise import sigmoid_gate_op, silu_op
from effnet_mm.ops.spatial_mean import spatial_mean_op

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

# (N, C, H, W, k, stride, padding): row kernels (wide planes), channel tiles (at most 8 output columns, a partial
# block of channels), TF "SAME" and symmetric padding; the last two are large enough for two threads, one with a
# single image (the SE stage then gates in a second parallel pass instead of per image).
CASES = [
    (2, 6, 17, 16, 3, 1, 'same'),
    (2, 5, 15, 18, 5, 2, 'same'),
    (2, 19, 7, 7, 5, 1, 'same'),
    (3, 17, 8, 9, 3, 2, 'symmetric'),
    (1, 24, 40, 40, 3, 1, 'same'),
    (2, 24, 40, 40, 5, 2, 'same'),
]


def _tensor(rng, shape, low=None, high=None):
    values = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return ms.Tensor(values.astype(np.float32))


def _bn(rng, c):
    """(gamma, beta, stats, eps) of a BatchNorm on moving statistics."""
    stats = ms.Tensor(np.stack([rng.standard_normal(c), rng.uniform(0.5, 2.0, c)]).astype(np.float32))
    return _tensor(rng, c, 0.5, 1.5), _tensor(rng, c), stats, ms.Tensor([1e-3], ms.float32)


def _inputs(case, expanded, se):
    n, c, h, w, k, _, _ = case
    rng = np.random.default_rng(h * 100 + c)
    x, weight = _tensor(rng, (n, c, h, w)), _tensor(rng, (c, 1, k, k))
    reduced = max(1, c // 4)
    se_params = (_tensor(rng, (reduced, c, 1, 1)), _tensor(rng, reduced), _tensor(rng, (c, reduced, 1, 1)),
                 _tensor(rng, c))
    return (x, weight) + _bn(rng, c) + (_bn(rng, c) if expanded else ()) + (se_params if se else ())


def _split(args, expanded):
    """(x, w, bn, pre_bn, se) of a stage's inputs."""
    rest = args[6:]
    return args[0], args[1], args[2:6], rest[:4] if expanded else (), rest[4:] if expanded else rest


def _conv1x1(x, w, b):
    return ops.conv2d(x, w) + b.reshape(1, -1, 1, 1)


def _separate_kernels(stride, padding, expanded):
    act, conv, mean = bn_act_op(True, False), conv_op('depthwise', stride, padding), spatial_mean_op()
    silu, gate = silu_op(), sigmoid_gate_op()

    def stage(*args):
        x, w, bn, pre, se = _split(args, expanded)
        y = act(conv(act(x, *pre) if expanded else x, w), *bn)
        pooled = mean(y)
        if se:
            y = gate(y, _conv1x1(silu(_conv1x1(pooled, se[0], se[1])), se[2], se[3]))
        return y, pooled

    return stage


def _mindspore_ops(stride, padding, expanded):
    def bn_silu(x, gamma, beta, stats, eps):
        shape = (1, -1, 1, 1)
        rstd = ops.rsqrt(stats[1] + eps).reshape(shape)
        return ops.silu((x - stats[0].reshape(shape)) * rstd * gamma.reshape(shape) + beta.reshape(shape))

    def stage(*args):
        x, w, bn, pre, se = _split(args, expanded)
        a = bn_silu(x, *pre) if expanded else x
        k = w.shape[2]
        if padding == 'same':
            conv = ops.Conv2D(a.shape[1], k, pad_mode='same', stride=stride, group=a.shape[1])
        else:
            conv = ops.Conv2D(a.shape[1], k, pad_mode='pad', pad=k // 2, stride=stride, group=a.shape[1])
        y = bn_silu(conv(a, w), *bn)
        pooled = y.mean((2, 3), keep_dims=True)
        if se:
            s = _conv1x1(ops.silu(_conv1x1(pooled, se[0], se[1])), se[2], se[3])
            # float64 sigmoid: MindSpore's float32 CPU Sigmoid is a ~8e-7 approximation
            y = y * ops.sigmoid(s.astype(ms.float64)).astype(ms.float32)
        return y, pooled

    return stage


def _loss_and_grads(stage, inputs, expanded, se):
    rng = np.random.default_rng(7)
    y, pooled = stage(*inputs)
    gy, gp = _tensor(rng, y.shape), _tensor(rng, pooled.shape)

    def loss(*args):
        out, squeezed = stage(*args)
        return (out * gy).sum() + (squeezed * gp).sum()

    # x, w, gamma, beta (and the expansion BN's gamma, beta, the SE convs); statistics and eps are constants.
    positions = (0, 1, 2, 3) + ((6, 7) if expanded else ())
    if se:
        positions += tuple(range(len(inputs) - 4, len(inputs)))
    return (y.asnumpy(), pooled.asnumpy()), [g.asnumpy() for g in ms.grad(loss, positions)(*inputs)]


@pytest.mark.parametrize('se', [True, False], ids=['se', 'no-se'])
@pytest.mark.parametrize('expanded', [True, False], ids=['expanded', 'first-block'])
@pytest.mark.parametrize('case', CASES, ids=str)
def test_stage_equals_separate_kernels_and_mindspore_ops(case, expanded, se):
    stride, padding = case[5], case[6]
    inputs = _inputs(case, expanded, se)
    fused, fused_grads = _loss_and_grads(depthwise_stage_op(stride, padding, expanded, se), inputs, expanded, se)
    kernels, kernel_grads = _loss_and_grads(_separate_kernels(stride, padding, expanded), inputs, expanded, se)
    reference, reference_grads = _loss_and_grads(_mindspore_ops(stride, padding, expanded), inputs, expanded, se)
    for got, same_kernels, ref in zip(fused + tuple(fused_grads), kernels + tuple(kernel_grads),
                                      reference + tuple(reference_grads)):
        scale = float(np.abs(ref).max())
        # The same per-channel constants, conv loops and mean as the separate kernels: float rounding at most.  The
        # SE's gradients pass through two small matrix products and a sigmoid derivative computed in another order
        # (the SE's separate layers are 1.5e-5 * scale from the reference themselves, measured).
        np.testing.assert_allclose(got, same_kernels, rtol=1e-6, atol=(1e-5 if se else 1e-6) * scale)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=(3e-5 if se else 1e-5) * scale)


def _block(expand_ratio=4, se_ratio=0.25):
    ms.set_seed(0)
    block = MBConv(8, 8, kernel_size=3, stride=1, expand_ratio=expand_ratio, se_ratio=se_ratio)
    rng = np.random.default_rng(1)
    for param in block.get_parameters():  # moving statistics away from (0, 1), so every BN does something
        if 'moving_mean' in param.name:
            param.set_data(_tensor(rng, param.shape))
        elif 'moving_variance' in param.name:
            param.set_data(_tensor(rng, param.shape, 0.5, 2.0))
    return block


@pytest.mark.parametrize('expand_ratio,se_ratio', [(4, 0.25), (1, 0.25), (6, 0.0)])
def test_mbconv_eval_runs_the_stage_with_the_result_of_its_layers(expand_ratio, se_ratio):
    block = _block(expand_ratio, se_ratio)
    x = _tensor(np.random.default_rng(2), (2, 8, 9, 9))
    block.set_train(False)
    assert isinstance(block.inference_stage, DepthwiseStage) and block._inference_stage_applies()
    fused = block(x).asnumpy()
    jitted = ms.jit(block.construct)(x).asnumpy()
    block.inference_stage.enable_kernel(False)  # PyNative: the next call takes the separate layers
    assert not block._inference_stage_applies()
    separate = block(x).asnumpy()
    np.testing.assert_allclose(fused, separate, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jitted, separate, rtol=1e-6, atol=1e-6)


def test_mbconv_uses_its_layers_when_the_stage_does_not_apply():
    block = _block()
    block.set_train(True)
    assert not block._inference_stage_applies()  # training: batch statistics
    block.set_train(False)
    block.depthwise_conv.bn.use_batch_statistics = True
    assert not block._inference_stage_applies()  # batch statistics forced in eval
    block.depthwise_conv.bn.use_batch_statistics = None
    assert set_kernels(block, False) == 0
    assert not block._inference_stage_applies()
    assert set_kernels(block, True) > 0 and block._inference_stage_applies()
    sync_bn = MBConv(8, 8, 3, 1, 4, norm_cfg=dict(type='SyncBN'))
    assert sync_bn.inference_stage is None
