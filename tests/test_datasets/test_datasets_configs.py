"""The dataset config fragments load with mmengine and their pipelines and loaders build."""
import pytest
from mmengine.config import Config

from effnet_mm.datasets import build_dataloader, make_demo_dataset
from effnet_mm.datasets.transforms import Compose
from effnet_mm.variants import IMAGENET_MEAN, IMAGENET_STD
from tests.helpers import ROOT

FRAGMENTS = ROOT / 'configs' / '_base_' / 'datasets'


@pytest.mark.parametrize('name, dataset_type', [('imagenet_bs32_effnet.py', 'ImageNet'),
                                                ('demo_bs32.py', 'DemoDataset')])
def test_fragment_loads_and_pipelines_build(name, dataset_type):
    cfg = Config.fromfile(str(FRAGMENTS / name))
    assert cfg.train_dataloader.dataset.type == dataset_type
    assert cfg.train_dataloader.sampler == dict(type='DefaultSampler', shuffle=True)
    assert cfg.val_dataloader.sampler == dict(type='DefaultSampler', shuffle=False)
    assert cfg.test_dataloader == cfg.val_dataloader and cfg.test_evaluator == cfg.val_evaluator
    assert cfg.val_evaluator == dict(type='Accuracy', topk=(1, 5))
    assert cfg.data_preprocessor.to_rgb is True
    assert tuple(cfg.data_preprocessor.mean) == IMAGENET_MEAN and tuple(cfg.data_preprocessor.std) == IMAGENET_STD
    for loader in ('train_dataloader', 'val_dataloader'):
        Compose(cfg[loader].dataset.pipeline)


def test_demo_fragment_builds_loaders(tmp_path):
    cfg = Config.fromfile(str(FRAGMENTS / 'demo_bs32.py'))
    root = str(tmp_path / 'effnet_demo')
    make_demo_dataset(root, train_per_class=10, val_per_class=5)  # small: DemoDataset uses what is there
    train_cfg = cfg.train_dataloader.to_dict()
    train_cfg['dataset']['data_root'] = root
    val_cfg = cfg.val_dataloader.to_dict()
    val_cfg['dataset']['data_root'] = root
    train, val = build_dataloader(train_cfg), build_dataloader(val_cfg)
    assert len(train) == 100 // 32 and len(val) == -(-50 // 32)
    assert train.drop_last and not val.drop_last
