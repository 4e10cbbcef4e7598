"""The trainer's data: the mixed training sets behind a resumable sampler, and the validation sets.

Labelled dataset entries without `class_names` take the model's; the augmentation always
produces the model's input size. Training batches come from `epoch_iter(epoch, position)`,
which skips the first `position` batches of that epoch (for `--resume`).
"""
from dataclasses import dataclass

from torch.utils.data import DataLoader

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.model.config import ModelConfig
from efficientmfd_ros.train.config import TrainConfig
from efficientmfd_ros.train.data.augment import AugmentConfig, PairCollate, TrainAugment, resize_to
from efficientmfd_ros.train.data.copy_paste import donors_of
from efficientmfd_ros.train.data.paired import MixedDataset, build_datasets
from efficientmfd_ros.train.data.sampling import EpochSampler


def _with_classes(specs, class_names):
    out = []
    for spec in specs:
        spec = dict(spec)
        if spec.get('labelled', True) and not spec.get('class_names'):
            spec['class_names'] = list(class_names)
        out.append(spec)
    return out


@dataclass
class TrainData:
    """`train` MixedDataset, its `sampler` and `loader`; `val` a DataLoader or None;
    `train_eval` the labelled training sets resized like `val` (None unless
    `eval.train_images` > 0)."""

    train: MixedDataset
    sampler: EpochSampler
    loader: DataLoader
    val: DataLoader | None
    summary: str
    train_eval: DataLoader | None = None

    def epoch_iter(self, epoch: int, position: int = 0):
        """An iterator over the batches of `epoch`, starting after `position` batches."""
        self.sampler.set_epoch(epoch, min(position * self.loader.batch_size,
                                          self.sampler.per_rank))
        self.train.set_epoch(epoch)
        return iter(self.loader)


def _donor_bank(train):
    """Dataset name -> the ``Donor``s of its labelled training frames (read once, as stored)."""
    bank = {}
    for ds in train.datasets:
        if ds.spec.labelled:
            samples = (ds.load(i) for i in range(len(ds)))
            bank[ds.name] = [d for s in samples if s is not None for d in donors_of(s)]
    return bank


def build_loaders(cfg: TrainConfig, model_cfg: ModelConfig, rank=0, world_size=1,
                  device=None) -> TrainData:
    data = cfg.data
    size = tuple(model_cfg.input_size)
    augment = dict(data.augment)
    if 'size' in augment and tuple(augment['size']) != size:
        raise ConfigError(f'data.augment.size {augment["size"]} differs from the model input '
                          f'size {list(size)}: leave it out')
    aug_cfg = AugmentConfig.from_dict({**augment, 'size': size})
    collate = PairCollate(aug_cfg.thermal_range)
    pin = device is not None and getattr(device, 'type', str(device)) == 'cuda'
    transform = TrainAugment(aug_cfg)
    train = build_datasets(_with_classes(data.train, model_cfg.class_names), transform,
                           seed=cfg.seed)
    if aug_cfg.copy_paste_p and aug_cfg.copy_paste_donor_p:
        transform.donors = _donor_bank(train)
    sampler = EpochSampler(train.sample_weights(), cfg.seed, rank, world_size)
    if sampler.per_rank < data.batch_size:
        raise ConfigError(f'{len(train)} training pairs over {world_size} process(es) cannot fill '
                          f'one batch of {data.batch_size}')
    loader = DataLoader(train, batch_size=data.batch_size, sampler=sampler,
                        num_workers=data.num_workers, collate_fn=collate, drop_last=True,
                        pin_memory=pin)
    summary = 'training data:\n' + train.summary()
    if transform.donors:
        summary += '\ncopy-paste donors: ' + ', '.join(
            f'{name} {len(d)} objects' for name, d in transform.donors.items())

    def eval_loader(specs):
        sets = build_datasets(_with_classes(specs, model_cfg.class_names), resize_to(size),
                              seed=cfg.seed)
        return DataLoader(sets, batch_size=data.batch_size, shuffle=False,
                          num_workers=data.num_workers, collate_fn=collate, pin_memory=pin)

    val = None
    if data.val:
        val = eval_loader(data.val)
        summary += '\nvalidation data:\n' + val.dataset.summary()
    # The labelled training sets in order, resized like `val`, for `eval.train_images`.
    labelled = [spec for spec in data.train
                if spec.get('labelled', True) and spec.get('label_format', 'voc') != 'none']
    train_eval = eval_loader(labelled) if cfg.eval.train_images and labelled else None
    return TrainData(train, sampler, loader, val, summary, train_eval)
