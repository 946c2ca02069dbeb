"""SyncBN training run for tests/test_models/test_sync_bn.py: one process, or one msrun worker.

Trains a small ConvBNAct net (``norm_cfg=dict(type='SyncBN')``) for a few SGD steps with the runner's train step and
writes ``<out_dir>/<tag>_step1.npz`` (BN moving statistics after the first step) and ``<out_dir>/<tag>_final.npz``
(every parameter at the end), ``tag`` being ``rank<r>`` under msrun and ``single`` otherwise.

Group ``k`` of ranks (all ranks, or ``--group-size`` consecutive ones) trains on batch ``k`` (8 images drawn with seed
``k``), each rank on its own contiguous slice (``--uneven``: the group's first rank gets one image less); a single
process trains on the whole batch ``--batch-seed``.
"""
import argparse
import os

import numpy as np


def make_batch(seed: int, size: int = 8):
    rng = np.random.RandomState(seed)
    images = rng.normal(0.5, 2.0, (size, 3, 16, 16)).astype(np.float32)
    labels = rng.randint(0, 4, size).astype(np.int32)
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('out_dir')
    parser.add_argument('--launcher', default='none', choices=['none', 'msrun'])
    parser.add_argument('--group-size', type=int, default=None)
    parser.add_argument('--batch-seed', type=int, default=0)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--uneven', action='store_true', help='the first rank of each group gets one image less')
    args = parser.parse_args()

    from effnet_mm.runtime import dist

    dist.init_dist(args.launcher)  # first: msrun also runs this script in its scheduler process
    import mindspore as ms
    from mindspore import nn

    from effnet_mm.engine.optim_wrapper import build_optim_wrapper
    from effnet_mm.engine.train_step import TrainStep
    from effnet_mm.models.layers import ConvBNAct

    rank, world = dist.get_rank(), dist.get_world_size()
    if world > 1:
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    ms.set_seed(0)  # identical initial weights on every rank
    norm_cfg = dict(type='SyncBN', eps=1e-5, momentum=0.3, group_size=args.group_size)

    class Net(nn.Cell):

        def __init__(self) -> None:
            super().__init__()
            self.stem = ConvBNAct(3, 8, 3, stride=2, norm_cfg=norm_cfg)
            self.dw = ConvBNAct(8, 8, 3, groups=8, norm_cfg=norm_cfg)
            self.project = ConvBNAct(8, 16, 1, act=False, norm_cfg=norm_cfg)
            self.fc = nn.Dense(16, 4)
            self.ce = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction='mean')

        def construct(self, x):
            return self.fc(self.project(self.dw(self.stem(x))).mean(axis=(2, 3)))

        def loss(self, x, labels, drop_masks=None, dropout_mask=None):
            return self.ce(self.construct(x), labels)

    net = Net()
    net.set_train(True)
    wrapper = build_optim_wrapper(dict(optimizer=dict(type='SGD', lr=0.2, momentum=0.9)), net)
    reducer = nn.DistributedGradReducer(wrapper.optimizer.parameters, mean=True, degree=world) if world > 1 else None
    step = TrainStep(net, wrapper, reducer)

    if args.launcher == 'msrun':
        group = args.group_size or world
        images, labels = make_batch(rank // group)
        bounds = [len(images) * j // group for j in range(group + 1)]
        if args.uneven:
            bounds[1] -= 1
        first, last = bounds[rank % group], bounds[rank % group + 1]
        images, labels = images[first:last], labels[first:last]
        tag = f'rank{rank}'
    else:
        images, labels = make_batch(args.batch_seed)
        tag = 'single'
    os.makedirs(args.out_dir, exist_ok=True)
    losses = []
    for index in range(args.steps):
        loss, _ = step(images, labels, 0.2, None, None)
        losses.append(loss)
        if index == 0:
            stats = {p.name: p.asnumpy() for p in net.get_parameters() if 'moving_' in p.name}
            np.savez(os.path.join(args.out_dir, f'{tag}_step1.npz'), **stats)
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    params['losses'] = np.array(losses)
    np.savez(os.path.join(args.out_dir, f'{tag}_final.npz'), **params)


if __name__ == '__main__':
    main()
