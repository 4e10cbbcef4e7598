"""K-fold cross-validation of a training recipe over a dataset's labelled frames.

Eight validation frames choose badly between recipes (one noise draw or one seed moves AP50 by
more than most changes do), so a recipe is chosen on the mean over folds of all labelled frames:
fold `j` validates on the `j`-th contiguous block of the frames (in id order) and trains on the
rest. Contiguous blocks keep neighbouring video frames, which look alike, on one side of the
split except at the block edges. Only the recipe is chosen this way; the committed weights are
then trained on the usual split and scored on its held-out frames.

A fold's config is the base train config (a plain YAML dict) with the labelled training set's
`split` replaced by the fold's training ids, `data.val` replaced by that set restricted to the
fold's held-out ids, and `output_dir` set to the fold's folder. Every other training set (the
unlabelled fusion pairs) is kept as it is.
"""
import copy
import statistics

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.train.data.paired import PairedDataset
from efficientmfd_ros.train.data.spec import DatasetSpec

METRICS = ('map50', 'map50_95')
# Keys a fold sets itself; an override of one would make every fold the same run.
FOLD_KEYS = ('output_dir', 'data.train', 'data.val')


def fold_blocks(ids, k: int):
    """`k` (train ids, held-out ids) pairs: contiguous blocks of `ids`, sizes differing by <= 1."""
    ids = list(ids)
    if not 2 <= k <= len(ids):
        raise ConfigError(f'{k} folds need 2 <= k <= the {len(ids)} labelled frames')
    bounds = [round(j * len(ids) / k) for j in range(k + 1)]
    return [(ids[:lo] + ids[hi:], ids[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]


def labelled_entry(base: dict) -> int:
    """Index in `data.train` of the labelled set the folds split (the first one)."""
    for i, spec in enumerate(base.get('data', {}).get('train', [])):
        if spec.get('labelled', True) and spec.get('label_format', 'voc') != 'none':
            return i
    raise ConfigError('the train config has no labelled training set to split into folds')


def dataset_ids(spec: dict, split):
    """Ids of the pairs of `spec`'s dataset that `split` selects and whose images can be read
    (their labels are read by the folds' trainers, not here)."""
    entry = DatasetSpec.from_dict({**spec, 'split': split, 'weight': 1.0, 'labelled': False,
                                   'label_format': 'none'})
    return [record.id for record in PairedDataset(entry).records]


def default_frames(base: dict):
    """The labelled training set's ids followed by the validation ids from the same folder."""
    data = base.get('data', {})
    train = data['train'][labelled_entry(base)]
    ids = dataset_ids(train, train.get('split'))
    for spec in data.get('val') or []:
        if spec.get('root') == train.get('root'):
            ids += [i for i in dataset_ids(train, spec.get('split')) if i not in ids]
    return ids


def fold_configs(base: dict, frames, k: int, out_dir):
    """`k` (config dict, held-out ids) pairs for `frames` of the labelled set; see the module."""
    index = labelled_entry(base)
    configs = []
    for j, (train_ids, held_out) in enumerate(fold_blocks(frames, k)):
        cfg = copy.deepcopy(base)
        spec = cfg['data']['train'][index]
        spec['split'] = list(train_ids)
        name = spec.get('name') or 'labelled'
        cfg['data']['val'] = [{key: value for key, value in spec.items() if key != 'weight'}
                              | {'split': list(held_out), 'name': f'{name}_fold{j}'}]
        cfg['output_dir'] = str(out_dir / f'fold{j}')
        configs.append((cfg, list(held_out)))
    return configs


def refused_overrides(overrides):
    """The overrides that name a key the folds set (see `FOLD_KEYS`), or a section holding one."""
    refused = []
    for text in overrides:
        key = text.lstrip('-').split('=', 1)[0]
        if any(key == k or key.startswith(k + '.') or k.startswith(key + '.') for k in FOLD_KEYS):
            refused.append(text)
    return refused


def summarise(folds):
    """`{metric: {'mean', 'std', 'per_fold'}}` over the folds' `final_metrics` (None: not run);
    std is the sample standard deviation over folds, 0 with one."""
    done = [f for f in folds if f is not None]
    out = {'folds_done': len(done), 'folds': len(folds)}
    for key in METRICS:
        values = [float(f[key]) for f in done if key in f]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[key] = {'mean': statistics.fmean(values), 'std': std, 'per_fold': [
                None if f is None else f.get(key) for f in folds]}
    return out


def table(summary, held_out):
    """Markdown: one row per fold (held-out frames, AP50, AP50:95), then mean and std."""
    lines = ['| fold | held-out frames | AP50 | AP50:95 |', '|---|---|---|---|']
    per = {key: summary.get(key, {}).get('per_fold', [None] * len(held_out)) for key in METRICS}

    def cell(value):
        return '-' if value is None else f'{value:.3f}'

    for j, ids in enumerate(held_out):
        span = f'{ids[0]}..{ids[-1]} ({len(ids)})' if ids else '-'
        lines.append(f'| {j} | {span} | {cell(per["map50"][j])} | {cell(per["map50_95"][j])} |')
    if all(key in summary for key in METRICS):
        mean = ' | '.join(f'{summary[k]["mean"]:.3f} +- {summary[k]["std"]:.3f}' for k in METRICS)
        lines.append(f'| mean +- std ({summary["folds_done"]} of {summary["folds"]}) | | {mean} |')
    return '\n'.join(lines) + '\n'
