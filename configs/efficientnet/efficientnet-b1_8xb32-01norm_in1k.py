# EfficientNet-B1 at 240 px with AdvProp ("01norm") normalisation: the TF advprop/ checkpoints.
# INFERENCE-ONLY: evaluates converted TF checkpoints at the TF eval crop (240 px, crop_padding 32).
# Its schedule (imagenet_bs256: SGD, step LR) is NOT the EfficientNet recipe: training with it gives a few
# points less top-1 (mmpretrain#1455). Train with efficientnet-b1_8xb32-aa_in1k.py instead.
_base_ = ['./efficientnet-b1_8xb32_in1k.py']

# AdvProp checkpoints expect x * 2 / 255 - 1 (TF --advprop_preprocessing): mean = std = 127.5 (RGB).
data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
