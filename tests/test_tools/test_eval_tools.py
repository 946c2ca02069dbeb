"""tools/test.py --out/--out-item/--tta and tools/analysis/confusion_matrix.py on a 9-image, 3-class set at 32 px.

The checkpoint is a randomly initialised B0 (the tools are under test, not the training); the predictions are
checked against the dataset (every sample once, real paths) and against each other (TTA = the mean of the
probabilities of a plain and a flipped run, metrics = what the records imply).
"""
import json

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from effnet_mm.apis.model_init import build_classifier
from effnet_mm.datasets import DEMO_CLASSES, make_demo_dataset
from effnet_mm.models.tta import apply_tta, default_tta_pipeline, split_tta_pipeline
from effnet_mm.utils import save_checkpoint
from tests.helpers import ROOT, inside, load_tool

CLASSES = list(DEMO_CLASSES[:3])
CONFIG = '''
_base_ = [{demo!r}]
classes = {classes!r}
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
                 {flip}dict(type='PackInputs')]
test_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    _delete_=True, type='CustomDataset', data_root={root!r}, data_prefix='val', classes=classes,
    pipeline=test_pipeline))
test_evaluator = [dict(type='Accuracy', topk=(1, 2)), dict(type='SingleLabelMetric', average=None),
                  dict(type='ConfusionMatrix')]
model = dict(head=dict(num_classes=3))
{extra}
'''
TTA_KEYS = '''
tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
                dict(type='TestTimeAug', transforms=[[dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                                                      dict(type='RandomFlip', prob=0.0, direction='horizontal')],
                                                     [dict(type='PackInputs')]])]
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp('eval_tools')
    root = str(base / 'data')
    make_demo_dataset(root, train_per_class=1, val_per_class=3, size=40)
    demo = str(ROOT / 'configs' / 'efficientnet' / 'efficientnet-b0_1xb32_demo.py')
    configs = {}
    for name, flip, extra in (('plain', '', ''), ('flipped', "dict(type='RandomFlip', prob=1.0), ", ''),
                              ('tta', '', TTA_KEYS)):
        configs[name] = str(base / f'{name}.py')
        (base / f'{name}.py').write_text(CONFIG.format(demo=demo, classes=CLASSES, root=root, flip=flip,
                                                       extra=extra))
    checkpoint = str(base / 'random_b0.ckpt')
    params = {p.name: p.asnumpy() for p in build_classifier(Config.fromfile(configs['plain'])).get_parameters()}
    # A random B0 predicts ~1/3 for every class; a sharper head makes the views' probabilities differ clearly.
    params['head.fc.weight'] *= 1e5
    save_checkpoint(params, checkpoint)
    return base, configs, checkpoint


def _test_tool(base, *args):
    with inside(base):
        return load_tool('test.py').main(list(args))


@pytest.fixture(scope='module')
def plain_results(setup):
    base, configs, checkpoint = setup
    assert _test_tool(base, configs['plain'], checkpoint, '--work-dir', 'wd', '--out', 'plain.json') == 0
    return json.loads((base / 'plain.json').read_text())


def test_out_records_every_sample_once_with_metrics(setup, plain_results):
    base, _, checkpoint = setup
    out = plain_results
    records = out['predictions']
    assert out['checkpoint'] == checkpoint and out['tta'] is False and out['num_samples'] == 9
    assert [r['sample_idx'] for r in records] == list(range(9))
    paths = sorted(str(p) for p in (base / 'data' / 'val').glob('*/*.png') if p.parent.name in CLASSES)
    assert sorted(r['img_path'] for r in records) == paths
    for r in records:
        assert r['gt_class'] == CLASSES[r['gt_label']] and r['img_path'].split('/')[-2] == r['gt_class']
        assert r['pred_class'] == [CLASSES[c] for c in r['pred_label']] and len(r['pred_label']) == 3
        assert sum(r['pred_score']) == pytest.approx(1.0, abs=1e-5)
        assert r['pred_score'] == sorted(r['pred_score'], reverse=True)
    # The metrics are those the records imply.
    metrics = out['metrics']
    top1 = [r['pred_label'][0] == r['gt_label'] for r in records]
    assert metrics['accuracy/top1'] == pytest.approx(100 * np.mean(top1))
    matrix = np.zeros((3, 3), int)
    for r in records:
        matrix[r['gt_label'], r['pred_label'][0]] += 1
    assert metrics['confusion_matrix/result'] == matrix.tolist()
    assert metrics['single-label/recall_classwise'] == pytest.approx(list(100 * matrix.diagonal() / 3))


def test_out_item_selects_what_is_written(setup, plain_results, capsys):
    base, configs, checkpoint = setup
    (base / 'm.json').write_text('{}')  # an earlier result: replaced, and the tool says so
    assert _test_tool(base, configs['plain'], checkpoint, '--work-dir', 'wd', '--out', 'm.json',
                      '--out-item', 'metrics') == 0
    metrics_only = json.loads((base / 'm.json').read_text())
    assert 'predictions' not in metrics_only and metrics_only['metrics'] == plain_results['metrics']
    stdout = capsys.readouterr().out
    assert 'confusion_matrix/result: <3x3 values>' in stdout and '(replacing the previous file)' in stdout
    # (--out-item pred is the flipped run of the TTA test)


def test_tta_averages_the_probabilities_of_the_flipped_crop(setup, plain_results, capsys):
    """mmpretrain flips the final crop; the in-graph flip must equal a run whose pipeline flips after the crop."""
    base, configs, checkpoint = setup
    assert _test_tool(base, configs['flipped'], checkpoint, '--work-dir', 'wd', '--out', 'flipped.json',
                      '--out-item', 'pred') == 0
    assert 'evaluated 9 of 9 samples' in capsys.readouterr().out
    assert _test_tool(base, configs['tta'], checkpoint, '--work-dir', 'wd', '--out', 'tta.json', '--tta') == 0
    tta = json.loads((base / 'tta.json').read_text())
    assert tta['tta'] is True

    def probs(records):
        table = np.zeros((len(records), 3))
        for i, r in enumerate(records):
            table[i, r['pred_label']] = r['pred_score']
        return table

    flipped_out = json.loads((base / 'flipped.json').read_text())
    assert 'metrics' not in flipped_out  # --out-item pred
    flipped = flipped_out['predictions']
    expected = (probs(plain_results['predictions']) + probs(flipped)) / 2
    np.testing.assert_allclose(probs(tta['predictions']), expected, atol=1e-5)
    assert np.abs(probs(flipped) - probs(plain_results['predictions'])).max() > 0.05  # the flip matters


def test_default_tta_pipeline_is_mmpretrains():
    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='EfficientNetCenterCrop', crop_size=32),
                     dict(type='PackInputs')]
    pipeline, views = split_tta_pipeline(default_tta_pipeline(test_pipeline))
    assert pipeline == test_pipeline and views == ('horizontal', 'none')
    cfg = Config(dict(model=dict(type='ImageClassifier', backbone=dict(type='EfficientNet')),
                      data_preprocessor=dict(type='ClsDataPreprocessor', to_rgb=True),
                      test_dataloader=dict(dataset=dict(type='CustomDataset', pipeline=test_pipeline))))
    apply_tta(cfg)
    assert cfg.model.type == 'AverageClsScoreTTA' and cfg.model.views == ('horizontal', 'none')
    # the top-level data_preprocessor goes to the classifier, not to the wrapper
    assert cfg.model.module.data_preprocessor.type == 'ClsDataPreprocessor'
    assert cfg.test_dataloader.dataset.pipeline == test_pipeline


@pytest.mark.parametrize('tta_pipeline, message', [
    ([dict(type='PackInputs')], 'must end with exactly one TestTimeAug'),
    ([dict(type='TestTimeAug', transforms=[[dict(type='Resize', scale=40)], [dict(type='PackInputs')]])],
     'only RandomFlip views'),
    ([dict(type='TestTimeAug', transforms=[[dict(type='RandomFlip', prob=0.5)], [dict(type='PackInputs')]])],
     'prob=1.0 or 0.0'),
    ([dict(type='TestTimeAug', transforms=[[dict(type='RandomFlip', prob=1.0)],
                                           [dict(type='EfficientNetCenterCrop', crop_size=32)]])],
     r'transforms\[1\] may only be \[PackInputs\]'),
])
def test_unsupported_tta_pipelines_are_refused(tta_pipeline, message):
    with pytest.raises(ValueError, match=message):
        split_tta_pipeline(tta_pipeline)


def test_bad_out_paths_fail_before_any_work(setup, capsys):
    base, configs, checkpoint = setup
    assert _test_tool(base, configs['plain'], checkpoint, '--out', 'results.pkl') == 1  # the tools' error status
    assert 'must end with .json' in capsys.readouterr().err
    (base / 'adir.json').mkdir()
    assert _test_tool(base, configs['plain'], checkpoint, '--out', 'adir.json') == 1
    assert "'adir.json' is a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _test_tool(base, configs['plain'], checkpoint, '--out-item', 'pred')
    assert '--out-item needs --out' in capsys.readouterr().err


def test_confusion_matrix_tool_writes_the_png(setup, plain_results):
    base, configs, checkpoint = setup
    tool = load_tool('analysis/confusion_matrix.py')
    with inside(base):
        assert tool.main([configs['plain'], checkpoint, '--work-dir', 'wd', '--show-path', 'cm.png',
                          '--include-values', '--out', 'cm.json']) == 0
    image = cv2.imread(str(base / 'cm.png'))
    assert image is not None and image.shape[0] > 3 * 40 and image.shape[1] > 3 * 40
    saved = json.loads((base / 'cm.json').read_text())
    assert saved['classes'] == CLASSES
    assert saved['matrix'] == plain_results['metrics']['confusion_matrix/result']
    with inside(base):
        assert tool.main([configs['plain'], checkpoint, '--show-path', 'cm.pdf']) == 1  # the tools' error status


def test_a_checkpoint_with_another_head_is_refused_by_test(setup, capsys):
    """Evaluation loads strictly: a head of another shape is an error naming its tensors, not a random head."""
    base, configs, checkpoint = setup
    assert _test_tool(base, configs['plain'], checkpoint, '--work-dir', 'wd_mismatch',
                      '--cfg-options', 'model.head.num_classes=5') == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'head.fc.weight' in err and 'head.fc.bias' in err
    assert f'classifies {len(CLASSES)} classes: set model.head.num_classes={len(CLASSES)}' in err
