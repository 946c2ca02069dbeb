"""tools/analysis: analytic parameter/MAC counts (checked against an independent per-block formula and the TF
manifests) and the training-log plotter."""
import json
import sys

import cv2
import pytest
from mmengine.config import Config

from effnet_mm.apis import count_model_cost
from effnet_mm.apis.model_init import build_classifier
from effnet_mm.variants import VARIANTS
from tests.helpers import ROOT, TF_FIXTURES, load_tool


def _model(arch):
    cfg = Config(dict(model=dict(type='ImageClassifier', backbone=dict(type='EfficientNet', arch=arch),
                                 neck=dict(type='GlobalAveragePooling'),
                                 head=dict(type='LinearClsHead', num_classes=1000,
                                           in_channels=VARIANTS[arch].head_channels))))
    return build_classifier(cfg, init_weights=False)


def reference_macs(arch, size):
    """MACs written out per MBConv block from the variant table, with TF SAME sizes ceil(size / stride)."""
    v = VARIANTS[arch]
    size = -(-size // 2)
    macs = size * size * 3 * v.stem_channels * 9
    for stage in v.stages():
        for i in range(stage.repeats):
            cin = stage.in_channels if i == 0 else stage.out_channels
            mid = cin * stage.expand_ratio
            if stage.expand_ratio != 1:
                macs += size * size * cin * mid
            if i == 0:
                size = -(-size // stage.stride)
            macs += size * size * mid * stage.kernel_size ** 2
            squeezed = max(1, int(cin * stage.se_ratio))
            macs += 2 * mid * squeezed  # SE reduce + expand on the pooled 1x1 map
            macs += size * size * mid * stage.out_channels
    macs += size * size * v.stages()[-1].out_channels * v.head_channels
    return macs + v.head_channels * 1000


@pytest.mark.parametrize('arch,size', [('b0', 224), ('b3', 300), ('b5', 456)])
def test_macs_match_the_per_block_formula(arch, size):
    cost = count_model_cost(_model(arch), (size, size))
    assert cost.macs == reference_macs(arch, size)
    assert cost.flops == 2 * cost.macs + sum(layer.bias_adds for layer in cost.layers)
    manifest = json.loads((TF_FIXTURES / 'manifests' / f'efficientnet-{arch}.json').read_text())
    assert cost.learnable_params == manifest['trainable_param_count']
    assert cost.total_params == manifest['param_count_excluding_ema_and_global_step']


def test_layer_geometry_of_b0():
    cost = count_model_cost(_model('b0'), (224, 224))
    first, last = cost.layers[0], cost.layers[-1]
    assert (first.name, first.out_hw, first.macs) == ('backbone.layers.0.conv', (112, 112), 112 * 112 * 32 * 27)
    assert (last.kind, last.params, last.macs) == ('dense', 1280 * 1000 + 1000, 1280 * 1000)
    se = [layer for layer in cost.layers if '.se.' in layer.name]
    assert se and all(layer.out_hw == (1, 1) for layer in se)
    assert cost.layers[-2].out_hw == (7, 7)  # head conv at stride 32
    # A non-square input keeps both axes.
    assert count_model_cost(_model('b0'), (224, 160)).layers[-2].out_hw == (7, 5)


def test_get_flops_tool(capsys):
    tool = load_tool('analysis/get_flops.py')
    b1 = str(ROOT / 'configs/efficientnet/efficientnet-b1_8xb32_in1k.py')
    assert tool.main([b1]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('efficientnet-b1'))
    assert row.split()[1:3] == ['240x240', f'{7794184 / 1e6:.3f}']
    assert tool.main([b1, '--shape', '256', '--markdown']) == 0
    out = capsys.readouterr().out
    assert '| efficientnet-b1_8xb32_in1k | 256x256 | 7.794 |' in out and 'MACs = multiply-accumulates' in out
    assert tool.main([str(ROOT / 'configs/efficientnet/no_such.py')]) == 1


@pytest.fixture
def scalars(tmp_path):
    lines = []
    for step in range(1, 21):
        lines.append({'loss': 2.5 - 0.1 * step, 'lr': 0.01 * step / 20, 'epoch': (step - 1) // 10 + 1, 'iter': step,
                      'step': step})
        if step % 10 == 0:
            lines.append({'accuracy/top1': 30.0 + step, 'accuracy/top5': 60.0 + step, 'epoch': step // 10,
                          'step': step // 10})
    path = tmp_path / 'vis_data' / 'scalars.json'
    path.parent.mkdir()
    path.write_text('\n'.join(json.dumps(line) for line in lines) + '\n\n')
    return path


def test_plot_log_series_and_png(scalars, tmp_path, capsys):
    tool = load_tool('analysis/plot_log.py')
    records = tool.load_scalars(str(scalars))
    assert len(records) == 22
    # Validation lines are epoch-indexed (step == epoch, as the runner writes them).
    assert tool.series(records, 'accuracy/top1', 'epoch') == ([1.0, 2.0], [40.0, 50.0])
    assert tool.series(records, 'accuracy/top1', 'step') == ([10.0, 20.0], [40.0, 50.0])
    xs, ys = tool.series(records, 'loss', 'epoch')
    assert (xs[4], xs[9], xs[14], xs[19]) == (0.5, 1.0, 1.5, 2.0) and len(ys) == 20
    assert tool.series(records, 'loss', 'step')[0] == [float(s) for s in range(1, 21)]
    out = tmp_path / 'plots' / 'curves.png'
    assert tool.main([str(scalars), str(scalars), '--legend', 'a', 'b', '--x', 'epoch', '--out', str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > image.shape[1]  # three stacked panels
    assert 'Saved' in capsys.readouterr().out


def test_plot_log_errors(scalars, tmp_path, capsys, monkeypatch):
    tool = load_tool('analysis/plot_log.py')
    assert tool.main([str(scalars), '--keys', 'no_such_key', '--out', str(tmp_path / 'x.png')]) == 1
    assert "no run has values of 'no_such_key'" in capsys.readouterr().err
    bad = tmp_path / 'bad.json'
    bad.write_text('{"loss": 1.0, "step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r'bad.json:2: not valid JSON'):
        tool.load_scalars(str(bad))
    with pytest.raises(SystemExit) as usage_error:  # a bad command line: argparse's exit status 2
        tool.main([str(scalars), '--legend', 'a', 'b'])
    assert usage_error.value.code == 2
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    with pytest.raises(ImportError, match='pip install matplotlib'):
        tool.plot({'run': tool.load_scalars(str(scalars))}, ['loss'], 'step', str(tmp_path / 'y.png'))
