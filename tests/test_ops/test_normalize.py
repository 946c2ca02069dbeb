"""The data preprocessor's normalisation kernel against numpy and against its MindSpore-ops path."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from effnet_mm.ops import Normalize, kernels_unavailable_reason

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')

IMAGENET = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])


@pytest.mark.parametrize('mean,std,flip', [IMAGENET + (True, ), (None, [2.0, 3.0, 4.0], False),
                                           ([1.0, 2.0, 3.0], None, True), (None, None, False)], ids=str)
@pytest.mark.parametrize('dtype', [np.uint8, np.float32])
def test_normalize_matches_numpy_and_the_mindspore_ops(mean, std, flip, dtype):
    x = np.random.default_rng(0).integers(0, 256, (3, 3, 5, 7)).astype(dtype)
    expected = x.astype(np.float32)[:, ::-1] if flip else x.astype(np.float32)
    if mean is not None:
        expected = expected - np.float32(mean).reshape(1, 3, 1, 1)
    if std is not None:
        expected = expected / np.float32(std).reshape(1, 3, 1, 1)
    layer = Normalize(mean, std, flip)
    assert layer.use_kernel
    for _ in range(2):  # kernel, then MindSpore ops
        got = ms.jit(layer)(ms.Tensor(x))
        assert got.dtype == ms.float32
        np.testing.assert_array_equal(got.asnumpy(), expected)
        layer.enable_kernel(False)


def test_normalize_in_a_differentiated_graph():
    """The preprocessor sits in front of every trained model: its kernel must not break the weights' gradients."""
    conv = nn.Conv2d(3, 2, 1, has_bias=False)
    layer = Normalize(*IMAGENET, flip_channels=True)
    x = ms.Tensor(np.random.default_rng(1).integers(0, 256, (2, 3, 4, 4)).astype(np.uint8))

    def loss(inputs):
        return conv(layer(inputs)).sum()

    grads = []
    for kernel in (True, False):
        layer.enable_kernel(kernel)
        grads.append(ms.jit(ms.grad(loss, None, conv.trainable_params()))(x)[0].asnumpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-4)
