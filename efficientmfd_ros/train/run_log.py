"""What a training run writes as it goes: JSON lines, TensorBoard scalars, a progress bar.

Only the main process (rank 0) writes; on other ranks every method does nothing.
"""
import json
import logging
import math
from pathlib import Path

LOG = logging.getLogger('efficientmfd_ros.train')


class RunLog:
    """`append(file, record)` adds a JSON line under `out_dir`; `scalars(record, step)` mirrors
    the finite float values to TensorBoard (`<out_dir>/tb`) when enabled and installed."""

    def __init__(self, out_dir, enabled: bool, tensorboard: bool):
        self.out = Path(out_dir)
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out / 'tb'))
            except ImportError:
                LOG.warning('tensorboard is not installed: no TensorBoard scalars')

    def append(self, name: str, record: dict):
        if not self.enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / name, 'a') as f:
            f.write(json.dumps(record, default=str) + '\n')

    def scalars(self, record: dict, step: int, prefix: str = 'train'):
        """Floats of `record` as scalars; keys without a '/' get `prefix/`."""
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value) and key != 'step':
                self.writer.add_scalar(key if '/' in key else f'{prefix}/{key}', value, step)

    def evaluation(self, metrics: dict, step: int):
        """A validation result: one `eval` line in log.jsonl; `val/...`, `train/...` scalars."""
        self.append('log.jsonl', {'step': step, 'eval': metrics})
        flat = {f'val/{k}': metrics[k] for k in ('map50', 'map50_95') if metrics[k] is not None}
        flat.update({f'val/fusion_{k}': v for k, v in metrics['fusion'].items()})
        flat.update({f'train/{k}': v for k, v in metrics.get('train', {}).items()
                     if k != 'num_images' and v is not None})
        self.scalars(flat, step)

    def close(self):
        if self.writer is not None:
            self.writer.close()


class _NoProgress:
    def update(self, n):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar over the steps (or a silent stand-in when disabled or tqdm is missing)."""
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(total=total, initial=initial, desc='train', dynamic_ncols=True)
        except ImportError:
            pass
    return _NoProgress()
