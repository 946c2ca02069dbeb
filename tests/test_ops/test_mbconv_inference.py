"""The whole-block inference kernel (``MBConvInference``): against the depthwise stage between MindSpore's 1x1 convs,
values and gradients; and MBConv's choice of it."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.backbones.mbconv import MBConv
from effnet_mm.ops import kernels_unavailable_reason
from effnet_mm.ops.batchnorm import bn_act_op
from effnet_mm.ops.depthwise_stage import depthwise_stage_op
from effnet_mm.ops.kernel_cell import kernel_threads
from effnet_mm.ops.mbconv_inference import BLOCK_MIN_PIXELS, mbconv_inference_op

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
