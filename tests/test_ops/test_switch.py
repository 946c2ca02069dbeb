"""Switching kernels on and off (per layer, per model, by environment), the fallback warning, the deprecated
``fast_conv`` names, and a whole B0 on kernels against B0 on MindSpore ops."""
import warnings

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from effnet_mm.models.layers import Conv2dSame, ConvBNAct
from effnet_mm.ops import (
    SigmoidGate,
    fast_conv_disabled,
    fast_conv_unavailable_reason,
    kernel_cell,
    kernels_disabled,
    kernels_unavailable_reason,
    set_fast_conv,
    set_kernels,
)

pytestmark = pytest.mark.skipif(kernels_unavailable_reason() is not None,
                                reason=f'kernels unavailable: {kernels_unavailable_reason()}')


def _net():
    # stem conv + BN/SiLU (+ its eval kernel), depthwise conv + BN/SiLU, a 1x1 conv, and a strided 1x1 conv (never a
    # kernel)
    return nn.SequentialCell([ConvBNAct(3, 8, 3, stride=2), ConvBNAct(8, 8, 3, groups=8), Conv2dSame(8, 4, 1),
                              Conv2dSame(4, 4, 1, stride=2)])


def test_set_kernels_and_context_manager():
    net = _net()
    assert set_kernels(net, True) == 6
    with kernels_disabled(net):
        assert not any(getattr(cell, 'use_kernel', False) for _, cell in net.cells_and_names())
    assert set_kernels(net, True) == 6
    net[0].bn.enable_kernel(False)
    with kernels_disabled(net):
        pass
    assert not net[0].bn.use_kernel and net[0].conv.use_kernel  # each layer's previous path is restored
    assert set_kernels(net, False) == 0


def test_deprecated_names_still_work_and_warn():
    net = _net()
    with pytest.warns(DeprecationWarning, match='set_kernels'):
        assert set_fast_conv(net, True) == 6
    with pytest.warns(DeprecationWarning, match='kernels_disabled'):
        with fast_conv_disabled(net):
            assert not net[0].conv.fast_conv
    assert net[0].conv.fast_conv and net[0].bn.fast_conv  # the old attribute reads use_kernel
    with pytest.warns(DeprecationWarning, match='enable_kernel'):
        assert not net[1].conv.enable_fast_conv(False)
    with pytest.warns(DeprecationWarning, match='kernels_unavailable_reason'):
        assert fast_conv_unavailable_reason() is None


@pytest.mark.parametrize('name', ['EFFNET_MM_KERNELS', 'EFFNET_MM_FAST_CONV'])
def test_env_var_disables_kernels_without_warning(monkeypatch, name):
    monkeypatch.setenv(name, '0')
    assert name in kernels_unavailable_reason()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        conv = Conv2dSame(4, 4, 3, groups=4)
    assert not conv.use_kernel
    assert conv(ms.Tensor(np.ones((1, 4, 6, 6), np.float32))).shape == (1, 4, 6, 6)


def test_unavailable_kernels_fall_back_with_one_warning_naming_the_layer(monkeypatch):
    monkeypatch.setattr(kernel_cell, 'kernels_unavailable_reason', lambda: 'no compiler here')
    monkeypatch.setattr(kernel_cell, '_warned', set())
    with pytest.warns(RuntimeWarning, match=r'no compiler here\); SigmoidGate and the other kernel layers') as record:
        layers = [SigmoidGate(), ConvBNAct(4, 4, 3, groups=4), Conv2dSame(4, 4, 3, groups=4)]
    assert len(record) == 1
    assert not any(getattr(cell, 'use_kernel', False) for layer in layers for _, cell in layer.cells_and_names())


def _b0_loss_and_grads(kernels: bool):
    from effnet_mm.registry import MODELS

    ms.set_seed(0)
    model = MODELS.build(
        dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch='b0', drop_path_rate=0.0),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10, in_channels=1280, dropout=0.0)))
    # k x k convs: stem + 16 depthwise; 1x1 convs: 15 expand + 16 project + head + 2 x 16 SE;
    # SE: 16 x (mean, SiLU, sigmoid gate); BN (+ SiLU) of all 49 ConvBNAct; the neck's global mean; the 16 blocks'
    # fused inference stages and whole-block inference kernels (used by the eval forward below, the block kernel on
    # the maps from 28 x 28: here the first blocks' 32 x 32); the eval stem kernel; the eval 1x1 conv + BN (+ SiLU)
    # kernels of the 32 ConvBNAct 1x1 convs (used on small maps: here the last stages' 2 x 2); the stem + first block
    # kernel (used from 56 px input with one image per thread: here on the 32 x 32 stem output)
    assert set_kernels(model, kernels) == (17 + 64 + 48 + 49 + 1 + 16 + 16 + 1 + 32 + 1 if kernels else 0)
    model.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    y = ms.Tensor(np.array([1, 7], np.int32))
    params = model.trainable_params()
    grad_fn = ms.jit(ms.value_and_grad(model.loss, None, params))
    losses = []
    for _ in range(2):  # the second call of the compiled graph must agree as well
        loss, grads = grad_fn(x, y)
        losses.append(float(loss))
    # Eval mode on the moving statistics those train-mode calls updated (BN + SiLU kernel on fixed statistics).
    model.set_train(False)
    logits = ms.jit(model.classify)(x).asnumpy()
    return losses, {p.name: g.asnumpy() for p, g in zip(params, grads)}, logits


def test_b0_on_kernels_and_on_mindspore_ops_agree():
    fast_losses, fast_grads, fast_logits = _b0_loss_and_grads(True)
    ref_losses, ref_grads, ref_logits = _b0_loss_and_grads(False)
    np.testing.assert_allclose(fast_losses, ref_losses, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast_logits, ref_logits, rtol=1e-4, atol=1e-5 * float(np.abs(ref_logits).max()))
    assert fast_grads.keys() == ref_grads.keys()
    # Some gradients (e.g. the beta of a BN feeding another BN) are pure rounding noise: floor each tensor's scale.
    global_scale = max(float(np.abs(g).max()) for g in ref_grads.values())
    for name, grad in fast_grads.items():
        ref = ref_grads[name]
        scale = max(float(np.abs(ref).max()), 1e-2 * global_scale)
        assert float(np.abs(grad - ref).max()) <= 5e-4 * scale, name
    err = np.sqrt(sum(float(((fast_grads[k] - ref_grads[k])**2).sum()) for k in ref_grads))
    norm = np.sqrt(sum(float((g**2).sum()) for g in ref_grads.values()))
    assert err <= 1e-4 * norm
