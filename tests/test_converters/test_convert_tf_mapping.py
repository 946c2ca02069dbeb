"""TF → MindSpore name mapping of the EfficientNet converter, checked without TensorFlow.

A synthetic reader built from the fixture manifests (every tensor name and shape of the official checkpoints of
B0–B8) drives :func:`plan_conversion`, which must cover every model parameter and every checkpoint tensor.
"""
import functools
import json
import logging
import sys

import numpy as np
import pytest

from effnet_mm.converters import (
    ConversionError,
    DictReader,
    MissingDependencyError,
    build_reference_model,
    derive_mappings,
    detect_arch,
    import_tensorflow,
    plan_conversion,
    read_converted,
)
from effnet_mm.variants import get_variant
from tests.helpers import TF_FIXTURES

MANIFESTS = TF_FIXTURES / 'manifests'
EMA = '/ExponentialMovingAverage'


def manifest_shapes(path):
    with open(path) as f:
        manifest = json.load(f)
    return {v['name']: tuple(v['shape']) for v in manifest['variables']}, manifest


@functools.cache
def reference_model(arch):
    """Each variant is rebuilt once per session (B7/B8 take a second or two even without initialisation)."""
    return build_reference_model(arch)


@pytest.fixture(scope='module')
def b0_shapes():
    return manifest_shapes(MANIFESTS / 'efficientnet-b0.json')[0]


@pytest.fixture(scope='module')
def b0_model():
    return reference_model('b0')


@pytest.mark.parametrize('arch', [f'b{i}' for i in range(9)])
def test_manifest_is_covered_exactly(arch):
    shapes, manifest = manifest_shapes(MANIFESTS / f'efficientnet-{arch}.json')
    model = reference_model(arch)
    plan = plan_conversion(shapes, arch=arch, model=model)  # raises on any missing/unused tensor or shape mismatch

    model_params = {name: tuple(p.shape) for name, p in model.parameters_and_names()}
    assert {t.mapping.target for t in plan.tensors} == set(model_params)
    assert all(t.is_ema for t in plan.tensors) and plan.weights == 'ema' and not plan.raw_fallbacks
    assert plan.ignored == ['global_step']
    assert plan.num_params == manifest['param_count_excluding_ema_and_global_step']
    # every tensor of the checkpoint is either converted, the raw twin of a converted shadow, or ignored
    converted = {t.tensor for t in plan.tensors}
    raw_twins = {t.tensor[:-len(EMA)] for t in plan.tensors}
    assert converted | raw_twins | set(plan.ignored) == set(shapes)


def test_raw_mapping_covers_manifest(b0_shapes, b0_model):
    plan = plan_conversion(b0_shapes, use_ema=False, model=b0_model)
    assert plan.weights == 'raw' and not any(t.tensor.endswith(EMA) for t in plan.tensors)
    assert len(plan.tensors) == 311


def test_rmsprop_slot_layout_is_accepted(b0_model):
    shapes, manifest = manifest_shapes(TF_FIXTURES / 'efficientnet-b0' /
                                       'manifest_training_layout_with_rmsprop_slots.json')
    assert manifest['num_tensors_by_kind']['optimizer_slots'] > 0
    plan = plan_conversion(shapes, model=b0_model)
    slots = [n for n in plan.ignored if n != 'global_step']
    assert len(slots) == manifest['num_tensors_by_kind']['optimizer_slots']
    assert all(n.endswith(('/RMSProp', '/RMSProp_1')) for n in slots)
    assert len(plan.tensors) == 311


def test_block_index_and_expand_ambiguity(b0_shapes, b0_model):
    """Global TF block i ↔ backbone.layers.{g}.{j}; ``conv2d`` is the project conv only in non-expanding blocks."""
    source = {m.target: m.source for m in derive_mappings(b0_model, 'efficientnet-b0')}
    # B0 block order of mmpretrain's converter (reference (c)): 0→1.0, 1-2→2.0-1, 3-4→3.0-1, 5-10→4.0-5, 11-15→5.0-4
    expected = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1)] + [(4, j) for j in range(6)] + [(5, j) for j in range(5)]
    for i, (g, j) in enumerate(expected):
        assert source[f'backbone.layers.{g}.{j}.depthwise_conv.conv.weight'] == \
            f'efficientnet-b0/blocks_{i}/depthwise_conv2d/depthwise_kernel'
    blk0, blk1 = 'efficientnet-b0/blocks_0', 'efficientnet-b0/blocks_1'
    assert source['backbone.layers.1.0.linear_conv.conv.weight'] == f'{blk0}/conv2d/kernel'
    assert source['backbone.layers.1.0.depthwise_conv.bn.gamma'] == f'{blk0}/tpu_batch_normalization/gamma'
    assert source['backbone.layers.1.0.linear_conv.bn.gamma'] == f'{blk0}/tpu_batch_normalization_1/gamma'
    assert source['backbone.layers.2.0.expand_conv.conv.weight'] == f'{blk1}/conv2d/kernel'
    assert source['backbone.layers.2.0.linear_conv.conv.weight'] == f'{blk1}/conv2d_1/kernel'
    assert source['backbone.layers.2.0.linear_conv.bn.moving_variance'] == \
        f'{blk1}/tpu_batch_normalization_2/moving_variance'
    assert source['backbone.layers.2.0.se.conv2.bias'] == f'{blk1}/se/conv2d_1/bias'
    assert source['backbone.layers.6.conv.weight'] == 'efficientnet-b0/head/conv2d/kernel'
    assert source['head.fc.weight'] == 'efficientnet-b0/head/dense/kernel'


def test_non_expanding_blocks_follow_the_variant():
    """B7 has four depthwise-separable first-stage blocks (blocks_0..3), taken from the rebuilt model."""
    model = reference_model('b7')
    source = {m.target: m.source for m in derive_mappings(model, 'efficientnet-b7')}
    assert get_variant('b7').stages()[0].repeats == 4
    for j in range(4):
        assert f'backbone.layers.1.{j}.expand_conv.conv.weight' not in source
        assert source[f'backbone.layers.1.{j}.linear_conv.conv.weight'] == f'efficientnet-b7/blocks_{j}/conv2d/kernel'
    assert source['backbone.layers.2.0.expand_conv.conv.weight'] == 'efficientnet-b7/blocks_4/conv2d/kernel'


def test_layouts_are_transposed(b0_shapes, b0_model):
    rng = np.random.default_rng(0)
    tensors = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in b0_shapes.items() if name.endswith(EMA)}
    tensors['global_step'] = np.array(7, np.int64)
    reader = DictReader(tensors)
    plan = plan_conversion(reader.shapes(), model=b0_model)
    params = read_converted(plan, reader)
    s = 'efficientnet-b0'
    cases = {
        'backbone.layers.0.conv.weight': tensors[f'{s}/stem/conv2d/kernel{EMA}'].transpose(3, 2, 0, 1),
        'backbone.layers.2.0.depthwise_conv.conv.weight':
            tensors[f'{s}/blocks_1/depthwise_conv2d/depthwise_kernel{EMA}'].transpose(2, 3, 0, 1),
        'backbone.layers.2.0.se.conv1.weight': tensors[f'{s}/blocks_1/se/conv2d/kernel{EMA}'].transpose(3, 2, 0, 1),
        'backbone.layers.2.0.se.conv1.bias': tensors[f'{s}/blocks_1/se/conv2d/bias{EMA}'],
        'backbone.layers.6.bn.moving_mean': tensors[f'{s}/head/tpu_batch_normalization/moving_mean{EMA}'],
        'head.fc.weight': tensors[f'{s}/head/dense/kernel{EMA}'].T,
    }
    for target, expected in cases.items():
        assert params[target].flags['C_CONTIGUOUS'] and params[target].dtype == np.float32
        np.testing.assert_array_equal(params[target], expected, err_msg=target)
    assert params['backbone.layers.2.0.depthwise_conv.conv.weight'].shape == (96, 1, 3, 3)


def test_missing_tensor_is_named(b0_shapes, b0_model):
    name = 'efficientnet-b0/blocks_3/se/conv2d_1/kernel'
    shapes = {k: v for k, v in b0_shapes.items() if not k.startswith(name)}
    with pytest.raises(ConversionError, match='1 model parameters without a checkpoint tensor') as err:
        plan_conversion(shapes, model=b0_model)
    assert f'backbone.layers.3.0.se.conv2.weight <- {name}' in str(err.value)


def test_unused_tensor_and_shape_mismatch_are_named(b0_shapes, b0_model):
    shapes = dict(b0_shapes)
    shapes['efficientnet-b0/blocks_3/extra_layer/kernel'] = (3, 3)
    shapes[f'efficientnet-b0/head/dense/bias{EMA}'] = (1001, )
    with pytest.raises(ConversionError) as err:
        plan_conversion(shapes, model=b0_model)
    message = str(err.value)
    assert '1 checkpoint tensors left unused:\n  efficientnet-b0/blocks_3/extra_layer/kernel' in message
    assert f'efficientnet-b0/head/dense/bias{EMA}: checkpoint [1001], expected [1000]' in message


def test_raw_fallback_warns(b0_shapes, b0_model, caplog):
    name = 'efficientnet-b0/stem/tpu_batch_normalization/moving_mean'
    shapes = {k: v for k, v in b0_shapes.items() if k != name + EMA}
    with caplog.at_level(logging.WARNING, logger='effnet_mm.converters'):
        plan = plan_conversion(shapes, model=b0_model)
    assert plan.raw_fallbacks == [name] and plan.weights == 'mixed'
    assert 'no ExponentialMovingAverage shadow' in caplog.text and name in caplog.text


def test_no_ema_needs_raw_variables(b0_shapes, b0_model):
    name = 'efficientnet-b0/head/conv2d/kernel'
    shapes = {k: v for k, v in b0_shapes.items() if k != name}
    with pytest.raises(ConversionError, match='only its EMA shadow exists'):
        plan_conversion(shapes, use_ema=False, model=b0_model)


def test_other_num_classes_leaves_classifier_out(b0_shapes, b0_model, caplog):
    with caplog.at_level(logging.INFO, logger='effnet_mm.converters'):
        plan = plan_conversion(b0_shapes, num_classes=10, model=b0_model)
    assert not any(t.mapping.target.startswith('head.fc') for t in plan.tensors)
    assert plan.omitted == ['efficientnet-b0/head/dense/kernel', 'efficientnet-b0/head/dense/bias']
    assert 'leaving out the classifier' in caplog.text


def test_arch_detection_and_mismatch(b0_shapes):
    assert detect_arch(list(b0_shapes)) == 'b0'
    with pytest.raises(ConversionError, match=r'holds efficientnet-b0 .* but --arch b3 was requested'):
        plan_conversion(b0_shapes, arch='b3')
    with pytest.raises(ConversionError, match="--arch 'b9' is not a variant"):
        plan_conversion(b0_shapes, arch='b9')
    with pytest.raises(ConversionError, match="'efficientnet-edgetpu-s' is not a supported variant"):
        detect_arch(['efficientnet-edgetpu-s/stem/conv2d/kernel', 'global_step'])
    with pytest.raises(ConversionError, match='exactly one "efficientnet-<arch>/" variable scope'):
        detect_arch(['resnet50/conv1/kernel'])


def test_missing_tensorflow_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorflow', None)  # makes `import tensorflow` raise ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "effnet_mm\[tf\]"'):
        import_tensorflow()
