"""Every interop fixture (``shared/fixtures/interop``: a checkpoint written by timm, mmpretrain, MindCV or the
MindSpore model zoo, with the logits that library's own model computes) converts, builds from the config it carries
(``init_model(checkpoint=DST)``) and reproduces those logits within 1e-4; flipping the option a negative control
names (padding style, BN eps) moves the output to that control.
"""
import json

import numpy as np
import pytest
from mindspore import Tensor

from effnet_mm.apis import init_model
from effnet_mm.converters import convert_weights
from effnet_mm.datasets.transforms import Compose
from effnet_mm.ops import set_fast_conv
from effnet_mm.utils import load_checkpoint
from tests.helpers import INTEROP_FIXTURES, inside

pytest.importorskip('safetensors')

#: fixture folder → (checkpoint inside it, library, zoo config the summary must name, logits computed by MindSpore)
FIXTURES = {
    'timm/efficientnet_b0': ('', 'timm', 'efficientnet-b0_timm_in1k.py', False),
    'timm/tf_efficientnet_b0': ('', 'timm', 'efficientnet-b0_tf-timm_in1k.py', False),
    'mmpretrain/efficientnet-b0_8xb32_in1k': ('checkpoint.pth', 'mmpretrain', 'efficientnet-b0_8xb32_in1k.py', False),
    'mmpretrain/efficientnet-b0_8xb32-01norm_in1k': ('checkpoint_mmcls0x_plain_legacy.pth', 'mmpretrain',
                                                     'efficientnet-b0_8xb32-01norm_in1k.py', False),
    'mindcv/efficientnet_b0': ('efficientnet_b0.ckpt', 'mindcv', 'efficientnet-b0_mindcv_in1k.py', True),
    'msmodels/efficientnet_b2': ('efficientnet_b2.ckpt', 'msmodels', 'efficientnet-b2_msmodels_in1k.py', True),
}
ATOL = 1e-4  # the fixture README's tolerance (float32 noise floor of these logits: about 4e-6)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp('interop')
    results = {}
    with inside(out):
        for name, (file, _, _, _) in FIXTURES.items():
            src = INTEROP_FIXTURES / name / file if file else INTEROP_FIXTURES / name
            results[name] = convert_weights(str(src), str(out / f'{name.replace("/", "_")}.ckpt'))
    return results


def fixture(name, file):
    return np.load(INTEROP_FIXTURES / name / file)


def logits_of(checkpoint, name, mindspore_ops=False, cfg_options=None):
    model = init_model(checkpoint=checkpoint, cfg_options=cfg_options)
    if mindspore_ops:
        set_fast_conv(model, False)
    return model.classify(Tensor(fixture(name, 'input_preprocessed_nchw_float32.npy'))).asnumpy()


@pytest.mark.parametrize('name', FIXTURES)
def test_parity_with_the_source_library(converted, name):
    """convert → init_model(checkpoint=DST) (no config file) → classify(the source's preprocessed input)."""
    _, library, config, mindspore_logits = FIXTURES[name]
    result = converted[name]
    assert result.family == library and result.config == f'configs/efficientnet/{config}'
    assert f'evaluate: python tools/test.py configs/efficientnet/{config} ' in result.summary()
    expected = fixture(name, 'logits.npy')
    # MindCV and the model zoo computed their logits with MindSpore's CPU ops (whose Sigmoid is an approximation):
    # compare with the same ops; effnet_mm's exact swish/SE kernels land within 1.1e-4 of them (docs/conversion.md).
    diff = np.abs(logits_of(result.path, name, mindspore_ops=mindspore_logits) - expected).max()
    assert diff < ATOL, f'{name}: max |effnet_mm - {library}| = {diff:.2e}'


NEGATIVE_CONTROLS = [
    ('timm/efficientnet_b0', 'wrong_bn_eps', {'model.backbone.norm_cfg.eps': 1e-3}),
    ('timm/efficientnet_b0', 'wrong_padding', {'model.backbone.padding': 'same'}),
    ('timm/efficientnet_b0', 'wrong_padding_and_eps', {'model.backbone.padding': 'same',
                                                       'model.backbone.norm_cfg.eps': 1e-3}),
    ('timm/tf_efficientnet_b0', 'wrong_bn_eps', {'model.backbone.norm_cfg.eps': 1e-5}),
    ('timm/tf_efficientnet_b0', 'wrong_padding', {'model.backbone.padding': 'symmetric'}),
    ('mmpretrain/efficientnet-b0_8xb32_in1k', 'wrong_bn_eps', {'model.backbone.norm_cfg': dict(eps=1e-5)}),
    ('mmpretrain/efficientnet-b0_8xb32_in1k', 'wrong_padding', {'model.backbone.padding': 'symmetric'}),
    ('mmpretrain/efficientnet-b0_8xb32-01norm_in1k', 'wrong_padding_and_eps',
     {'model.backbone.padding': 'symmetric', 'model.backbone.norm_cfg': dict(eps=1e-5)}),
]


@pytest.mark.parametrize('name,control,flip', NEGATIVE_CONTROLS, ids=[f'{n}-{c}' for n, c, _ in NEGATIVE_CONTROLS])
def test_flipping_the_option_reproduces_the_negative_control(converted, name, control, flip):
    logits = logits_of(converted[name].path, name, cfg_options=flip)
    assert np.abs(logits - fixture(name, f'logits_NEGATIVE_CONTROL_{control}.npy')).max() < ATOL
    assert np.abs(logits - fixture(name, 'logits.npy')).max() > 0.1  # the option matters


#: MindCV / model-zoo sensitivity runs (fixture_summary.json): the option flipped → max |Δ| to the logits.
SENSITIVITY = [
    ('mindcv/efficientnet_b0', 'bn_eps_0.001_instead_of_1e-05', {'model.backbone.norm_cfg.eps': 1e-3}),
    ('mindcv/efficientnet_b0', 'symmetric_padding_k//2_for_strided_convs_instead_of_TF_SAME',
     {'model.backbone.padding': 'symmetric'}),
    ('msmodels/efficientnet_b2', 'bn_eps_1e-05_instead_of_0.001', {'model.backbone.norm_cfg.eps': 1e-5}),
    ('msmodels/efficientnet_b2', 'symmetric_padding_k//2_for_strided_convs_instead_of_TF_SAME',
     {'model.backbone.padding': 'symmetric'}),
]


@pytest.mark.parametrize('name,run,flip', SENSITIVITY, ids=[f'{n}-{r[:24]}' for n, r, _ in SENSITIVITY])
def test_flipping_the_option_moves_the_output_as_in_the_source(converted, name, run, flip):
    """No control logits are stored for these two: the source's own max |Δlogit| for the same flip is matched."""
    summary = json.loads((INTEROP_FIXTURES / name / 'fixture_summary.json').read_text())
    expected = summary['sensitivity'][run]['max_abs_diff']
    logits = logits_of(converted[name].path, name, mindspore_ops=True, cfg_options=flip)
    moved = np.abs(logits - fixture(name, 'logits.npy')).max()
    assert moved == pytest.approx(expected, abs=2e-4) and moved > 0.1


def test_metadata_and_what_was_left_aside(converted):
    zoo = converted['msmodels/efficientnet_b2']
    assert (zoo.arch, zoo.num_tensors, len(zoo.unused), zoo.ignored) == ('b2', 439, 58, [])
    # the expand convs of the 2 expand-ratio-1 blocks (6 tensors each) + 48 unused conv biases (2 of them in those)
    assert sum(n.startswith(('blocks.0.layers.0.expand_conv.', 'blocks.0.layers.1.expand_conv.'))
               for n in zoo.unused) == 12
    assert all(n.endswith('.bias') or '.layers.0.expand_conv.' in n or '.layers.1.expand_conv.' in n
               for n in zoo.unused)
    timm = converted['timm/efficientnet_b0']
    assert len(timm.ignored) == 49 and all(n.endswith('num_batches_tracked') for n in timm.ignored)
    params, meta = load_checkpoint(converted['mindcv/efficientnet_b0'].path)
    assert len(params) == 311
    assert (meta['source_library'], meta['arch'], meta['padding'], meta['bn_eps']) == ('mindcv', 'b0', 'same', '1e-05')
    assert 'efficientnet-b0_mindcv_in1k.py' in meta['config'] and "padding='same'" in meta['cfg']


#: fixture → max |input difference| and max |logit difference| of the OpenCV pipeline vs the source's own
#: preprocessing on the fixture image (measured, docs/conversion.md), with some headroom.
PIPELINE_GAP = {
    'timm/efficientnet_b0': (0.6, 2.5),  # PIL's bicubic (a = -0.5) vs OpenCV's (a = -0.75): 0.525 / 2.30
    'timm/tf_efficientnet_b0': (0.6, 0.6),  # 0.525 / 0.46
    'mindcv/efficientnet_b0': (0.02, 0.01),  # MindSpore's bicubic Resize: one uint8 level here and there: 0.0175
    'mmpretrain/efficientnet-b0_8xb32_in1k': (1e-6, ATOL),  # the same OpenCV calls: exact
    'mmpretrain/efficientnet-b0_8xb32-01norm_in1k': (1e-6, ATOL),
    'msmodels/efficientnet_b2': (1e-6, ATOL),  # MindSpore's bilinear Resize is OpenCV's: exact
}


@pytest.mark.parametrize('name', PIPELINE_GAP)
def test_config_pipeline_against_the_source_preprocessing(converted, name):
    """The looser end-to-end check: uint8 image → the stored config's test pipeline → logits."""
    max_input, max_logit = PIPELINE_GAP[name]
    model = init_model(checkpoint=converted[name].path)
    if FIXTURES[name][3]:
        set_fast_conv(model, False)
    pipeline = Compose([t for t in model.cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadImageFromFile'])
    bgr = np.ascontiguousarray(fixture(name, 'input_image_uint8_hwc_rgb.npy')[:, :, ::-1])
    inputs = pipeline({'img': bgr})['inputs'][None]
    ours = model.data_preprocessor(Tensor(inputs)).asnumpy()
    assert np.abs(ours - fixture(name, 'input_preprocessed_nchw_float32.npy')).max() < max_input
    logits = model(Tensor(inputs)).asnumpy()
    expected = fixture(name, 'logits.npy')
    assert np.abs(logits - expected).max() < max_logit
    assert logits.argmax() == expected.argmax()
