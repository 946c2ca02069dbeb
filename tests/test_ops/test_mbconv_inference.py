"""The whole-block inference kernels (``MBConvInference``; ``StemMBConvInference`` with the stem before the first
block): against the depthwise stage between MindSpore's 1x1 convs (and the stem kernel), values and gradients; and
MBConv's and EfficientNet's choice of them."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.backbones import EfficientNet
from effnet_mm.models.backbones.mbconv import MBConv
from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.batchnorm import bn_act_op
from effnet_mm.ops.conv import conv_bn_silu_op
from effnet_mm.ops.depthwise_stage import depthwise_stage_op
from effnet_mm.ops.kernel_cell import kernel_threads
from effnet_mm.ops.mbconv_inference import BLOCK_MIN_PIXELS, mbconv_inference_op, stem_mbconv_inference_op

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

# (N, Ci, Ce, Co, H, W, k, stride, padding): residual blocks (stride 1, Co = Ci) and not, no expansion (Ce = Ci), row
# kernels and channel tiles (at most 8 output columns), channel counts that leave partial GEMM slivers and panels,
# symmetric padding, one image (fewer than the threads), a map as large as those MBConv runs here.
CASES = [
    (2, 8, 48, 8, 13, 12, 3, 1, 'same'),
    (3, 12, 40, 20, 15, 17, 5, 2, 'same'),
    (2, 16, 16, 8, 11, 11, 3, 1, 'same'),
    (2, 10, 60, 10, 7, 6, 5, 1, 'same'),
    (1, 6, 36, 14, 16, 16, 3, 2, 'symmetric'),
    (2, 8, 32, 8, 28, 29, 3, 1, 'same'),
]


def _tensor(rng, shape, low=None, high=None):
    values = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return ms.Tensor(values.astype(np.float32))


_EPS = ms.Tensor([1e-3], ms.float32)


def _bn(rng, c):
    stats = ms.Tensor(np.stack([rng.standard_normal(c), rng.uniform(0.5, 2.0, c)]).astype(np.float32))
    return _tensor(rng, c, 0.5, 1.5), _tensor(rng, c), stats, _EPS


def _inputs(case):
    n, ci, ce, co, h, w, k, _, _ = case
    rng = np.random.default_rng(ci * 100 + h)
    x = _tensor(rng, (n, ci, h, w))
    expand = (_tensor(rng, (ce, ci, 1, 1)) * (1 / ci ** 0.5), ) if ce != ci else ()
    w_dw = _tensor(rng, (ce, 1, k, k))
    pre = _bn(rng, ce) if ce != ci else ()
    reduced = max(1, ci // 4)
    se = (_tensor(rng, (reduced, ce, 1, 1)), _tensor(rng, reduced), _tensor(rng, (ce, reduced, 1, 1)),
          _tensor(rng, ce))
    w_p = _tensor(rng, (co, ce, 1, 1)) * (1 / ce ** 0.5)
    return (x, ) + expand + (w_dw, ) + _bn(rng, ce) + pre + se + (w_p, ) + _bn(rng, co)


def _separate(case):
    """The block from the depthwise stage kernel, MindSpore's 1x1 convs and the BN kernel."""
    _, ci, ce, co, h, w, _, stride, padding = case
    expanded, residual = ce != ci, stride == 1 and co == ci
    stage, bn = depthwise_stage_op(stride, padding, expanded, True), bn_act_op(False, False)

    def block(*args):
        x, rest = args[0], args[1:]
        e = ops.conv2d(x, rest[0]) if expanded else x
        rest = rest[1:] if expanded else rest
        stage_args = rest[:-5]
        y, _ = stage(e, *stage_args)
        out = bn(ops.conv2d(y, rest[-5]), *rest[-4:])
        return out + x if residual else out

    return block


def _value_and_grads(fn, inputs):
    out = fn(*inputs)
    dy = _tensor(np.random.default_rng(5), out.shape)
    # Everything but the BNs' statistics and epsilons (constants; the only float32 (2, C) and eps tensors).
    constants = {i for i, t in enumerate(inputs) if (t.ndim == 2 and t.shape[0] == 2) or t is _EPS}
    positions = tuple(i for i in range(len(inputs)) if i not in constants)
    grads = ms.grad(lambda *args: (fn(*args) * dy).sum(), positions)(*inputs)
    return out.asnumpy(), [g.asnumpy() for g in grads]


@pytest.mark.parametrize('case', CASES, ids=str)
def test_block_equals_stage_between_1x1_convs(case):
    _, ci, ce, co, _, _, _, stride, padding = case
    inputs = _inputs(case)
    op = mbconv_inference_op(stride, padding, ce != ci, stride == 1 and co == ci, (ci, ce, co))
    fused, fused_grads = _value_and_grads(op, inputs)
    separate, separate_grads = _value_and_grads(_separate(case), inputs)
    scale = float(np.abs(separate).max())
    # Each output is one dot product summed in order, like oneDNN's; the epilogue is the BN kernel's arithmetic.
    np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-6 * scale)
    assert len(fused_grads) == len(separate_grads) == len(inputs) - 2 * (3 if ce != ci else 2)
    for got, ref in zip(fused_grads, separate_grads):
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def _block(ci, co, stride, expand_ratio):
    ms.set_seed(0)
    block = MBConv(ci, co, kernel_size=3, stride=stride, expand_ratio=expand_ratio)
    rng = np.random.default_rng(1)
    for param in block.get_parameters():
        if 'moving_mean' in param.name:
            param.set_data(_tensor(rng, param.shape))
        elif 'moving_variance' in param.name:
            param.set_data(_tensor(rng, param.shape, 0.5, 2.0))
    block.set_train(False)
    return block


@pytest.mark.parametrize('ci,co,stride,expand_ratio', [(8, 8, 1, 4), (8, 12, 2, 6), (16, 8, 1, 1)])
def test_mbconv_eval_runs_the_block_kernel_on_large_maps(ci, co, stride, expand_ratio):
    side = int(np.ceil(BLOCK_MIN_PIXELS ** 0.5))
    x = _tensor(np.random.default_rng(2), (max(2, kernel_threads()), ci, side, side))
    block = _block(ci, co, stride, expand_ratio)
    assert block._inference_block_applies(x)
    fused = block(x).asnumpy()
    jitted = ms.jit(block.construct)(x).asnumpy()
    block.inference_block.enable_kernel(False)  # PyNative: the next call takes the depthwise stage
    assert not block._inference_block_applies(x) and block._inference_stage_applies()
    separate = block(x).asnumpy()
    np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-6 * float(np.abs(separate).max()))
    np.testing.assert_allclose(jitted, separate, rtol=1e-5, atol=1e-6 * float(np.abs(separate).max()))


def test_mbconv_keeps_the_stage_on_small_maps_training_and_without_se():
    block = _block(8, 8, 1, 4)
    small = _tensor(np.random.default_rng(3), (4, 8, 14, 14))
    assert not block._inference_block_applies(small) and block._inference_stage_applies()
    large = _tensor(np.random.default_rng(3), (4, 8, 28, 28))
    block.set_train(True)
    assert not block._inference_block_applies(large)
    assert MBConv(8, 8, 3, 1, 4, se_ratio=0.0).inference_block is None


# (N, Ci, H, W, Ce, Co, stride, padding) of the stem + first block kernel: B0-like channels on odd sizes, channel counts
# that leave partial stem and GEMM blocks, symmetric padding, one image.
STEM_CASES = [
    (2, 3, 33, 32, 32, 16, 2, 'same'),
    (2, 3, 17, 19, 20, 12, 1, 'same'),
    (1, 4, 30, 30, 24, 8, 2, 'symmetric'),
]


@pytest.mark.parametrize('case', STEM_CASES, ids=str)
def test_stem_and_block_equal_the_stem_kernel_and_the_block_kernel(case):
    n, ci, h, w, ce, co, stride, padding = case
    rng = np.random.default_rng(h * 10 + ce)
    x, w_s = _tensor(rng, (n, ci, h, w)), _tensor(rng, (ce, ci, 3, 3)) * 0.3
    block_inputs = _inputs((n, ce, ce, co, 1, 1, 3, 1, 'same'))[1:]  # the block's parameters (no expansion)
    inputs = (x, w_s) + _bn(rng, ce) + block_inputs
    stem, block = conv_bn_silu_op(stride, padding), mbconv_inference_op(1, 'same', False, False, (ce, ce, co))

    def separate(x, w_s, gamma, beta, stats, eps, *rest):
        return block(stem(x, w_s, gamma, beta, stats, eps), *rest)

    fused, fused_grads = _value_and_grads(stem_mbconv_inference_op(stride, padding, (ce, ce, co)), inputs)
    ref, ref_grads = _value_and_grads(separate, inputs)
    # The same loops in the same order as the two kernels: equal up to the SiLU of a whole plane against row bands.
    np.testing.assert_allclose(fused, ref, rtol=1e-6, atol=1e-6 * float(np.abs(ref).max()))
    assert len(fused_grads) == len(ref_grads) == len(inputs) - 2 * 3
    for got, want in zip(fused_grads, ref_grads):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def _backbone(**kwargs):
    ms.set_seed(0)
    model = EfficientNet('b0', **kwargs)
    rng = np.random.default_rng(6)
    for param in model.get_parameters():
        if 'moving_mean' in param.name:
            param.set_data(_tensor(rng, param.shape) * 0.1)
        elif 'moving_variance' in param.name:
            param.set_data(_tensor(rng, param.shape, 0.5, 2.0))
    model.set_train(False)
    return model


def test_efficientnet_eval_runs_the_stem_and_first_block_on_one_kernel():
    # 64 px: the stem's output 32 x 32 is at least BLOCK_MIN_PIXELS.
    x = _tensor(np.random.default_rng(7), (max(2, kernel_threads()), 3, 64, 64))
    fused_model, separate_model = _backbone(), _backbone()
    assert fused_model._stem_block_applies(x)
    separate_model.stem_block.enable_kernel(False)
    assert not separate_model._stem_block_applies(x)
    # Separate instances: a graph compiled with the stem kernel would be reused for the same cell.
    fused = ms.jit(fused_model.construct)(x)[0].asnumpy()
    separate = ms.jit(separate_model.construct)(x)[0].asnumpy()
    np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-6 * float(np.abs(separate).max()))
    # Not when the stem's output is requested, in training, or on maps below the block kernel's.
    assert not _backbone(out_indices=(0, 6))._stem_block_applies(x)
    fused_model.set_train(True)
    assert not fused_model._stem_block_applies(x)
    fused_model.set_train(False)
    assert not fused_model._stem_block_applies(x[:, :, :32, :32])
