"""`efficientmfd_train --config config/train/<name>.yaml [--key=value ...] [--resume]`.

Trains EfficientMFD as the config says (see efficientmfd_ros/train/config.py for every key);
`--key=value` overrides any key, dotted for sections (`--optim.lr=1e-4`, `--gmta.interval=0`,
`--task=fusion`). `--resume` continues the run in the config's `output_dir` from its `last.pt`.
Multi-GPU: `torchrun --nproc_per_node N -m efficientmfd_ros.tools.train --config ...`.
Exit status: 0 done, 2 bad arguments or configuration.
"""
import argparse
import json
import logging
import sys

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.model.config import ModelConfigError
from efficientmfd_ros.model.factory import CheckpointError
from efficientmfd_ros.train.config import load_train_config
from efficientmfd_ros.train.data.spec import DatasetError
from efficientmfd_ros.train.train_state import TrainStateError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='efficientmfd_train', description=__doc__.split('\n\n')[0],
        epilog='Any other --key=value overrides a config key, e.g. --schedule.iterations=500.')
    parser.add_argument('--config', required=True, help='train config YAML')
    parser.add_argument('--resume', action='store_true',
                        help='continue from <output_dir>/last.pt')
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not (o.startswith('--') and '=' in o)]
    if bad:
        parser.error(f'unrecognised arguments {bad}: overrides look like --key=value')
    return args, overrides


def main(argv=None) -> int:
    args, overrides = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        cfg = load_train_config(args.config, overrides)
        from efficientmfd_ros.train.allocator import keep_freed_memory
        from efficientmfd_ros.train.trainer import Trainer
        keep_freed_memory()
        trainer = Trainer(cfg, resume=args.resume)
    except (ConfigError, ModelConfigError, DatasetError, TrainStateError, CheckpointError) as exc:
        print(f'efficientmfd_train: {exc}', file=sys.stderr)
        return 2
    summary = trainer.run()
    if trainer.main:
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
