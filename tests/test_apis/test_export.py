"""MindIR / ONNX export of the whole classifier (data preprocessor included) with a static input shape.

Parity is checked on a B0 whose BN statistics are calibrated on a batch (a freshly initialised net in eval mode has
near-zero activations, so any two backends would agree trivially), and on the converted TF fixture weights.
"""

import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops
from mmengine.config import Config

from effnet_mm.apis import export_model, init_model, input_shape_from_cfg
from effnet_mm.datasets.categories import IMAGENET_CATEGORIES
from tests.helpers import ROOT, load_tool
from tests.test_apis.test_inference import B0_CONFIG, B0_FIXTURE, converted_b0_checkpoint

SIZE = 96  # a small input keeps export and runs quick; the graph is the same
ORT_REASON = 'onnxruntime is not installed (optional, not an effnet_mm dependency: pip install onnxruntime)'


def _fast_conv_layers(model):
    return sum(bool(getattr(cell, 'fast_conv', False)) for _, cell in model.cells_and_names())


@pytest.fixture(scope='module')
def calibrated_b0():
    """B0 at SIZE px whose BN moving statistics are the statistics of one batch (momentum 1 for one pass)."""
    ms.set_seed(0)
    model = init_model(B0_CONFIG, cfg_options={'test_dataloader.dataset.pipeline.1.crop_size': SIZE})
    batch = Tensor(np.random.default_rng(0).integers(0, 256, (4, 3, SIZE, SIZE)).astype(np.float32))
    originals = []
    for _, cell in model.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            originals.append((cell, cell.bn_train))
            cell.bn_train = ops.BatchNorm(is_training=True, epsilon=cell.eps, momentum=1.0)
    model.set_train(True)
    model(batch)
    model.set_train(False)
    for cell, prim in originals:
        cell.bn_train = prim
    return model


@pytest.fixture(scope='module')
def images():
    return np.random.default_rng(1).integers(0, 256, (2, 3, SIZE, SIZE)).astype(np.uint8)


def test_input_shape_from_the_test_pipeline():
    b3 = Config.fromfile(str(ROOT / 'configs/efficientnet/efficientnet-b3_8xb32_in1k.py'))
    assert input_shape_from_cfg(b3) == (1, 3, 300, 300)
    l2 = Config.fromfile(str(ROOT / 'configs/efficientnet/efficientnet-l2_8xb32_in1k-475px.py'))
    assert input_shape_from_cfg(l2, batch_size=2) == (2, 3, 475, 475)
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        input_shape_from_cfg(b3, batch_size=0)
    no_size = Config(dict(test_pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
    with pytest.raises(ValueError, match='has no transform that fixes the input size'):
        input_shape_from_cfg(no_size)


def test_calibrated_model_is_not_degenerate(calibrated_b0, images):
    logits = calibrated_b0(Tensor(images)).asnumpy()
    assert logits.std() > 0.05 and np.abs(logits[0] - logits[1]).max() > 0.05


def test_mindir_loads_back_and_matches(calibrated_b0, images, tmp_path):
    fast_before = _fast_conv_layers(calibrated_b0)
    path = export_model(calibrated_b0, 'mindir', str(tmp_path / 'b0'), (2, 3, SIZE, SIZE), input_dtype='float32')
    assert path.endswith('b0.mindir')
    assert _fast_conv_layers(calibrated_b0) == fast_before  # the fast kernels are back after export
    graph = nn.GraphCell(ms.load(path))
    x = Tensor(images.astype(np.float32))
    np.testing.assert_allclose(graph(x).asnumpy(), calibrated_b0(x).asnumpy(), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match='file_format must be one of'):
        export_model(calibrated_b0, 'TFLITE', str(tmp_path / 'b0'), (1, 3, SIZE, SIZE))


def test_onnx_matches_mindspore(calibrated_b0, images, tmp_path):
    ort = pytest.importorskip('onnxruntime', reason=ORT_REASON)
    path = export_model(calibrated_b0, 'ONNX', str(tmp_path / 'b0.onnx'), (2, 3, SIZE, SIZE), input_dtype='uint8')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    (inp, ), (out, ) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ('input', [2, 3, SIZE, SIZE], 'tensor(uint8)')
    assert (out.name, out.shape) == ('logits', [2, 1000])
    expected = calibrated_b0(Tensor(images)).asnumpy()
    np.testing.assert_allclose(session.run(None, {'input': images})[0], expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_export_tool_onnx_on_converted_tf_weights(tmp_path_factory, tmp_path, capsys):
    """tools/export.py on the converted fixture at 224 px: onnxruntime reproduces the TF reference logits."""
    ort = pytest.importorskip('onnxruntime', reason=ORT_REASON)
    checkpoint = converted_b0_checkpoint(tmp_path_factory)
    tool = load_tool('export.py')
    out = tmp_path / 'exported' / 'b0_fixture'
    assert tool.main([B0_CONFIG, str(checkpoint), '--format', 'onnx', '--out', str(out)]) == 0
    assert 'input "input" float32 (1, 3, 224, 224)' in capsys.readouterr().out
    rgb = np.load(B0_FIXTURE / 'input_image_uint8_hwc_rgb.npy')
    bgr = np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1)[None]).astype(np.float32)
    session = ort.InferenceSession(str(out) + '.onnx', providers=['CPUExecutionProvider'])
    logits = session.run(None, {'input': bgr})[0]
    meta = json.loads(open(str(out) + '.onnx.json').read())  # the deployment metadata beside the graph
    assert meta['input'] == dict(name='input', shape=[1, 3, 224, 224], dtype='float32', layout='NCHW',
                                 channel_order='BGR', value_range=[0, 255])
    assert meta['classes'] == list(IMAGENET_CATEGORIES) and meta['graph'] == 'b0_fixture.onnx'
    tf_logits = np.load(B0_FIXTURE / 'logits_ema_meanstd.npy')
    # onnxruntime is closer to TF than MindSpore's CPU sigmoid is: these random-weight networks amplify rounding.
    np.testing.assert_allclose(logits, tf_logits, atol=1e-4, rtol=0)
    model = init_model(B0_CONFIG, str(checkpoint))
    mindspore_logits = model(Tensor(bgr)).asnumpy()
    assert np.abs(logits - mindspore_logits).max() < 1e-3 and logits.argmax() == mindspore_logits.argmax()
