"""K-fold splits: contiguous, each frame held out once; fold configs only move the split."""
import pytest

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.train import kfold

BASE = {'output_dir': 'runs/x', 'data': {
    'train': [{'root': 'u', 'labelled': False, 'label_format': 'none', 'weight': 0.1},
              {'root': 'cam', 'name': 'llvip', 'split': '1..32', 'weight': 0.9}],
    'val': [{'root': 'cam', 'split': '33..40'}]}}


def test_blocks_are_contiguous_cover_every_frame_once_and_differ_by_at_most_one():
    ids = [f'{i:02d}' for i in range(1, 41)]
    folds = kfold.fold_blocks(ids, 5)
    held = [h for _, h in folds]
    assert [len(h) for h in held] == [8] * 5
    assert sum(held, []) == ids
    for train, held_out in folds:
        assert sorted(train + held_out) == ids and not set(train) & set(held_out)
    sizes = [len(h) for _, h in kfold.fold_blocks(ids[:11], 3)]
    assert sorted(sizes) == [3, 4, 4]
    with pytest.raises(ConfigError):
        kfold.fold_blocks(ids[:3], 4)
    with pytest.raises(ConfigError):
        kfold.fold_blocks(ids, 1)


def test_fold_configs_replace_the_labelled_split_and_validation_only(tmp_path):
    frames = [str(i) for i in range(1, 41)]
    configs = kfold.fold_configs(BASE, frames, 4, tmp_path)
    assert len(configs) == 4
    cfg, held = configs[1]
    assert held == [str(i) for i in range(11, 21)]
    assert cfg['data']['train'][0] == BASE['data']['train'][0]  # the fusion-only set kept
    assert cfg['data']['train'][1]['split'] == frames[:10] + frames[20:]
    assert cfg['data']['train'][1]['weight'] == 0.9
    (val,) = cfg['data']['val']
    assert val['root'] == 'cam' and val['split'] == held and val['name'] == 'llvip_fold1'
    assert 'weight' not in val
    assert cfg['output_dir'] == str(tmp_path / 'fold1')
    assert BASE['data']['train'][1]['split'] == '1..32'  # the base is not changed


def test_no_labelled_set_is_an_error():
    with pytest.raises(ConfigError):
        kfold.labelled_entry({'data': {'train': [BASE['data']['train'][0]]}})


def test_overrides_of_what_a_fold_sets_are_refused():
    assert kfold.refused_overrides(['--output_dir=a', '--data.val=[]', '--data={}',
                                    '--data.train=[]', '--optim.lr=1e-4',
                                    '--data.batch_size=2']) == [
        '--output_dir=a', '--data.val=[]', '--data={}', '--data.train=[]']


def test_summary_mean_and_sample_std_over_the_folds_done():
    folds = [{'map50': 0.8, 'map50_95': 0.4}, None, {'map50': 0.6, 'map50_95': 0.2}]
    summary = kfold.summarise(folds)
    assert summary['folds_done'] == 2 and summary['folds'] == 3
    assert summary['map50']['mean'] == pytest.approx(0.7)
    assert summary['map50']['std'] == pytest.approx(0.1414, abs=1e-4)
    assert summary['map50']['per_fold'] == [0.8, None, 0.6]
    text = kfold.table(summary, [['1', '2'], ['3'], ['4', '5']])
    assert '| 1 | 3..3 (1) | - | - |' in text
    assert '| mean +- std (2 of 3) | | 0.700 +- 0.141 | 0.300 +- 0.141 |' in text
