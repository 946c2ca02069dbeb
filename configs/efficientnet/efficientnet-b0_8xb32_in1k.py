# EfficientNet-B0 at 224 px with ImageNet mean/std: the baseline, AutoAugment, NoisyStudent TF checkpoints.
# INFERENCE-ONLY: evaluates converted TF checkpoints at the TF eval crop (224 px, crop_padding 32).
# Its schedule (imagenet_bs256: SGD, step LR) is NOT the EfficientNet recipe: training with it gives a few
# points less top-1 (mmpretrain#1455). Train with efficientnet-b0_8xb32-aa_in1k.py instead.
_base_ = [
    '../_base_/models/efficientnet_b0.py',
    '../_base_/datasets/imagenet_bs32_effnet.py',
    '../_base_/schedules/imagenet_bs256.py',
    '../_base_/default_runtime.py',
]
