"""efficientmfd_kfold end to end: two folds of the tiny model on real LLVIP frames, resumed."""
import json

import pytest
import yaml

from efficientmfd_ros.tools.kfold import main

pytestmark = pytest.mark.data
FRAMES = [f'0100{i:02d}' for i in range(1, 7)]


@pytest.fixture
def recipe(project_root, llvip_person, tmp_path):
    cfg = yaml.safe_load((project_root / 'config/train/tiny_test.yaml').read_text())
    cfg['model_config'] = str(project_root / cfg['model_config'])
    cfg['data']['train'] = [{'root': str(llvip_person), 'name': 'cam', 'split': '010001..010004'}]
    cfg['data']['val'] = [{'root': str(llvip_person), 'split': '010005..010006'}]
    cfg['schedule']['iterations'] = 2
    path = tmp_path / 'recipe.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_folds_train_report_and_a_second_call_trains_nothing(recipe, tmp_path, capsys):
    out = tmp_path / 'kf'
    assert main(['--config', str(recipe), '--folds', '2', '--out', str(out),
                 '--eval.noise_seeds=[0, 1]']) == 0
    report = json.loads((out / 'kfold.json').read_text())
    assert report['frames'] == FRAMES  # train ids then the validation ids of the same folder
    assert report['held_out'] == [FRAMES[:3], FRAMES[3:]]
    for j, held in enumerate(report['held_out']):
        fold = yaml.safe_load((out / f'fold{j}.yaml').read_text())
        assert fold['data']['val'][0]['split'] == held
        assert sorted(fold['data']['train'][0]['split'] + held) == FRAMES
        summary = json.loads((out / f'fold{j}' / 'summary.json').read_text())
        assert summary['steps'] == 2
        assert summary['final_metrics']['map50'] == report['final_metrics'][j]['map50']
        assert len(summary['final_metrics']['map50_per_seed']) == 2  # the override reached it
    values = [m['map50'] for m in report['final_metrics']]
    assert report['summary']['map50']['mean'] == pytest.approx(sum(values) / 2)
    assert report['summary']['folds_done'] == 2
    assert '| mean +- std (2 of 2) |' in (out / 'kfold.md').read_text()
    stamps = [(out / f'fold{j}' / 'summary.json').stat().st_mtime_ns for j in range(2)]
    capsys.readouterr()
    assert main(['--config', str(recipe), '--folds', '2', '--out', str(out)]) == 0
    assert 'efficientmfd_train' not in capsys.readouterr().out  # nothing trained again
    assert [(out / f'fold{j}' / 'summary.json').stat().st_mtime_ns for j in range(2)] == stamps


def test_only_runs_the_named_folds_and_counts_the_rest_missing(recipe, tmp_path):
    out = tmp_path / 'kf'
    assert main(['--config', str(recipe), '--folds', '3', '--out', str(out), '--only', '1',
                 '--frames', '010001..010006']) == 0
    assert not (out / 'fold0').exists() and (out / 'fold1' / 'summary.json').is_file()
    report = json.loads((out / 'kfold.json').read_text())
    assert report['summary']['folds_done'] == 1
    assert report['final_metrics'][0] is None and report['final_metrics'][2] is None
    assert '| 0 | 010001..010002 (2) | - | - |' in (out / 'kfold.md').read_text()


@pytest.mark.parametrize('args', [['--folds', '9'], ['--only', '5'], ['--output_dir=x'],
                                  ['--data.val=[]']])
def test_bad_arguments_exit_2(recipe, tmp_path, args):
    code = None
    try:
        code = main(['--config', str(recipe), '--out', str(tmp_path / 'kf'), '--folds', '2',
                     *args])
    except SystemExit as exc:  # argparse refuses before main's own checks
        code = exc.code
    assert code == 2
    assert not (tmp_path / 'kf' / 'fold0').exists()
