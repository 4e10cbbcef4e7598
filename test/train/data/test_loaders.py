"""The trainer's loaders hand copy-paste the objects of the labelled training frames only."""
import pytest

from efficientmfd_ros.train.config import load_train_config, read_model_config
from efficientmfd_ros.train.data.loaders import build_loaders

pytest.importorskip('torch')


def _loaders(project_root, llvip_person, *overrides):
    train = f"--data.train=[{{root: '{llvip_person}', name: cam, split: '010001..010004'}}]"
    val = f"--data.val=[{{root: '{llvip_person}', name: held, split: '010005..010006'}}]"
    cfg = load_train_config(project_root / 'config/train/tiny_test.yaml', [train, val, *overrides])
    return build_loaders(cfg, read_model_config(cfg))


def test_donor_bank_holds_the_training_frames_objects(project_root, llvip_person):
    data = _loaders(project_root, llvip_person, '--data.augment.copy_paste_p=0.5',
                    '--data.augment.copy_paste_donor_p=0.5')
    transform = data.train.datasets[0].transform
    donors = transform.donors['cam']
    frames = {d.frame for d in donors}
    assert frames <= {'010001', '010002', '010003', '010004'} and len(frames) >= 3
    boxes = sum(len(data.train.datasets[0].records[i].boxes) for i in range(4))
    assert 0 < len(donors) <= boxes
    assert set(transform.donors) == {'cam'}  # never the validation set
    assert f'copy-paste donors: cam {len(donors)} objects' in data.summary
    sample = data.train[0]
    assert sample['rgb'].shape[:2] == tuple(read_model_config(
        load_train_config(project_root / 'config/train/tiny_test.yaml')).input_size)


def test_no_donor_share_no_bank(project_root, llvip_person):
    data = _loaders(project_root, llvip_person, '--data.augment.copy_paste_p=0.5')
    assert data.train.datasets[0].transform.donors == {}
    assert 'donors' not in data.summary
