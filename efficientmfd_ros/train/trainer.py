"""The training loop of EfficientMFD: one stage, fusion and detection trained jointly.

`Trainer(cfg, resume).run()` reads top to bottom: build (model, data, losses, AdamW, schedule,
GMTA), optionally restore `last.pt`, then per step: forward, the task losses, backward (plain
summed loss, or GMTA every `gmta.interval` steps), clip, step, schedule; and every so often log,
validate (keeping the best weights by val map50) and checkpoint. With `ema.decay` > 0 an
exponential moving average of the weights is kept after every step, and it is what validation
reads and what `model_best.pt` / `model_final.pt` hold. Outputs in `output_dir`:
`config.yaml`, `last.pt` (resumable state), `model_best.pt` / `model_final.pt` (checkpoints the
runtime loads), `log.jsonl`, `gmta.jsonl` (one line per GMTA application), `summary.json`, `tb/`.

Tasks: `joint` trains `lambda_u L_u + lambda_d L_d`; `fusion` and `detection` train one loss
(the ablation). `L_d` covers the labelled images of a batch only; `L_u` covers every image whose
modalities were both kept by the augmentation (a blanked input leaves no fusion target).

DDP (`torchrun --nproc_per_node N`, detected from the environment): the model is wrapped in
DistributedDataParallel; GMTA steps run their forward under `no_sync()` and GMTA all-reduces the
task gradients itself, so gradients are averaged exactly once on every step.
"""
from contextlib import nullcontext
import dataclasses
import json
import logging
from pathlib import Path
import resource
import time

import torch
from torch.nn.parallel import DistributedDataParallel
import yaml

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.model.color import rgb_to_luma
from efficientmfd_ros.model.factory import build_model, save_checkpoint
from efficientmfd_ros.train.config import TrainConfig, read_model_config
from efficientmfd_ros.train.data.loaders import build_loaders
from efficientmfd_ros.train.distributed import (
    TrainForward,
    all_finite,
    barrier,
    setup_distributed,
    shutdown,
)
from efficientmfd_ros.train.ema import ModelEMA
from efficientmfd_ros.train.gmta import GMTA
from efficientmfd_ros.train.losses_detection import DetectionLoss, num_boxes_per_rank
from efficientmfd_ros.train.losses_fusion import FusionLoss
from efficientmfd_ros.train.modules import (
    freeze_all_but,
    load_init_weights,
    module_params,
)
from efficientmfd_ros.train.optim import build_optimizer, build_scheduler
from efficientmfd_ros.train.run_log import RunLog, progress_bar
from efficientmfd_ros.train.train_state import (
    TrainStateError,
    load_state,
    restore_rng,
    rng_state,
    save_state,
)
from efficientmfd_ros.train.validation import evaluate

LOG = logging.getLogger('efficientmfd_ros.train')


def _subset(outputs, index):
    keep = {k: outputs[k][index] for k in ('pred_logits', 'pred_boxes')}
    keep['aux_outputs'] = [{k: a[k][index] for k in ('pred_logits', 'pred_boxes')}
                           for a in outputs['aux_outputs']]
    return keep


class Trainer:
    """One training run of `cfg` (a TrainConfig); `resume` continues from `output_dir/last.pt`."""

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.rank, self.world, self.device = setup_distributed(cfg.runtime.device)
        self.main = self.rank == 0
        if not resume and (self.out / 'last.pt').exists():
            raise ConfigError(f'{self.out}/last.pt exists: pass --resume to continue that run, or '
                              'choose another output_dir')
        torch.manual_seed(cfg.seed)
        self.model_cfg = read_model_config(cfg)
        self.model = build_model(self.model_cfg).to(self.device)
        if cfg.init_weights:
            load_init_weights(self.model, cfg.init_weights, cfg.init_exclude)
        self.frozen_modules = []
        if cfg.trainable_modules:
            self.frozen_modules = freeze_all_but(self.model, cfg.trainable_modules)
        self.wrapped = TrainForward(self.model)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == 'cuda' else None
            self.wrapped = DistributedDataParallel(self.wrapped, device_ids=ids,
                                                   find_unused_parameters=cfg.task != 'joint')
        self.data = build_loaders(cfg, self.model_cfg, self.rank, self.world, self.device)
        self.fusion_loss = FusionLoss(**vars(cfg.loss.fusion))
        self.detection_loss = DetectionLoss(self.model_cfg.head.num_classes, cfg.loss.detection)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule)
        amp = cfg.runtime.amp and self.device.type == 'cuda'
        self.amp_dtype = getattr(torch, cfg.runtime.amp_dtype) if amp else None
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        self.gmta = None
        if cfg.task == 'joint' and cfg.gmta.interval > 0:
            self.gmta = self._build_gmta()
        self.ema = ModelEMA(self.model, cfg.ema) if cfg.ema.decay > 0 else None
        self.noise = torch.Generator().manual_seed(cfg.seed * 7919 + self.rank)
        self.step, self.epoch, self.position, self.best = 0, 0, 0, -1.0
        self.timing = {'train_s': 0.0, 'steps': 0}
        if resume:
            self._restore()
        self.log = RunLog(self.out, self.main, cfg.runtime.tensorboard)

    def _build_gmta(self):
        g = self.cfg.gmta
        shared = module_params(self.model, g.shared_modules)
        fusion = module_params(self.model, g.fusion_modules)
        detection = module_params(self.model, g.detection_modules)
        covered = {id(p) for p in shared + fusion + detection}
        left = [n for n, p in self.model.named_parameters()
                if p.requires_grad and id(p) not in covered]
        if left:
            raise ConfigError(f'gmta: trainable parameters outside the module lists: {left[:5]}')
        return GMTA(shared, {'fusion': fusion, 'detection': detection}, omega=g.omega,
                    scale=g.scale)

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type='cuda', dtype=self.amp_dtype)

    def losses(self, out, batch, rgb, thermal):
        """`(loss_u, loss_d, parts)`: the weighted task losses (None if the task does not train
        them) and detached parts for logging."""
        cfg, parts = self.cfg, {}
        targets = batch['targets']
        loss_u = loss_d = None
        if cfg.task in ('joint', 'fusion'):
            both = [i for i, d in enumerate(batch['dropped']) if d is None]
            if both:
                loss_u, fusion_parts = self.fusion_loss(
                    out['fused'][both].float(), rgb_to_luma(rgb[both]), thermal[both],
                    [targets[i]['boxes'] for i in both])
                parts.update({f'fusion/{k}': v for k, v in fusion_parts.items()})
            else:
                loss_u = out['fused'].sum() * 0
            loss_u = cfg.loss.fusion_weight * loss_u
        if cfg.task in ('joint', 'detection'):
            labelled = batch['labelled'].nonzero().flatten().tolist()
            # Every rank joins this all-reduce, with or without labelled images.
            num_boxes = num_boxes_per_rank([targets[i] for i in labelled], rgb.device)
            if labelled:
                chosen = out if len(labelled) == len(targets) else _subset(out, labelled)
                loss_d, det_parts = self.detection_loss(
                    chosen, [targets[i] for i in labelled], tuple(rgb.shape[-2:]), num_boxes)
                parts.update({f'detection/{k}': v for k, v in det_parts.items()})
            else:
                loss_d = (out['pred_logits'].sum() + out['pred_boxes'].sum()) * 0
            loss_d = cfg.loss.detection_weight * loss_d
        return loss_u, loss_d, parts

    def train_step(self, batch) -> dict:
        """One optimizer step; returns scalars for the log."""
        for module in self.frozen_modules:
            module.eval()
        rgb = batch['rgb'].to(self.device, non_blocking=True)
        thermal = batch['thermal'].to(self.device, non_blocking=True)
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in batch['targets']]
        batch = {**batch, 'targets': targets}
        use_gmta = self.gmta is not None and self.step % self.cfg.gmta.interval == 0
        ddp = isinstance(self.wrapped, DistributedDataParallel)
        with self.wrapped.no_sync() if ddp and use_gmta else nullcontext():
            with self.autocast():
                out = self.wrapped(rgb, thermal, targets, self.noise)
            loss_u, loss_d, parts = self.losses(out, batch, rgb, thermal)
            total = sum(loss for loss in (loss_u, loss_d) if loss is not None)
            logs = {'loss': float(total.detach()), **{k: float(v) for k, v in parts.items()}}
            if loss_u is not None:
                logs['loss_u'] = float(loss_u.detach())
            if loss_d is not None:
                logs['loss_d'] = float(loss_d.detach())
            if not all_finite(logs['loss'], self.world, self.device):
                LOG.warning('step %d: non-finite loss %s, step skipped', self.step, logs['loss'])
                self.optimizer.zero_grad(set_to_none=True)
                return {**logs, 'skipped': 1.0}
            if use_gmta:
                scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
                stats = self.gmta.step(self.scaler.scale(loss_u), self.scaler.scale(loss_d),
                                       scale).as_dict()
                logs.update({f'gmta/{k}': v for k, v in stats.items() if k != 'fallback'})
                self.log.append('gmta.jsonl', {'step': self.step, **stats})
            else:
                self.scaler.scale(total).backward()
        del out, loss_u, loss_d, total
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g['params']]
            logs['grad_norm'] = float(torch.nn.utils.clip_grad_norm_(params,
                                                                     self.cfg.optim.grad_clip))
        logs.update({f'lr/{g["name"]}': g['lr'] for g in self.optimizer.param_groups})
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            logs['ema_decay'] = self.ema.decay()
            self.ema.update(self.model)
        return logs

    def run(self) -> dict:
        cfg = self.cfg
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / 'config.yaml').write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            print(self.data.summary, flush=True)
        total = cfg.schedule.iterations
        progress = progress_bar(total, self.step, self.main and cfg.runtime.progress)
        batches = self.data.epoch_iter(self.epoch, self.position)
        metrics = None
        while self.step < total:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                self.epoch, self.position = self.epoch + 1, 0
                batches = self.data.epoch_iter(self.epoch, 0)
                continue
            logs = self.train_step(batch)
            self.step, self.position = self.step + 1, self.position + 1
            self.timing['train_s'] += time.perf_counter() - start
            self.timing['steps'] += 1
            progress.update(1)
            progress.set_postfix(loss=f'{logs["loss"]:.3f}')
            done = self.step == total
            if self.step % cfg.runtime.log_interval == 0 or done:
                self.log.append('log.jsonl', {'step': self.step, **logs})
                self.log.scalars(logs, self.step)
            if self.data.val is not None and (done or cfg.eval.interval
                                              and self.step % cfg.eval.interval == 0):
                metrics = self.validate()
            if self.step % cfg.runtime.checkpoint_interval == 0 or done:
                self.save()
        progress.close()
        return self.finish(metrics)

    @property
    def kept_model(self) -> torch.nn.Module:
        """The weights that are validated and saved: the average when EMA is on."""
        return self.model if self.ema is None else self.ema.module

    def validate(self) -> dict | None:
        metrics = None
        if self.main:
            metrics = evaluate(self.kept_model, self.data.val, self.model_cfg.class_names,
                               self.cfg.eval, self.device, self.autocast)
            if self.data.train_eval is not None:
                on_train = evaluate(self.kept_model, self.data.train_eval,
                                    self.model_cfg.class_names, dataclasses.replace(
                                        self.cfg.eval, fusion_metrics=(),
                                        max_images=self.cfg.eval.train_images),
                                    self.device, self.autocast)
                metrics['train'] = {key: on_train[key]
                                    for key in ('map50', 'map50_95', 'num_images')}
            self.log.evaluation(metrics, self.step)
            score = metrics['map50'] if metrics['map50'] is not None else -1.0
            if score > self.best:
                self.best = score
                self._weights('model_best.pt', metrics)
        barrier(self.world)
        return metrics

    def save(self):
        if not self.main:
            return
        save_state(self.out / 'last.pt', model=self.model.state_dict(),
                   optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                   scaler=self.scaler.state_dict(), step=self.step, epoch=self.epoch,
                   position=self.position, best=self.best, rng=rng_state(self.noise),
                   timing=dict(self.timing), train_config=self.cfg.to_dict(),
                   ema=None if self.ema is None else self.ema.state_dict())

    def _restore(self):
        state = load_state(self.out / 'last.pt')
        try:
            self.model.load_state_dict(state['model'])
        except RuntimeError as exc:
            raise TrainStateError(f'{self.out}/last.pt does not fit this model: {exc}') from exc
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        self.step, self.epoch, self.position = state['step'], state['epoch'], state['position']
        self.best, self.timing = state['best'], dict(state['timing'])
        if self.ema is not None:
            if state.get('ema') is None:
                raise TrainStateError(f'{self.out}/last.pt has no EMA weights; it was written '
                                      'with ema.decay 0')
            self.ema.load_state_dict(state['ema'])
        restore_rng(state['rng'], self.noise)
        LOG.info('resumed %s at step %d', self.out, self.step)

    def _weights(self, name, metrics=None):
        save_checkpoint(self.out / name, self.kept_model, self.model_cfg, extra={
            'train_config': self.cfg.to_dict(), 'iteration': self.step,
            'metrics': json.loads(json.dumps(metrics, default=str)) if metrics else {}})

    def finish(self, metrics) -> dict:
        steps = max(self.timing['steps'], 1)
        peak = (torch.cuda.max_memory_allocated(self.device) if self.device.type == 'cuda'
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        summary = {'steps': self.step, 'task': self.cfg.task, 'best_map50': self.best,
                   'final_metrics': metrics, 'seconds_per_step': self.timing['train_s'] / steps,
                   'peak_memory_bytes': int(peak),
                   'peak_memory_kind': 'cuda_allocated' if self.device.type == 'cuda' else 'rss',
                   'world_size': self.world, 'device': str(self.device)}
        if self.main:
            self._weights('model_final.pt', metrics)
            (self.out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
        self.log.close()
        shutdown(self.world)
        return summary

