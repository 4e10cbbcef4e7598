"""The one way this package reads a torch file: `torch.load(weights_only=True)` on the CPU (no
unpickling of arbitrary objects), a missing or unreadable file raising the caller's error."""
from pathlib import Path
import typing

import torch


def load_weights_only(path: str | Path, error: type[Exception], missing: str, unreadable: str,
                      map_location: typing.Any = 'cpu') -> typing.Any:
    """What `path` holds. `error(f'{missing}: {path}')` when there is no such file,
    `error(f'{unreadable} {path}: <reason>')` when torch cannot read it as a weights-only file."""
    path = Path(path)
    if not path.is_file():
        raise error(f'{missing}: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise error(f'{unreadable} {path}: {exc}') from exc
