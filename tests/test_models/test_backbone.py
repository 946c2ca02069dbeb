"""EfficientNet backbone: sizes against the TF manifests, forward shapes, out_indices, freezing, norm_eval, TF init."""
import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from effnet_mm.models import EfficientNet, MBConv
from effnet_mm.registry import MODELS
from effnet_mm.variants import VARIANTS
from tests.helpers import TF_FIXTURES

L2_TRAINABLE_PARAMS = 480_309_308  # mmpretrain metafile / timm; no TF manifest ships for L2


def build_classifier(arch, num_classes=1000, **backbone_kwargs):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='EfficientNet', arch=arch, **backbone_kwargs),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=VARIANTS[arch].head_channels)))


def trainable_count(cell):
    return sum(int(np.prod(p.shape)) for p in cell.trainable_params())


@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8'])
def test_parameter_counts_match_tf_manifest(arch):
    manifest = json.loads((TF_FIXTURES / 'manifests' / f'efficientnet-{arch}.json').read_text())
    kinds = dict(manifest['num_tensors_by_kind'])
    model = build_classifier(arch)
    assert trainable_count(model) == manifest['trainable_param_count']
    assert len(model.trainable_params()) == kinds['trainable_weights']
    # All parameters (BN moving statistics included) = the TF tensors without EMA shadows and global_step.
    assert sum(int(np.prod(p.shape)) for p in model.get_parameters()) == \
        manifest['param_count_excluding_ema_and_global_step']


def test_parameter_count_l2():
    assert trainable_count(build_classifier('l2')) == L2_TRAINABLE_PARAMS


# L2 (480 M parameters, ~15 s to build) is covered by test_parameter_count_l2 and the variant table.
@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8'])
def test_blocks_follow_the_stage_table(arch):
    backbone = EfficientNet(arch=arch)
    variant = VARIANTS[arch]
    blocks = [cell for _, cell in backbone.cells_and_names() if isinstance(cell, MBConv)]
    expected = []
    for stage in variant.stages():
        for i in range(stage.repeats):
            expected.append((stage.in_channels if i == 0 else stage.out_channels, stage.out_channels,
                             stage.kernel_size, stage.stride if i == 0 else 1, stage.expand_ratio))
    actual = [(b.in_channels, b.out_channels, b.kernel_size, b.stride, b.expand_ratio) for b in blocks]
    assert [(b.depthwise_conv.conv.kernel_size, b.depthwise_conv.conv.stride) for b in blocks] == \
        [(k, s) for _, _, k, s, _ in expected]
    assert [b.expand_conv is None for b in blocks] == [e == 1 for *_, e in expected]
    assert actual == expected
    # SE width comes from the block input channels, not the expanded ones.
    for block, (in_ch, *_rest) in zip(blocks, expected):
        assert block.se.conv1.out_channels == max(1, int(in_ch * 0.25))
    # mmpretrain grouping: 7 layers; TF stride-1 stages 5 and 7 join the previous group.
    assert len(backbone.layers) == 7
    sizes = [len(layer) for layer in list(backbone.layers)[1:6]]
    r = [s.repeats for s in variant.stages()]
    assert sizes == [r[0], r[1], r[2], r[3] + r[4], r[5] + r[6]]


def test_drop_connect_follows_tf_survival_formula():
    backbone = EfficientNet(arch='b0', drop_path_rate=0.2)
    blocks = [cell for _, cell in backbone.cells_and_names() if isinstance(cell, MBConv)]
    for index, block in enumerate(blocks):
        if block.has_skip:
            assert block.drop_path.drop_prob == pytest.approx(0.2 * index / len(blocks))
        else:
            assert block.drop_path is None
    assert not blocks[0].has_skip and blocks[2].has_skip


def test_tf_initialisation_statistics():
    ms.set_seed(0)
    model = build_classifier('b0')
    stem = model.backbone.layers[0].conv.weight.asnumpy()        # (32, 3, 3, 3): fan_out = 3*3*32
    assert stem.std() == pytest.approx(np.sqrt(2.0 / (9 * 32)), rel=0.1)
    head_conv = model.backbone.layers[6].conv.weight.asnumpy()   # 1x1, 1280 out
    assert head_conv.std() == pytest.approx(np.sqrt(2.0 / 1280), rel=0.05)
    depthwise = model.backbone.layers[2][0].depthwise_conv.conv.weight.asnumpy()  # fan_out = k*k
    assert depthwise.std() == pytest.approx(np.sqrt(2.0 / 9), rel=0.1)
    fc = model.head.fc.weight.asnumpy()
    bound = 1 / np.sqrt(1000)
    assert np.abs(fc).max() <= bound and np.abs(fc).max() > 0.95 * bound
    assert np.all(model.head.fc.bias.asnumpy() == 0)
    bn = model.backbone.layers[0].bn
    assert bn.eps == 1e-3 and bn.momentum == pytest.approx(0.01)  # MindSpore stores 1 - momentum(0.99)


@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'])
def test_forward_at_native_resolution(arch):
    _check_native_forward(arch)


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['b6', 'b7', 'b8', 'l2'])
def test_forward_at_native_resolution_large(arch):
    _check_native_forward(arch)


def _check_native_forward(arch):
    model = build_classifier(arch)
    model.set_train(False)
    size = VARIANTS[arch].resolution
    x = ms.Tensor(np.random.default_rng(0).integers(0, 256, (1, 3, size, size)).astype(np.uint8))
    logits = model(x)
    assert logits.shape == (1, 1000)
    assert np.isfinite(logits.asnumpy()).all()


def test_out_indices_channels_and_strides():
    backbone = EfficientNet(arch='b2', out_indices=(0, 1, 2, 3, 4, 5, -1))
    assert backbone.out_channels == (32, 16, 24, 48, 120, 352, 1408)
    backbone.set_train(False)
    outs = backbone(ms.Tensor(np.zeros((1, 3, 64, 96), np.float32)))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 32, 48), (1, 16, 32, 48), (1, 24, 16, 24), (1, 48, 8, 12),
                                              (1, 120, 4, 6), (1, 352, 2, 3), (1, 1408, 2, 3)]


@pytest.mark.parametrize('kwargs, message', [
    (dict(out_indices=(7, )), 'out_indices entry 7'),
    (dict(frozen_stages=8), 'frozen_stages must be in'),
    (dict(drop_path_rate=1.0), 'drop_path_rate'),
    (dict(arch='b10'), "Unknown EfficientNet arch 'b10'"),
])
def test_invalid_arguments_are_reported(kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        EfficientNet(**kwargs)


def _train_steps(model, steps=2):
    """A few jitted SGD steps; returns the optimizer's parameter names."""
    opt = nn.SGD(model.trainable_params(), learning_rate=0.1)
    grad_fn = ms.value_and_grad(model.loss, None, opt.parameters)

    @ms.jit
    def step(x, y):
        loss, grads = grad_fn(x, y)
        opt(grads)
        return loss

    model.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.integers(0, 256, (4, 3, 32, 32)).astype(np.float32))
    y = ms.Tensor(np.array([0, 1, 2, 3], np.int32))
    for _ in range(steps):
        step(x, y)
    return {p.name for p in opt.parameters}


def _snapshot(cell):
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def test_frozen_stages_get_no_gradient_and_keep_bn_stats():
    ms.set_seed(0)
    model = build_classifier('b0', num_classes=4, frozen_stages=2, drop_path_rate=0.0)
    before = _snapshot(model)
    trained = _train_steps(model)
    after = _snapshot(model)
    frozen = [n for n in before if n.startswith(('backbone.layers.0.', 'backbone.layers.1.'))]
    assert frozen and not any(n in trained for n in frozen)
    for name in frozen:  # weights and BN statistics of frozen layers are untouched
        np.testing.assert_array_equal(before[name], after[name])
    moved = [n for n in before if n.startswith('backbone.layers.2.') and not np.array_equal(before[n], after[n])]
    assert any(n.endswith('moving_mean') for n in moved) and any(n.endswith('conv.weight') for n in moved)


def test_norm_eval_keeps_bn_statistics_but_trains_affine():
    ms.set_seed(0)
    model = build_classifier('b0', num_classes=4, norm_eval=True, drop_path_rate=0.0)
    before = _snapshot(model)
    _train_steps(model)
    after = _snapshot(model)
    stats = [n for n in before if 'moving_' in n]
    assert stats and all(np.array_equal(before[n], after[n]) for n in stats)
    gammas = [n for n in before if n.endswith('bn.gamma')]
    assert any(not np.array_equal(before[n], after[n]) for n in gammas)


def test_norm_cfg_and_padding_reach_every_layer():
    """``norm_cfg`` (mmpretrain momentum convention) and ``padding`` configure every BN and k x k conv."""
    from effnet_mm.models.layers import Conv2dSame

    backbone = EfficientNet('b0', norm_cfg=dict(type='BN', eps=1e-5, momentum=0.1), padding='symmetric')
    norms = [c for _, c in backbone.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    assert len(norms) == 49
    assert {n.eps for n in norms} == {1e-5}
    # MindSpore stores the weight of the new batch statistic (its constructor takes the kept fraction).
    assert {round(float(n.momentum), 6) for n in norms} == {0.1}
    convs = [c for _, c in backbone.cells_and_names() if isinstance(c, Conv2dSame)]
    assert {c.padding for c in convs if c.kernel_size > 1} == {'symmetric'}  # 1x1 convs never pad
    default = EfficientNet('b0')
    assert {(n.eps, round(float(n.momentum), 6)) for _, n in default.cells_and_names()
            if isinstance(n, nn.BatchNorm2d)} == {(1e-3, 0.01)}


@pytest.mark.parametrize('norm_cfg, message', [
    (dict(type='GN'), "norm_cfg.type must be one of .*got 'GN'"),
    (dict(type='BN', epsilon=1e-3), r"norm_cfg: unknown keys \['epsilon'\]"),
    (dict(type='BN', momentum=0.99 + 0.02), r'norm_cfg.momentum .* must be in \(0, 1\)'),
])
def test_bad_norm_cfg_is_reported(norm_cfg, message):
    with pytest.raises(ValueError, match=message):
        EfficientNet('b0', norm_cfg=norm_cfg)


def test_deprecated_bn_arguments_still_work():
    from effnet_mm.models.layers import ConvBNAct

    with pytest.warns(DeprecationWarning, match='bn_eps/bn_momentum are deprecated'):
        layer = ConvBNAct(3, 8, 3, bn_eps=1e-5, bn_momentum=0.9)
    assert layer.bn.eps == 1e-5 and round(float(layer.bn.momentum), 6) == 0.1
