"""High-level APIs: build a model from a config (+ checkpoint), classify images, export, count complexity.

Example::

    from effnet_mm.apis import init_model, inference_model
    model = init_model('configs/efficientnet/efficientnet-b0_8xb32_in1k.py', 'b0.ckpt')
    result = inference_model(model, 'demo.jpg')   # {'pred_label': 281, 'pred_class': 'tabby, tabby cat', ...}
"""
from .complexity import LayerCost, ModelCost, count_model_cost
from .export import EXPORT_FORMATS, export_model, input_shape_from_cfg
from .inference import inference_model, test_crop_size
from .model_init import build_classifier, class_names_from_cfg, error_message, init_model, load_model_weights

__all__ = [
    'EXPORT_FORMATS', 'LayerCost', 'ModelCost', 'build_classifier', 'class_names_from_cfg', 'count_model_cost',
    'error_message', 'export_model', 'inference_model', 'init_model', 'input_shape_from_cfg', 'load_model_weights',
    'test_crop_size'
]
