"""The training configuration: grouped dataclasses, a YAML file, then `--key=value` overrides.

`load_train_config('config/train/lite_llvip.yaml', ['--optim.lr=1e-4'])` gives a checked
`TrainConfig`. Relative paths (model config, dataset roots, output folder) are taken from the
current working directory: run the trainer from the project root.
"""
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from efficientmfd_ros.core.config_io import ConfigError, apply_overrides, from_plain, to_plain
from efficientmfd_ros.model.config import ModelConfig, ModelConfigError
from efficientmfd_ros.train.data.augment import AugmentConfig, AugmentError
from efficientmfd_ros.train.data.spec import DatasetError, DatasetSpec
from efficientmfd_ros.train.ema import EMAConfig
from efficientmfd_ros.train.losses_detection import (
    DetectionLossConfig,
    check_detection_loss_config,
)
from efficientmfd_ros.train.losses_fusion import FusionLossWeights

TASKS = ('joint', 'fusion', 'detection')


def _require(ok, message):
    if not ok:
        raise ConfigError(message)


@dataclass
class DataConfig:
    """Datasets (`DatasetSpec` keys, see train/data/spec.py) and how they are batched."""

    train: tuple[dict, ...] = ()  # labelled sets, and unlabelled ones for the fusion loss only
    val: tuple[dict, ...] = ()  # labelled sets for periodic evaluation (empty: no evaluation)
    augment: dict = field(default_factory=dict)  # AugmentConfig keys; size = the model input
    batch_size: int = 4  # images per step and process
    num_workers: int = 2  # DataLoader worker processes (0: load in the main process)

    def validate(self):
        _require(self.batch_size > 0, f'data.batch_size must be positive, got {self.batch_size}')
        _require(self.num_workers >= 0, 'data.num_workers must be >= 0')
        _require(len(self.train) > 0, 'data.train must list at least one dataset')
        for where, specs in (('data.train', self.train), ('data.val', self.val)):
            for i, spec in enumerate(specs):
                try:
                    DatasetSpec.from_dict(spec, f'{where}[{i}]')
                except DatasetError as exc:
                    raise ConfigError(str(exc)) from exc
        try:
            AugmentConfig.from_dict(self.augment, 'data.augment')
        except AugmentError as exc:
            raise ConfigError(str(exc)) from exc


@dataclass
class OptimConfig:
    """AdamW with two parameter groups: the (pretrained) backbone and everything else."""

    lr: float = 2.5e-5  # paper's learning rate, for the fusion and detection heads and the FPN
    backbone_lr: float | None = None  # learning rate of the backbone; None: same as lr
    weight_decay: float = 1e-4  # paper's; applied to weights with >= 2 dims only
    betas: tuple[float, ...] = (0.9, 0.999)  # AdamW betas
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping

    def validate(self):
        _require(self.lr > 0, f'optim.lr must be positive, got {self.lr}')
        _require(self.backbone_lr is None or self.backbone_lr >= 0,
                 f'optim.backbone_lr must be >= 0, got {self.backbone_lr}')
        _require(self.weight_decay >= 0, 'optim.weight_decay must be >= 0')
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                 f'optim.betas must be two numbers in [0, 1), got {self.betas}')
        _require(self.grad_clip >= 0, 'optim.grad_clip must be >= 0')


@dataclass
class ScheduleConfig:
    """Iterations, linear warmup, then a step or cosine decay (factors of each group's lr)."""

    iterations: int = 1000  # optimizer steps in the whole run
    warmup_iters: int = 50  # linear warmup from warmup_factor to 1
    warmup_factor: float = 0.01  # lr factor at step 0
    policy: str = 'step'  # 'step' (times gamma at each milestone) or 'cosine'
    milestones: tuple[int, ...] = ()  # steps where the step policy multiplies the lr by gamma
    gamma: float = 0.1  # step policy factor
    min_lr_factor: float = 0.01  # cosine policy: final lr factor

    def validate(self):
        _require(self.iterations > 0,
                 f'schedule.iterations must be positive, got {self.iterations}')
        _require(self.warmup_iters >= 0, 'schedule.warmup_iters must be >= 0')
        _require(0 < self.warmup_factor <= 1, 'schedule.warmup_factor must be in (0, 1]')
        _require(self.policy in ('step', 'cosine'),
                 f"schedule.policy must be 'step' or 'cosine', got {self.policy!r}")
        _require(list(self.milestones) == sorted(self.milestones),
                 f'schedule.milestones must ascend, got {self.milestones}')
        _require(0 < self.gamma <= 1 and 0 <= self.min_lr_factor <= 1,
                 'schedule.gamma must be in (0, 1] and schedule.min_lr_factor in [0, 1]')


@dataclass
class LossConfig:
    """The two task losses and their weights in the joint objective."""

    fusion: FusionLossWeights = field(default_factory=FusionLossWeights)
    detection: DetectionLossConfig = field(default_factory=DetectionLossConfig)
    fusion_weight: float = 1.0  # lambda_u: L = lambda_u L_u + lambda_d L_d
    detection_weight: float = 1.0  # lambda_d

    def validate(self):
        _require(self.fusion_weight >= 0 and self.detection_weight >= 0,
                 'loss.fusion_weight and loss.detection_weight must be >= 0')
        problem = check_detection_loss_config(self.detection)
        _require(problem is None, problem)


@dataclass
class GMTAConfig:
    """Gradient Matrix Task-Alignment over the shared modules (joint task only)."""

    # Apply GMTA every `interval` steps (plain summed loss between); 0: never. With scale 'min'
    # the aligned update's norm is s_min, often orders of magnitude below the summed gradient's,
    # so with interval > 1 the plain steps dominate AdamW's moments; 1 keeps the scale consistent.
    interval: int = 1
    omega: float = 0.5  # weight of the aligned fusion gradient; 1 - omega for detection
    # Length of the aligned task gradients: 'min' = s_min (the paper), 'rms' = the RMS singular
    # value, which keeps the summed gradient's scale (see train/gmta.py).
    scale: str = 'min'
    shared_modules: tuple[str, ...] = ('backbone', 'fpn')  # theta*: what both tasks go through
    fusion_modules: tuple[str, ...] = ('fusion',)  # trained by the fusion loss only
    detection_modules: tuple[str, ...] = ('head',)  # trained by the detection loss only

    def validate(self):
        _require(self.interval >= 0, f'gmta.interval must be >= 0, got {self.interval}')
        _require(0 <= self.omega <= 1, f'gmta.omega must be in [0, 1], got {self.omega}')
        _require(self.scale in ('min', 'rms'), f"gmta.scale must be 'min' or 'rms', "
                 f'got {self.scale!r}')


@dataclass
class EvalConfig:
    """Periodic validation: COCO mAP and a few fusion metrics at the network input size."""

    interval: int = 200  # steps between evaluations (and at the end); 0: only at the end
    score_threshold: float = 0.01  # detections kept for the mAP (low, as COCO evaluation wants)
    nms_iou: float = 0.5  # class-aware NMS, as the runtime decodes
    max_detections: int = 100  # per image
    fusion_metrics: tuple[str, ...] = ('en', 'sd', 'sf', 'mi', 'qabf', 'ssim')  # metrics_fusion
    max_images: int = 0  # evaluate at most this many validation pairs; 0: all
    # Noise boxes drawn per image in validation; 0: the model config's head.num_proposals. The
    # deployed weights may draw more than training does (models/README.md).
    num_proposals: int = 0
    # Noise-box draws to score (mAP averaged over them; the best checkpoint is picked on that
    # mean). Empty: the model's own `head.noise_seed`, as the runtime runs. On a small split one
    # draw moves AP50 by several points, so a few draws make the pick less of a lottery.
    noise_seeds: tuple[int, ...] = ()
    # Also score this many labelled training pairs (resized, not augmented) at every evaluation,
    # for a training curve next to the validation one (`eval.train` in log.jsonl); 0: none.
    train_images: int = 0

    def validate(self):
        _require(self.interval >= 0, 'eval.interval must be >= 0')
        _require(self.num_proposals >= 0, 'eval.num_proposals must be >= 0')
        _require(self.train_images >= 0, 'eval.train_images must be >= 0')
        _require(all(isinstance(s, int) and s >= 0 for s in self.noise_seeds),
                 f'eval.noise_seeds must be non-negative integers, got {list(self.noise_seeds)}')
        known = ('en', 'sd', 'sf', 'mi', 'qabf', 'ssim', 'vif', 'paper_mi', 'paper_vif')
        unknown = sorted(set(self.fusion_metrics) - set(known))
        _require(not unknown, f'eval.fusion_metrics: unknown {unknown}; known: {list(known)}')


@dataclass
class RuntimeConfig:
    """Device, precision, logging."""

    device: str = 'auto'  # 'auto' (cuda if present), 'cpu', 'cuda', 'cuda:1', ...
    amp: bool = True  # autocast on CUDA (ignored on CPU)
    amp_dtype: str = 'bfloat16'  # 'bfloat16' or 'float16' (float16 adds a GradScaler)
    checkpoint_interval: int = 100  # steps between last.pt writes (and at the end)
    log_interval: int = 10  # steps between log.jsonl lines / TensorBoard scalars
    tensorboard: bool = True  # write TensorBoard scalars under <output_dir>/tb when available
    progress: bool = True  # tqdm progress bar

    def validate(self):
        _require(self.amp_dtype in ('bfloat16', 'float16'),
                 f"runtime.amp_dtype must be 'bfloat16' or 'float16', got {self.amp_dtype!r}")
        _require(self.checkpoint_interval > 0 and self.log_interval > 0,
                 'runtime.checkpoint_interval and runtime.log_interval must be positive')


@dataclass
class TrainConfig:
    """One training run; see config/train/*.yaml for commented examples."""

    model_config: str  # path of the ModelConfig YAML
    # Nested keys laid over that YAML, e.g. {head: {num_proposals: 100}}: a recipe's change to
    # the network without a second copy of its config.
    model_overrides: dict = field(default_factory=dict)
    output_dir: str = 'runs/train'  # checkpoints, logs and the final weights go here
    task: str = 'joint'  # 'joint', or 'fusion' / 'detection' alone (the ablation)
    seed: int = 0  # seeds the model init, sampling, augmentation and the head's box noise
    init_weights: str | None = None  # start from this checkpoint's model weights
    # Top-level modules of init_weights left at their fresh initialisation (e.g. [fusion] when the
    # fusion branch changed shape); every other tensor must load.
    init_exclude: tuple[str, ...] = ()
    # When set, only these top-level modules train and the rest stay frozen (e.g. [fusion]: a
    # fusion warm-up that leaves detection exactly as it was). Empty: everything trainable trains.
    trainable_modules: tuple[str, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    gmta: GMTAConfig = field(default_factory=GMTAConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self):
        _require(self.task in TASKS, f'task must be one of {TASKS}, got {self.task!r}')
        _require(not self.init_exclude or self.init_weights,
                 'init_exclude needs init_weights')
        _require(not (self.trainable_modules and self.task == 'joint' and self.gmta.interval > 0),
                 'trainable_modules freezes modules that GMTA aligns: use it with task fusion or '
                 'detection, or gmta.interval 0')
        for section in (self.data, self.optim, self.schedule, self.loss, self.gmta, self.eval,
                        self.ema, self.runtime):
            section.validate()

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'TrainConfig':
        return from_plain(cls, data)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merged(base[key], value)
        else:
            out[key] = value
    return out


def read_model_config(cfg: TrainConfig) -> ModelConfig:
    """The ModelConfig a run trains: `cfg.model_config` with `cfg.model_overrides` laid over it
    (ConfigError naming the problem)."""
    try:
        model = ModelConfig.from_yaml(cfg.model_config)
        if not cfg.model_overrides:
            return model
        return ModelConfig.from_dict(_merged(model.to_dict(), cfg.model_overrides))
    except ModelConfigError as exc:
        raise ConfigError(f'model config {cfg.model_config} with model_overrides: {exc}') from exc


def load_train_config(path, overrides=()) -> TrainConfig:
    """`TrainConfig` from a YAML file plus `--key=value` overrides (ConfigError when invalid)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'cannot read train config {path}: {exc}') from exc
    return TrainConfig.from_dict(apply_overrides(TrainConfig, data, overrides))
