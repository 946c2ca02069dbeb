"""The SE squeeze kernel (``SpatialMean``) against ``ops.mean`` over (H, W): values and gradients."""
import mindspore as ms
import numpy as np
import pytest

from effnet_mm.ops import SpatialMean, kernels_unavailable_reason

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')
CALLS = 3


@pytest.mark.parametrize('shape', [(2, 8, 7, 7), (2, 3, 33, 40), (1, 5, 1, 1)])
def test_spatial_mean_matches_ops_mean(shape):
    rng = np.random.default_rng(4)
    x = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal(shape[:2] + (1, 1)).astype(np.float32))
    fast, ref = SpatialMean(), SpatialMean()
    assert fast.use_kernel and not ref.enable_kernel(False)

    def loss(a):
        return (fast(a) * gy).sum()

    def ref_loss(a):
        return (ref(a) * gy).sum()

    np.testing.assert_allclose(fast(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)
    expected = ms.grad(ref_loss)(x).asnumpy()
    for fn in (ms.value_and_grad(loss), ms.jit(ms.value_and_grad(loss))):
        for _ in range(CALLS):
            np.testing.assert_allclose(fn(x)[1].asnumpy(), expected, rtol=1e-6, atol=1e-7)
