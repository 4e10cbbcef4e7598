"""Which ids of a dataset to use: an id-list file, a ``first..last`` range, a list, or all."""
from pathlib import Path
import re

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
_RANGE = re.compile(r'^\s*([^/\\\s]+?)\s*\.\.\s*([^/\\\s]+)\s*$')


def _clean_id(token):
    """An id as a file stem: ``010001.jpg`` and ``010001`` are the same pair."""
    token = token.strip()
    if Path(token).suffix.lower() in _IMAGE_EXTS:
        token = token[:-len(Path(token).suffix)]
    return token


def read_id_file(path):
    """Ids of a split file: the first token of each line; blank lines and ``#`` comments skipped.

    The format of VOC ``ImageSets`` and of the EfficientMFD M3FD split (``trainval.txt``:
    one 5-digit id such as ``00000`` per line).
    """
    ids, seen = [], set()
    for line in Path(path).read_text().splitlines():
        tokens = line.split('#', 1)[0].split()
        if not tokens:
            continue
        pair_id = _clean_id(tokens[0])
        if pair_id not in seen:
            seen.add(pair_id)
            ids.append(pair_id)
    return ids


def id_range(first, last, available):
    """Ids of ``available`` in ``[first, last]``: numerically when both ends are digits."""
    if first.isdigit() and last.isdigit():
        lo, hi = int(first), int(last)
        if lo > hi:
            raise ValueError(f'split range {first}..{last} is empty (first > last)')
        return sorted((i for i in available if i.isdigit() and lo <= int(i) <= hi), key=int)
    if first > last:
        raise ValueError(f'split range {first}..{last} is empty (first > last)')
    return sorted(i for i in available if first <= i <= last)


def select_ids(split, available, root='.'):
    """Ids to use, in order. ``split``: None (all ``available``), a list of ids, the path of an
    id-list file (absolute, or relative to the working directory or to ``root``) or a range
    ``first..last``. Listed ids need not exist (the dataset reports those); ranges and None
    select among ``available``. Raises ValueError for a split that is none of these."""
    if split is None:
        return sorted(available)
    if isinstance(split, (list, tuple)):
        return list(dict.fromkeys(_clean_id(str(i)) for i in split))
    if not isinstance(split, str):
        raise ValueError(f'split must be a file, a range first..last or a list, got {split!r}')
    for candidate in (Path(split).expanduser(), Path(root) / split):
        if candidate.is_file():
            return read_id_file(candidate)
    match = _RANGE.match(split)
    if match:
        return id_range(match.group(1), match.group(2), available)
    raise ValueError(f'split {split!r} is neither an existing id-list file nor a range '
                     'first..last')
