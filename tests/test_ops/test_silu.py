"""The SiLU kernel against ``nn.SiLU``: values and gradients, eagerly and over repeated calls of a jitted gradient."""
import mindspore as ms
import numpy as np
import pytest

from effnet_mm.ops import SiLU, kernels_unavailable_reason

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')
CALLS = 3


@pytest.mark.parametrize('shape', [(2, 3, 17, 19), (40000, )])  # a 4-D map, and a flat tensor over several blocks
def test_silu_matches_nn_silu(shape):
    rng = np.random.default_rng(5)
    x = ms.Tensor((rng.standard_normal(shape) * 4).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    fast, ref = SiLU(), SiLU()
    assert fast.use_kernel and not ref.enable_kernel(False)

    def loss(a):
        return (fast(a) * gy).sum()

    def ref_loss(a):
        return (ref(a) * gy).sum()

    np.testing.assert_allclose(fast(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)
    expected = ms.grad(ref_loss)(x).asnumpy()
    for fn in (ms.value_and_grad(loss), ms.jit(ms.value_and_grad(loss))):
        for _ in range(CALLS):
            np.testing.assert_allclose(fn(x)[1].asnumpy(), expected, rtol=1e-5, atol=1e-6)
