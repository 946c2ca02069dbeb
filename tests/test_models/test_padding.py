"""``Conv2dSame`` must equal TF "SAME": an explicit asymmetric pad (extra row/column at the bottom/right) + VALID."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from effnet_mm.models.layers import Conv2dSame, tf_same_padding


def reference_same_conv(x, weight, stride, groups):
    """TF SAME by hand: pad (top, bottom, left, right) with the ``ops.Pad`` primitive, then a VALID conv."""
    k = weight.shape[-1]
    top, bottom = tf_same_padding(x.shape[2], k, stride)
    left, right = tf_same_padding(x.shape[3], k, stride)
    padded = ops.Pad(((0, 0), (0, 0), (top, bottom), (left, right)))(x)
    conv = ops.Conv2D(out_channel=weight.shape[0], kernel_size=k, pad_mode='valid', stride=stride, group=groups)
    return conv(padded, weight)


def test_tf_same_padding_formula():
    assert tf_same_padding(224, 3, 2) == (0, 1)
    assert tf_same_padding(225, 3, 2) == (1, 1)
    assert tf_same_padding(224, 5, 2) == (1, 2)
    assert tf_same_padding(224, 3, 1) == (1, 1)
    assert tf_same_padding(7, 5, 1) == (2, 2)
    assert tf_same_padding(1, 1, 1) == (0, 0)


@pytest.mark.parametrize('kernel_size', [3, 5])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('size', [(8, 8), (9, 9), (10, 7), (13, 16)])
@pytest.mark.parametrize('depthwise', [True, False])
def test_same_padding_matches_explicit_asymmetric_pad(kernel_size, stride, size, depthwise):
    ms.set_seed(0)
    channels = 6
    conv = Conv2dSame(channels, channels, kernel_size, stride=stride, groups=channels if depthwise else 1)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, channels, *size)).astype(np.float32))
    expected = reference_same_conv(x, conv.weight, stride, conv.groups).asnumpy()
    eager = conv(x).asnumpy()
    jitted = ms.jit(conv)(x).asnumpy()
    out_h, out_w = -(-size[0] // stride), -(-size[1] // stride)
    assert eager.shape == (2, channels, out_h, out_w)
    np.testing.assert_allclose(eager, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jitted, expected, rtol=1e-5, atol=1e-5)


def test_symmetric_padding_would_differ():
    """Guards the test itself: a symmetric pad gives different numbers for stride 2 on even sizes."""
    ms.set_seed(0)
    conv = Conv2dSame(3, 4, 3, stride=2)
    x = ms.Tensor(np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32))
    symmetric = ops.Conv2D(out_channel=4, kernel_size=3, pad_mode='pad', pad=1, stride=2)(x, conv.weight)
    assert np.abs(symmetric.asnumpy() - conv(x).asnumpy()).max() > 1e-2


@pytest.mark.parametrize('kernel_size', [3, 5])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('size', [(8, 8), (9, 9), (10, 7)])
@pytest.mark.parametrize('depthwise', [True, False])
def test_symmetric_padding_matches_pytorch_rule(kernel_size, stride, size, depthwise):
    """``padding="symmetric"``: ``k // 2`` zeros on every side, then VALID (PyTorch, timm ``efficientnet_*``)."""
    ms.set_seed(0)
    channels = 6
    conv = Conv2dSame(channels, channels, kernel_size, stride=stride, groups=channels if depthwise else 1,
                      padding='symmetric')
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, channels, *size)).astype(np.float32))
    p = kernel_size // 2
    padded = ops.Pad(((0, 0), (0, 0), (p, p), (p, p)))(x)
    expected = ops.Conv2D(out_channel=channels, kernel_size=kernel_size, pad_mode='valid', stride=stride,
                          group=conv.groups)(padded, conv.weight).asnumpy()
    np.testing.assert_allclose(conv(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ms.jit(conv)(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_padding_style_is_validated_and_shown():
    with pytest.raises(ValueError, match="padding must be one of .*got 'valid'"):
        Conv2dSame(3, 3, 3, padding='valid')
    assert 'padding=symmetric' in repr(Conv2dSame(3, 3, 3, padding='symmetric'))
