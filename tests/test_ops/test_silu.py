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


def test_silu_is_accurate_over_the_float_range():
    """Against float64 over the whole range, tails included (an AVX-512 build computes its own exp, measured 2.1 ulp at
    most; libmvec's expf elsewhere, 3.3): within 4 float32 ulp wherever the result is not tiny; +inf and NaN
    propagate.  A length that is not a multiple of the vector width checks the masked tail."""
    z = np.concatenate([np.linspace(-120, 90, 200_003), [np.inf, 0.0, 1e-30, -1e-30]]).astype(np.float32)
    got = SiLU()(ms.Tensor(z)).asnumpy()
    with np.errstate(over='ignore'):
        want = z.astype(np.float64) / (1.0 + np.exp(-z.astype(np.float64)))
    finite = np.isfinite(z) & (np.abs(want) > 1e-30)
    ulp = np.spacing(np.abs(want[finite]).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[finite] - want[finite]) / ulp) <= 4.0
    np.testing.assert_array_equal(got[-4:], np.array([np.inf, 0.0, 5e-31, -5e-31], np.float32))
    assert np.isnan(SiLU()(ms.Tensor(np.full(17, np.nan, np.float32))).asnumpy()).all()
