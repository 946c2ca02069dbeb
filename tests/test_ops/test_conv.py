"""The k x k conv kernels (``conv_op``, ``Conv2dSame``) against MindSpore's Conv2D: values, gradients, switching.

Gradients are checked over several calls of the same compiled function because MindSpore has had gradient bugs
that only appear from the second call on (e.g. ``ops.pad`` under jit).
"""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from effnet_mm.models.layers import Conv2dSame
from effnet_mm.ops import conv_op, kernels_disabled, kernels_unavailable_reason

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

# (kind, N, C_in, C_out, H, W, k, stride): every k/stride of B0-B8 on even, odd and non-square planes, including
# the small 7/8 px maps of the last stages and sizes whose SAME padding is asymmetric; 4 and 2 take the generic
# (non-specialised) C++ loops.  Depthwise outputs of at most 8 columns run on the channel-tile kernels (the weight
# gradient up to 20 columns), wider ones on the row kernels.
CASES = [
    ('depthwise', 2, 8, 8, 14, 14, 3, 1),
    ('depthwise', 2, 8, 8, 7, 7, 3, 1),
    ('depthwise', 2, 8, 8, 15, 13, 3, 2),
    ('depthwise', 2, 8, 8, 28, 28, 3, 2),
    ('depthwise', 2, 8, 8, 8, 8, 5, 1),
    ('depthwise', 2, 8, 8, 13, 29, 5, 1),
    ('depthwise', 2, 8, 8, 29, 29, 5, 2),
    ('depthwise', 2, 8, 8, 14, 15, 5, 2),
    ('depthwise', 1, 4, 4, 1, 2, 3, 2),
    ('depthwise', 3, 5, 5, 2, 2, 5, 1),  # planes smaller than a vector, summed over a batch (weight gradient)
    ('dense', 2, 3, 8, 29, 28, 3, 2),
    ('dense', 2, 3, 8, 14, 14, 3, 2),
    ('dense', 2, 3, 4, 13, 7, 3, 1),
    ('dense', 2, 5, 6, 9, 8, 5, 2),
    ('depthwise', 2, 3, 3, 33, 35, 3, 1),  # more than two vector chunks per row
    ('depthwise', 2, 4, 4, 9, 10, 4, 2),  # generic (non-specialised) kernel sizes
    ('depthwise', 2, 4, 4, 19, 20, 4, 2),  # the same on the row kernels
    ('depthwise', 2, 37, 37, 4, 4, 5, 1),  # channel tiles: three blocks of channels, the last one partial
    ('depthwise', 2, 19, 19, 9, 7, 3, 2),
    ('dense', 1, 2, 3, 6, 7, 2, 1),
    ('dense', 2, 3, 13, 19, 41, 3, 1),  # output-channel blocks (the last partial), a partial column chunk
    ('dense', 1, 4, 9, 12, 37, 7, 2),  # k7 s2 SAME on an odd width: left pad 3 (the input gradient's first column)
    ('depthwise', 2, 4, 4, 13, 37, 7, 2),
    ('depthwise', 2, 4, 4, 9, 13, 7, 2),  # the same on channel tiles
]
# PyTorch-style padding (k // 2 on every side): only stride 2 (and even k) differ from "SAME"; even and odd sizes.
SYMMETRIC_CASES = [
    ('depthwise', 2, 8, 8, 14, 14, 3, 2),
    ('depthwise', 2, 8, 8, 15, 13, 3, 2),
    ('depthwise', 2, 8, 8, 28, 29, 5, 2),
    ('depthwise', 2, 4, 4, 9, 8, 4, 1),
    ('dense', 2, 3, 8, 16, 17, 3, 2),
]
CALLS = 3


def _ids(case):
    kind, n, ci, co, h, w, k, s = case
    return f'{kind}-{n}x{h}x{w}-k{k}s{s}'


def _reference(x, w, stride, groups, padding='same'):
    if padding == 'same':
        return ops.Conv2D(out_channel=w.shape[0], kernel_size=w.shape[2], pad_mode='same', stride=stride,
                          group=groups)(x, w)
    p = w.shape[2] // 2
    x = ops.Pad(((0, 0), (0, 0), (p, p), (p, p)))(x)  # the primitive: ops.pad has a jit gradient bug
    return ops.Conv2D(out_channel=w.shape[0], kernel_size=w.shape[2], pad_mode='valid', stride=stride,
                      group=groups)(x, w)


@pytest.mark.parametrize('case,padding', [(c, 'same') for c in CASES] + [(c, 'symmetric') for c in SYMMETRIC_CASES],
                         ids=lambda v: _ids(v) if isinstance(v, tuple) else v)
def test_forward_and_gradients_match_conv2d(case, padding):
    kind, n, ci, co, h, w, k, s = case
    groups = ci if kind == 'depthwise' else 1
    rng = np.random.default_rng(hash(case) % 2**32)
    x = ms.Tensor(rng.standard_normal((n, ci, h, w)).astype(np.float32))
    wt = ms.Tensor(rng.standard_normal((co, ci // groups, k, k)).astype(np.float32))
    op = conv_op(kind, s, padding)
    y_ref = _reference(x, wt, s, groups, padding)
    gy = ms.Tensor(rng.standard_normal(y_ref.shape).astype(np.float32))

    def fast_loss(a, b):
        return (op(a, b) * gy).sum()

    def ref_loss(a, b):
        return (_reference(a, b, s, groups, padding) * gy).sum()

    np.testing.assert_allclose(op(x, wt).asnumpy(), y_ref.asnumpy(), rtol=1e-5, atol=1e-5)
    loss_ref, (dx_ref, dw_ref) = ms.value_and_grad(ref_loss, (0, 1))(x, wt)
    fast_grad = ms.value_and_grad(fast_loss, (0, 1))
    for fn in (fast_grad, ms.jit(fast_grad)):
        for _ in range(CALLS):
            loss, (dx, dw) = fn(x, wt)
            np.testing.assert_allclose(float(loss), float(loss_ref), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(dx.asnumpy(), dx_ref.asnumpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(dw.asnumpy(), dw_ref.asnumpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('shape', [(2, 6, 5, 29, 28), (3, 5, 9, 7, 7), (2, 8, 4, 1, 1)], ids=str)
def test_pointwise_conv_gradients_match_conv2d(shape):
    """1x1 convs: MindSpore's forward, the transposed-conv input gradient and the weight gradient (kernel from 28 x 28
    pixels up, MindSpore's below), over repeated jit calls."""
    n, ci, co, h, w = shape
    rng = np.random.default_rng(sum(shape))
    conv, ref = Conv2dSame(ci, co, 1), Conv2dSame(ci, co, 1)
    assert conv.use_kernel and conv.kernel_kind == 'pointwise' and not ref.enable_kernel(False)
    ref.weight.set_data(conv.weight.data.copy())
    x = ms.Tensor(rng.standard_normal((n, ci, h, w)).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal((n, co, h, w)).astype(np.float32))

    def loss(a):
        return (conv(a) * gy).sum()

    def ref_loss(a):
        return (ref(a) * gy).sum()

    want = ms.value_and_grad(ref_loss, 0, ref.weight)(x)
    np.testing.assert_allclose(conv(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-5)
    step = ms.jit(ms.value_and_grad(loss, 0, conv.weight))
    for _ in range(CALLS):
        _, (dx, dw) = step(x)
        np.testing.assert_allclose(dx.asnumpy(), want[1][0].asnumpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dw.asnumpy(), want[1][1].asnumpy(), rtol=1e-4, atol=1e-4)


def test_gradients_match_finite_differences():
    """Independent of MindSpore's own conv: central differences in float64 on a tiny stride-2 depthwise case."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    wt = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    op = conv_op('depthwise', 2)
    gy = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)

    def loss(a, b):
        return (op(a, b) * ms.Tensor(gy)).sum()

    _, (dx, dw) = ms.value_and_grad(loss, (0, 1))(ms.Tensor(x), ms.Tensor(wt))

    def numeric(arr, other, first):
        grad = np.zeros_like(arr, dtype=np.float64)
        eps = 1e-2
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = (plus, other) if first else (other, plus)
            args_m = (minus, other) if first else (other, minus)
            diff = float(loss(*map(ms.Tensor, args_p))) - float(loss(*map(ms.Tensor, args_m)))
            grad[idx] = diff / (2 * eps)
        return grad

    np.testing.assert_allclose(dx.asnumpy(), numeric(x, wt, True), rtol=1e-3, atol=2e-3)
    np.testing.assert_allclose(dw.asnumpy(), numeric(wt, x, False), rtol=1e-3, atol=2e-3)


def test_conv2dsame_picks_the_kernel_and_can_switch_back():
    dw = Conv2dSame(16, 16, 5, stride=2, groups=16)
    stem = Conv2dSame(3, 8, 3, stride=2)
    pw = Conv2dSame(16, 8, 1, bias=True)
    strided = Conv2dSame(16, 8, 1, stride=2)
    assert dw.use_kernel and stem.use_kernel and pw.use_kernel and not strided.use_kernel
    symmetric = [Conv2dSame(16, 16, k, stride=s, groups=16, padding='symmetric') for k, s in ((3, 1), (3, 2), (4, 1))]
    assert [c.use_kernel for c in symmetric] == [True, True, True]
    assert [c.kernel_padding for c in symmetric] == ['same', 'symmetric', 'symmetric']  # k3 s1: identical to SAME
    assert [p.name for p in dw.get_parameters()] == ['weight']
    x = ms.Tensor(np.random.default_rng(1).standard_normal((2, 16, 11, 12)).astype(np.float32))
    fast = dw(x).asnumpy()
    assert not dw.enable_kernel(False)
    slow = dw(x).asnumpy()
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    assert fast.shape == (2, 16, 6, 6)


def test_mixed_precision_computes_the_kernel_in_float32():
    """The kernels are float32-only: float16 inputs and AMP O3 graphs must be cast around them, not crash."""
    from mindspore import amp

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    conv = Conv2dSame(4, 4, 3, stride=2, groups=4)
    expected = conv(ms.Tensor(x)).asnumpy()
    np.testing.assert_allclose(conv(ms.Tensor(x.astype(np.float16))).asnumpy(), expected, rtol=1e-2, atol=1e-2)
    net = amp.auto_mixed_precision(nn.SequentialCell([conv]), 'O3', dtype=ms.float16)
    out = ms.jit(net)(ms.Tensor(x))
    np.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-2, atol=1e-2)


def test_mindir_export_with_kernels_disabled(tmp_path):
    net = nn.SequentialCell([Conv2dSame(3, 8, 3, stride=2), Conv2dSame(8, 8, 5, groups=8)])
    x = ms.Tensor(np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32))
    expected = net(x).asnumpy()
    with kernels_disabled(net):
        ms.export(net, x, file_name=str(tmp_path / 'net'), file_format='MINDIR')
    loaded = nn.GraphCell(ms.load(str(tmp_path / 'net.mindir')))
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
