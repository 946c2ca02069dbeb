"""Name mapping of every family for B0–B8, checked against state dicts written here from each source's own naming
rules (as its model code builds the names), independently of ``effnet_mm.converters.families``; plus the training
layouts of the fixtures (optimizer state beside the weights).
"""
import functools
import re

import numpy as np
import pytest

from effnet_mm.converters import (
    ConversionError,
    DictReader,
    build_reference_model,
    detect_family,
    plan_family_conversion,
    read_converted,
)
from effnet_mm.converters.families import FAMILIES
from effnet_mm.variants import get_variant
from tests.helpers import INTEROP_FIXTURES

ARCHS = [f'b{i}' for i in range(9)]
BN_TORCH = ('weight', 'bias', 'running_mean', 'running_var')
BN_MS = ('moving_mean', 'moving_variance', 'gamma', 'beta')


def blocks(arch):
    """(TF stage, position, in, out, kernel, stride, expand, SE width) of every block, from the TF block table."""
    for s, stage in enumerate(get_variant(arch).stages()):
        for b in range(stage.repeats):
            cin = stage.in_channels if b == 0 else stage.out_channels
            yield s, b, cin, stage.out_channels, stage.kernel_size, stage.expand_ratio, max(1, int(cin * 0.25))


def timm_state(arch):
    v, sd = get_variant(arch), {}

    def bn(prefix, c):
        sd.update({f'{prefix}.{p}': (c, ) for p in BN_TORCH})
        sd[f'{prefix}.num_batches_tracked'] = ()

    sd['conv_stem.weight'] = (v.stem_channels, 3, 3, 3)
    bn('bn1', v.stem_channels)
    for s, b, cin, cout, k, e, rd in blocks(arch):
        p, mid = f'blocks.{s}.{b}', cin * e
        se = {f'{p}.se.conv_reduce.weight': (rd, mid, 1, 1), f'{p}.se.conv_reduce.bias': (rd, ),
              f'{p}.se.conv_expand.weight': (mid, rd, 1, 1), f'{p}.se.conv_expand.bias': (mid, )}
        if e == 1:  # DepthwiseSeparableConv
            sd[f'{p}.conv_dw.weight'] = (mid, 1, k, k)
            bn(f'{p}.bn1', mid)
            sd.update(se)
            sd[f'{p}.conv_pw.weight'] = (cout, mid, 1, 1)
            bn(f'{p}.bn2', cout)
        else:  # InvertedResidual
            sd[f'{p}.conv_pw.weight'] = (mid, cin, 1, 1)
            bn(f'{p}.bn1', mid)
            sd[f'{p}.conv_dw.weight'] = (mid, 1, k, k)
            bn(f'{p}.bn2', mid)
            sd.update(se)
            sd[f'{p}.conv_pwl.weight'] = (cout, mid, 1, 1)
            bn(f'{p}.bn3', cout)
    last = get_variant(arch).stages()[-1].out_channels
    sd['conv_head.weight'] = (v.head_channels, last, 1, 1)
    bn('bn2', v.head_channels)
    sd.update({'classifier.weight': (1000, v.head_channels), 'classifier.bias': (1000, )})
    return sd


def mmpretrain_state(arch):
    v, sd = get_variant(arch), {}

    def conv_bn(prefix, shape):
        sd[f'{prefix}.conv.weight'] = shape
        sd.update({f'{prefix}.bn.{p}': (shape[0], ) for p in BN_TORCH})

    conv_bn('backbone.layers.0', (v.stem_channels, 3, 3, 3))
    g, j = 0, 0
    stages = v.stages()
    for s, b, cin, cout, k, e, rd in blocks(arch):
        if b == 0 and (s == 0 or stages[s].stride != 1):  # mmpretrain merges stride-1 stages into the previous one
            g, j = g + 1, 0
        p, mid = f'backbone.layers.{g}.{j}', cin * e
        if e != 1:
            conv_bn(f'{p}.expand_conv', (mid, cin, 1, 1))
        conv_bn(f'{p}.depthwise_conv', (mid, 1, k, k))
        sd.update({f'{p}.se.conv1.conv.weight': (rd, mid, 1, 1), f'{p}.se.conv1.conv.bias': (rd, ),
                   f'{p}.se.conv2.conv.weight': (mid, rd, 1, 1), f'{p}.se.conv2.conv.bias': (mid, )})
        conv_bn(f'{p}.linear_conv', (cout, mid, 1, 1))
        j += 1
    conv_bn('backbone.layers.6', (v.head_channels, stages[-1].out_channels, 1, 1))
    sd.update({'head.fc.weight': (1000, v.head_channels), 'head.fc.bias': (1000, )})
    return sd


def mindcv_state(arch):
    v, sd = get_variant(arch), {}

    def bn(prefix, c):
        sd.update({f'{prefix}.{p}': (c, ) for p in BN_MS})

    sd['features.0.weight'] = (v.stem_channels, 3, 3, 3)
    bn('features.1', v.stem_channels)
    for s, b, cin, cout, k, e, rd in blocks(arch):
        p, mid, layers = f'features.{3 + s}.{b}.block', cin * e, []
        if e != 1:  # [conv, BN, Swish] only when the expanded width differs
            layers += [('conv', (mid, cin, 1, 1)), ('bn', mid), ('act', None)]
        layers += [('conv', (mid, 1, k, k)), ('bn', mid), ('act', None), ('se', None), ('conv', (cout, mid, 1, 1)),
                   ('bn', cout)]
        for idx, (kind, arg) in enumerate(layers):
            if kind == 'conv':
                sd[f'{p}.{idx}.weight'] = arg
            elif kind == 'bn':
                bn(f'{p}.{idx}', arg)
            elif kind == 'se':
                sd.update({f'{p}.{idx}.conv_reduce.weight': (rd, mid, 1, 1), f'{p}.{idx}.conv_reduce.bias': (rd, ),
                           f'{p}.{idx}.conv_expand.weight': (mid, rd, 1, 1), f'{p}.{idx}.conv_expand.bias': (mid, )})
    last = v.stages()[-1].out_channels
    sd['features.10.weight'] = (4 * last, last, 1, 1)  # MindCV: head = 4 x the last stage width
    bn('features.11', 4 * last)
    sd.update({'mlp_head.weight': (1000, 4 * last), 'mlp_head.bias': (1000, )})
    return sd


def msmodels_state(arch, project_convolution=False):
    """The zoo's B2 code (``project_convolution``: B1/B3's ``Convolution`` projection with its own bias)."""
    v, sd = get_variant(arch), {}

    def convolution(prefix, shape):  # Convolution: inner nn.Conv2d + its own (1, C, 1, 1) bias
        sd[f'{prefix}.bias'] = (1, shape[0], 1, 1)
        sd[f'{prefix}.conv.weight'] = shape

    def bn(prefix, c):
        sd.update({f'{prefix}.{p}': (c, ) for p in BN_MS})

    convolution('stem.0', (v.stem_channels, 3, 3, 3))
    bn('stem.1', v.stem_channels)
    for s, b, cin, cout, k, e, rd in blocks(arch):
        p, mid = f'blocks.{s}.layers.{b}', cin * e
        convolution(f'{p}.expand_conv.0', (mid, cin, 1, 1))  # built even when expand == 1
        bn(f'{p}.expand_conv.1', mid)
        convolution(f'{p}.depth_wise_conv.0', (mid, 1, k, k))
        bn(f'{p}.depth_wise_conv.1', mid)
        convolution(f'{p}.se.se.1', (rd, mid, 1, 1))
        convolution(f'{p}.se.se.3', (mid, rd, 1, 1))
        if project_convolution:
            convolution(f'{p}.project_conv.0', (cout, mid, 1, 1))
        else:
            sd[f'{p}.project_conv.0.weight'] = (cout, mid, 1, 1)
        bn(f'{p}.project_conv.1', cout)
    convolution('head.0', (v.head_channels, v.stages()[-1].out_channels, 1, 1))
    bn('head.1', v.head_channels)
    sd.update({'head.6.weight': (1000, v.head_channels), 'head.6.bias': (1000, )})
    return sd


GENERATORS = {'timm': timm_state, 'mmpretrain': mmpretrain_state, 'mindcv': mindcv_state,
              'msmodels': msmodels_state, 'msmodels-b1b3': functools.partial(msmodels_state,
                                                                             project_convolution=True)}


@functools.cache
def reference_model(arch):
    return build_reference_model(arch)


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('family', GENERATORS)
def test_every_family_maps_every_variant(family, arch):
    shapes = GENERATORS[family](arch)
    found = detect_family(set(shapes), family)
    assert found.name == family.split('-')[0]
    plan = plan_family_conversion(shapes, found, model=reference_model(arch))  # raises on any leftover/mismatch
    model_params = {name for name, _ in reference_model(arch).parameters_and_names()}
    assert plan.arch == arch and {t.mapping.target for t in plan.tensors} == model_params
    accounted = {t.tensor for t in plan.tensors} | set(plan.ignored) | set(plan.unused)
    assert accounted == set(shapes)
    if family == 'timm':
        assert plan.ignored and all(n.endswith('.num_batches_tracked') for n in plan.ignored)
    elif family.startswith('msmodels'):
        repeats0 = get_variant(arch).stages()[0].repeats
        assert sum('.expand_conv.' in n and not n.endswith('.bias') for n in plan.unused) == 5 * repeats0
        assert all(shapes[n][0] == 1 for n in plan.unused if n.endswith('.bias'))
    else:
        assert not plan.ignored and not plan.unused


def test_values_follow_the_layouts():
    """A random B0 in the model zoo's layout: SE biases (1, C, 1, 1) become (C,), everything else is copied."""
    shapes = msmodels_state('b0')
    rng = np.random.default_rng(0)
    tensors = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    plan = plan_family_conversion(shapes, FAMILIES['msmodels'], model=reference_model('b0'))
    params = read_converted(plan, DictReader(tensors))
    p = 'blocks.1.layers.0'
    np.testing.assert_array_equal(params['backbone.layers.2.0.se.conv1.bias'], tensors[f'{p}.se.se.1.bias'].ravel())
    np.testing.assert_array_equal(params['backbone.layers.2.0.linear_conv.conv.weight'],
                                  tensors[f'{p}.project_conv.0.weight'])
    np.testing.assert_array_equal(params['backbone.layers.6.bn.moving_variance'], tensors['head.1.moving_variance'])
    assert all(v.dtype == np.float32 and v.flags['C_CONTIGUOUS'] for v in params.values())


def read_key_list(path):
    shapes = {}
    for line in path.read_text().splitlines():
        if line.startswith('#') or not line.strip():
            continue
        name, shape = line.split('\t')[:2]
        shapes[name] = tuple(int(d) for d in re.findall(r'\d+', shape))
    return shapes


@pytest.mark.parametrize('folder,arch', [('mindcv/efficientnet_b0', 'b0'), ('msmodels/efficientnet_b2', 'b2')])
def test_training_layout_ignores_exactly_the_extras(folder, arch):
    """keys_train_layout.txt: the weights plus optimizer slots, step/learning-rate and loss-scale entries."""
    train = read_key_list(INTEROP_FIXTURES / folder / 'keys_train_layout.txt')
    plain = read_key_list(INTEROP_FIXTURES / folder / 'keys.txt')
    family = detect_family(set(train), folder)
    model = reference_model(arch)
    plan = plan_family_conversion(train, family, model=model)
    plain_plan = plan_family_conversion(plain, family, model=model)
    assert set(plan.ignored) == set(train) - set(plain) and len(plan.ignored) > 400
    assert plan.tensors == plain_plan.tensors and plan.unused == plain_plan.unused


def test_mismatch_and_leftovers_are_listed():
    shapes = timm_state('b0')
    shapes['blocks.3.1.conv_dw.weight'] = (240, 1, 5, 5)
    shapes['blocks.3.1.extra.weight'] = (3, )
    del shapes['blocks.5.0.se.conv_expand.bias']
    with pytest.raises(ConversionError) as err:
        plan_family_conversion(shapes, FAMILIES['timm'], model=reference_model('b0'))
    message = str(err.value)
    assert 'backbone.layers.5.0.se.conv2.bias <- blocks.5.0.se.conv_expand.bias' in message
    assert 'blocks.3.1.conv_dw.weight: checkpoint [240, 1, 5, 5], expected [480, 1, 3, 3]' in message
    assert '1 checkpoint tensors left unused:\n  blocks.3.1.extra.weight' in message


def test_variant_detection_and_wrong_arch():
    shapes = mindcv_state('b1')
    assert plan_family_conversion(shapes, FAMILIES['mindcv'], model=reference_model('b1')).arch == 'b1'
    with pytest.raises(ConversionError, match=r'holds efficientnet-b1 .* but --arch b0 was requested'):
        plan_family_conversion(shapes, FAMILIES['mindcv'], arch='b0')
    with pytest.raises(ConversionError, match='unknown parameter layout'):
        detect_family({'resnet.conv1.weight', 'fc.weight'}, 'resnet.pth')
