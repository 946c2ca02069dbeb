"""The fast CPU conv kernels (effnet_mm.ops) against MindSpore's Conv2D: values, gradients, switching, fallback.

Gradients are checked over several calls of the same compiled function because MindSpore has had gradient bugs
that only appear from the second call on (e.g. ``ops.pad`` under jit).
"""
import os
import warnings

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from effnet_mm.models.layers import Conv2dSame
from effnet_mm.ops import (
    ChannelScale,
    KernelBuildError,
    SiLU,
    SpatialMean,
    conv_op,
    fast_conv_disabled,
    fast_conv_unavailable_reason,
    library_path,
    set_fast_conv,
)
from effnet_mm.ops import fast_conv as fast_conv_module

pytestmark = pytest.mark.skipif(fast_conv_unavailable_reason() is not None,
                                reason=f'fast conv unavailable: {fast_conv_unavailable_reason()}')

# (kind, N, C_in, C_out, H, W, k, stride): every k/stride of B0-B8 on even, odd and non-square planes, including
# the small 7/8 px maps of the last stages and sizes whose SAME padding is asymmetric; 4 and 2 take the generic
# (non-specialised) C++ loops.
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
    ('dense', 2, 3, 8, 29, 28, 3, 2),
    ('dense', 2, 3, 8, 14, 14, 3, 2),
    ('dense', 2, 3, 4, 13, 7, 3, 1),
    ('dense', 2, 5, 6, 9, 8, 5, 2),
    ('depthwise', 2, 3, 3, 33, 35, 3, 1),  # more than two vector chunks per row
    ('depthwise', 2, 4, 4, 9, 10, 4, 2),  # generic (non-specialised) kernel sizes
    ('dense', 1, 2, 3, 6, 7, 2, 1),
]
CALLS = 3


def _ids(case):
    kind, n, ci, co, h, w, k, s = case
    return f'{kind}-{h}x{w}-k{k}s{s}'


def _reference(x, w, stride, groups):
    return ops.Conv2D(out_channel=w.shape[0], kernel_size=w.shape[2], pad_mode='same', stride=stride,
                      group=groups)(x, w)


@pytest.mark.parametrize('case', CASES, ids=_ids)
def test_forward_and_gradients_match_conv2d(case):
    kind, n, ci, co, h, w, k, s = case
    groups = ci if kind == 'depthwise' else 1
    rng = np.random.default_rng(hash(case) % 2**32)
    x = ms.Tensor(rng.standard_normal((n, ci, h, w)).astype(np.float32))
    wt = ms.Tensor(rng.standard_normal((co, ci // groups, k, k)).astype(np.float32))
    op = conv_op(kind, s)
    y_ref = _reference(x, wt, s, groups)
    gy = ms.Tensor(rng.standard_normal(y_ref.shape).astype(np.float32))

    def fast_loss(a, b):
        return (op(a, b) * gy).sum()

    def ref_loss(a, b):
        return (_reference(a, b, s, groups) * gy).sum()

    np.testing.assert_allclose(op(x, wt).asnumpy(), y_ref.asnumpy(), rtol=1e-5, atol=1e-5)
    loss_ref, (dx_ref, dw_ref) = ms.value_and_grad(ref_loss, (0, 1))(x, wt)
    fast_grad = ms.value_and_grad(fast_loss, (0, 1))
    for fn in (fast_grad, ms.jit(fast_grad)):
        for _ in range(CALLS):
            loss, (dx, dw) = fn(x, wt)
            np.testing.assert_allclose(float(loss), float(loss_ref), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(dx.asnumpy(), dx_ref.asnumpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(dw.asnumpy(), dw_ref.asnumpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('shape', [(2, 8, 7, 7), (2, 3, 33, 40), (1, 5, 1, 1)])
def test_spatial_mean_matches_ops_mean(shape):
    rng = np.random.default_rng(4)
    x = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal(shape[:2] + (1, 1)).astype(np.float32))
    fast, ref = SpatialMean(), SpatialMean()
    assert fast.fast_conv and not ref.enable_fast_conv(False)

    def loss(a):
        return (fast(a) * gy).sum()

    def ref_loss(a):
        return (ref(a) * gy).sum()

    np.testing.assert_allclose(fast(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)
    expected = ms.grad(ref_loss)(x).asnumpy()
    for fn in (ms.value_and_grad(loss), ms.jit(ms.value_and_grad(loss))):
        for _ in range(CALLS):
            np.testing.assert_allclose(fn(x)[1].asnumpy(), expected, rtol=1e-6, atol=1e-7)


def _check_cell_pair(fast, ref, inputs, weights):
    """Values and input gradients of two cells agree, eagerly and over repeated calls of a jitted gradient."""
    assert fast.fast_conv and not ref.enable_fast_conv(False)

    def loss(*args):
        return (fast(*args) * weights).sum()

    def ref_loss(*args):
        return (ref(*args) * weights).sum()

    positions = tuple(range(len(inputs)))
    np.testing.assert_allclose(fast(*inputs).asnumpy(), ref(*inputs).asnumpy(), rtol=1e-5, atol=1e-6)
    expected = [g.asnumpy() for g in ms.grad(ref_loss, positions)(*inputs)]
    for fn in (ms.value_and_grad(loss, positions), ms.jit(ms.value_and_grad(loss, positions))):
        for _ in range(CALLS):
            for got, want in zip(fn(*inputs)[1], expected):
                np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_silu_matches_nn_silu():
    rng = np.random.default_rng(5)
    x = ms.Tensor((rng.standard_normal((2, 3, 17, 19)) * 4).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal((2, 3, 17, 19)).astype(np.float32))
    _check_cell_pair(SiLU(), SiLU(), (x, ), gy)


def test_channel_scale_matches_broadcast_mul():
    rng = np.random.default_rng(6)
    x = ms.Tensor(rng.standard_normal((2, 5, 13, 11)).astype(np.float32))
    g = ms.Tensor(rng.random((2, 5, 1, 1)).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal((2, 5, 13, 11)).astype(np.float32))
    _check_cell_pair(ChannelScale(), ChannelScale(), (x, g), gy)


def _randomise_bn(cell, rng):
    for param in cell.get_parameters():
        if param.name.rsplit('.', 1)[-1] in ('gamma', 'beta', 'moving_mean', 'moving_variance'):
            value = rng.random(param.shape).astype(np.float32) + 0.5
            param.set_data(ms.Tensor(value if 'var' in param.name or 'gamma' in param.name else value - 1.0))


@pytest.mark.parametrize('act', [True, False])
def test_eval_bn_act_fusion_matches_batchnorm(act):
    from effnet_mm.models.layers import ConvBNAct

    rng = np.random.default_rng(7)
    fast, ref = ConvBNAct(6, 6, 3, groups=6, act=act), ConvBNAct(6, 6, 3, groups=6, act=act)
    _randomise_bn(fast, rng)
    ms.load_param_into_net(ref, {p.name: p for p in fast.get_parameters()})
    set_fast_conv(ref, False)
    x = ms.Tensor(rng.standard_normal((2, 6, 9, 10)).astype(np.float32))
    for cell in (fast, ref):
        cell.set_train(False)
    expected = ref(x).asnumpy()
    np.testing.assert_allclose(fast(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ms.jit(fast)(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    # norm_eval-style training (BN on moving statistics) differentiates through the fused kernel's bprop.
    for cell in (fast, ref):
        cell.set_train(True)
        cell.bn.use_batch_statistics = False
    params = list(fast.trainable_params())
    ref_params = list(ref.trainable_params())

    def loss(a):
        return (fast(a) ** 2).sum()

    def ref_loss(a):
        return (ref(a) ** 2).sum()

    want = ms.grad(ref_loss, 0, ref_params)(x)
    for _ in range(CALLS):
        got = ms.jit(ms.grad(loss, 0, params))(x)
        np.testing.assert_allclose(got[0].asnumpy(), want[0].asnumpy(), rtol=1e-4, atol=1e-4)
        for g, w in zip(got[1], want[1]):
            np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-4, atol=1e-4)


def _weighted_sum(cell, weights):
    def loss(a):
        return (cell(a) * weights).sum()

    return loss


@pytest.mark.parametrize('act', [True, False])
def test_training_bn_act_matches_batchnorm(act):
    """Batch-statistics BN (+ SiLU): outputs, gradients and moving-statistics updates over repeated jit calls."""
    from effnet_mm.models.layers import ConvBNAct

    rng = np.random.default_rng(8)
    fast, ref = ConvBNAct(4, 8, 3, stride=2, act=act), ConvBNAct(4, 8, 3, stride=2, act=act)
    _randomise_bn(fast, rng)
    ms.load_param_into_net(ref, {p.name: ms.Parameter(p.data.copy(), name=p.name) for p in fast.get_parameters()})
    set_fast_conv(ref, False)
    x = ms.Tensor((rng.standard_normal((3, 4, 11, 9)) * 2 + 1).astype(np.float32))
    gy = ms.Tensor(rng.standard_normal((3, 8, 6, 5)).astype(np.float32))
    results = []
    for cell in (fast, ref):
        cell.set_train(True)
        step = ms.jit(ms.value_and_grad(_weighted_sum(cell, gy), 0, list(cell.trainable_params())))
        outs = [step(x) for _ in range(CALLS)]
        stats = [p.asnumpy().copy() for p in cell.get_parameters() if 'moving' in p.name]
        results.append((outs, stats))
    (fast_outs, fast_stats), (ref_outs, ref_stats) = results
    for (fl, (fdx, fdp)), (rl, (rdx, rdp)) in zip(fast_outs, ref_outs):
        np.testing.assert_allclose(float(fl), float(rl), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(fdx.asnumpy(), rdx.asnumpy(), rtol=1e-4, atol=1e-5)
        for g, w in zip(fdp, rdp):
            np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-4, atol=1e-4)
    for got, want in zip(fast_stats, ref_stats):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_amp_o2_training_step_runs():
    """AMP O2 wraps each BatchNorm2d in a cast cell: ConvBNAct must then keep MindSpore's BN and still train."""
    from mindspore import amp

    from effnet_mm.models.layers import ConvBNAct

    net = nn.SequentialCell([ConvBNAct(3, 8, 3, stride=2), ConvBNAct(8, 8, 5, groups=8)])
    net = amp.auto_mixed_precision(net, 'O2', dtype=ms.float16)
    net.set_train(True)
    x = ms.Tensor(np.random.default_rng(9).standard_normal((2, 3, 16, 16)).astype(np.float32))
    step = ms.jit(ms.value_and_grad(_weighted_sum(net, 1.0), None, net.trainable_params()))
    for _ in range(2):
        loss, grads = step(x)
        assert np.isfinite(float(loss)) and all(np.isfinite(g.asnumpy()).all() for g in grads)


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


def test_conv2dsame_picks_fast_path_and_can_switch_back():
    dw = Conv2dSame(16, 16, 5, stride=2, groups=16)
    stem = Conv2dSame(3, 8, 3, stride=2)
    pw = Conv2dSame(16, 8, 1, bias=True)
    assert dw.fast_conv and stem.fast_conv and not pw.fast_conv
    assert [p.name for p in dw.get_parameters()] == ['weight']
    x = ms.Tensor(np.random.default_rng(1).standard_normal((2, 16, 11, 12)).astype(np.float32))
    fast = dw(x).asnumpy()
    assert not dw.enable_fast_conv(False)
    slow = dw(x).asnumpy()
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    assert fast.shape == (2, 16, 6, 6)


def test_mixed_precision_computes_the_fast_conv_in_float32():
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


def test_set_fast_conv_and_context_manager():
    net = nn.SequentialCell([Conv2dSame(3, 8, 3, stride=2), Conv2dSame(8, 8, 3, groups=8), Conv2dSame(8, 4, 1)])
    assert set_fast_conv(net, True) == 2
    with fast_conv_disabled(net):
        assert not any(cell.fast_conv for cell in net.cells())
    assert [cell.fast_conv for cell in net.cells()] == [True, True, False]
    assert set_fast_conv(net, False) == 0


def test_mindir_export_with_fast_conv_disabled(tmp_path):
    net = nn.SequentialCell([Conv2dSame(3, 8, 3, stride=2), Conv2dSame(8, 8, 5, groups=8)])
    x = ms.Tensor(np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32))
    expected = net(x).asnumpy()
    with fast_conv_disabled(net):
        ms.export(net, x, file_name=str(tmp_path / 'net'), file_format='MINDIR')
    loaded = nn.GraphCell(ms.load(str(tmp_path / 'net.mindir')))
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_env_var_disables_fast_path_without_warning(monkeypatch):
    monkeypatch.setenv('EFFNET_MM_FAST_CONV', '0')
    assert 'disabled' in fast_conv_unavailable_reason()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        conv = Conv2dSame(4, 4, 3, groups=4)
    assert not conv.fast_conv
    x = ms.Tensor(np.ones((1, 4, 6, 6), np.float32))
    assert conv(x).shape == (1, 4, 6, 6)


def test_unavailable_kernels_fall_back_with_one_warning(monkeypatch):
    monkeypatch.setattr('effnet_mm.models.layers.conv.fast_conv_unavailable_reason', lambda: 'no compiler here')
    monkeypatch.setattr(fast_conv_module, '_warned', set())
    with pytest.warns(RuntimeWarning, match='no compiler here') as record:
        convs = [Conv2dSame(4, 4, 3, groups=4) for _ in range(3)]
    assert len(record) == 1
    assert not any(c.fast_conv for c in convs)


def test_build_cache_env_and_errors(monkeypatch, tmp_path):
    monkeypatch.setenv('EFFNET_MM_KERNEL_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('MS_CUSTOM_AOT_WHITE_LIST', raising=False)
    path = library_path()
    assert path.parent == tmp_path / 'cache' and path.is_file()
    assert library_path() == path  # cached: no rebuild
    assert not [p for p in path.parent.iterdir() if p.name.endswith('.tmp')]
    monkeypatch.setenv('MS_CUSTOM_AOT_WHITE_LIST', str(tmp_path / 'elsewhere'))
    with pytest.raises(KernelBuildError, match='outside'):
        library_path()
    monkeypatch.delenv('MS_CUSTOM_AOT_WHITE_LIST')
    with pytest.raises(KernelBuildError, match='not found'):
        library_path(compiler='no-such-compiler-effnet')


def _b0_loss_and_grads(fast: bool):
    from effnet_mm.registry import MODELS

    ms.set_seed(0)
    model = MODELS.build(
        dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch='b0', drop_path_rate=0.0),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=10, in_channels=1280, dropout=0.0)))
    # convs: stem + 16 depthwise; SE: 16 x (mean, SiLU, sigmoid gate); SiLU of stem, 15 expand, 16 depthwise, head;
    # eval BN fusion of all 49 ConvBNAct
    assert set_fast_conv(model, fast) == (17 + 48 + 33 + 49 if fast else 0)
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
    # Eval mode on the moving statistics those train-mode calls updated (fused BN + SiLU on the fast path).
    model.set_train(False)
    logits = ms.jit(model.classify)(x).asnumpy()
    return losses, {p.name: g.asnumpy() for p, g in zip(params, grads)}, logits


def test_b0_fast_and_fallback_agree():
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


def test_package_ships_the_kernel_source():
    import effnet_mm.ops

    assert os.path.isfile(os.path.join(os.path.dirname(effnet_mm.ops.__file__), 'fast_conv.cc'))
