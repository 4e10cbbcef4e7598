"""Paired datasets: real LLVIP and RoadScene layouts, synthetic YOLO/COCO/M3FD sets, bad data."""
import json
import logging

import cv2
import numpy as np
import pytest
import torch

from efficientmfd_ros.train.data.augment import AugmentConfig, TrainAugment, resize_to
from efficientmfd_ros.train.data.paired import (
    DatasetError,
    DatasetSpec,
    PairedDataset,
    build_datasets,
    make_sampler,
)
from efficientmfd_ros.train.data.split import read_id_file

SMALL = (128, 160)
LOGGER = 'efficientmfd_ros.train.data.paired'


def _voc(objects, size=(48, 64)):
    body = ''.join(
        f'<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>'
        f'<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>' for n, b in objects)
    return (f'<annotation><size><width>{size[1]}</width><height>{size[0]}</height></size>'
            f'{body}</annotation>')


def _write_pair(root, pair_id, rgb_dir='visible', ir_dir='infrared', hw=(48, 64), ir_hw=None,
                ext='.png', ir=None):
    (root / rgb_dir).mkdir(parents=True, exist_ok=True)
    (root / ir_dir).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(pair_id)) % 1000)
    cv2.imwrite(str(root / rgb_dir / f'{pair_id}{ext}'),
                rng.integers(0, 256, hw + (3,), dtype=np.uint8))
    if ir is None:
        ir = rng.integers(0, 256, ir_hw or hw, dtype=np.uint8)
    cv2.imwrite(str(root / ir_dir / f'{pair_id}{ext}'), ir)


def _voc_dataset(tmp_path, ids=('a', 'b', 'c'), label_dir='Annotations'):
    root = tmp_path / 'set'
    (root / label_dir).mkdir(parents=True)
    for i in ids:
        _write_pair(root, i)
        (root / label_dir / f'{i}.xml').write_text(_voc([('person', (5, 6, 20, 30))]))
    return root


def test_llvip_range_split_and_voc_boxes(llvip_person):
    train = PairedDataset(DatasetSpec(str(llvip_person), split='010001..010032',
                                      class_names=['person']))
    val = PairedDataset(DatasetSpec(str(llvip_person), split='010033..010040',
                                    class_names=['person']), transform=resize_to(SMALL))
    assert len(train) == 32 and len(val) == 8
    assert [r.id for r in val.records] == [f'0100{i}' for i in range(33, 41)]
    first = train.records[0]
    assert first.id == '010001' and first.hw == (1024, 1280)
    assert len(first.boxes) == 6
    np.testing.assert_array_equal(first.boxes[0], [287, 428, 351, 662])
    assert (first.labels == 0).all() and first.boxes.dtype == np.float32
    assert train.num_boxes > 100 and train.report.counts.total() == 0
    sample = val[0]
    assert sample['id'] == '010033' and sample['labelled'] is True
    assert sample['rgb'].shape == SMALL + (3,) and sample['rgb'].dtype == np.uint8
    # the LLVIP infrared JPEG is grey in three channels: one channel comes out
    assert sample['thermal'].shape == SMALL and sample['thermal'].dtype == np.uint8
    scale = np.tile([SMALL[1] / 1280, SMALL[0] / 1024], 2)
    np.testing.assert_allclose(sample['boxes'], val.records[0].boxes * scale, rtol=1e-5)
    assert '32 used of 32 selected' in train.summary()


def test_roadscene_unlabelled(roadscene):
    ds = PairedDataset(DatasetSpec(str(roadscene), label_format='none', labelled=False),
                       transform=resize_to(SMALL))
    assert len(ds) == 221
    sample = ds[3]
    assert sample['labelled'] is False and sample['boxes'].shape == (0, 4)
    assert sample['thermal'].shape == SMALL and sample['labels'].dtype == np.int64
    assert 'unlabelled' in ds.summary()


def test_m3fd_layout_and_split_file(tmp_path, llvip_person):
    root = tmp_path / 'M3FD'
    (root / 'Annotation').mkdir(parents=True)
    for i in ('00000', '00001', '00002'):
        _write_pair(root, i, 'Vis', 'Ir')
        (root / 'Annotation' / f'{i}.xml').write_text(
            _voc([('People', (1, 2, 11, 22)), ('Car', (20, 20, 40, 40))]))
    (root / 'train.txt').write_text('00000\n00002.png\n\n# comment\n')
    classes = ['People', 'Car', 'Bus', 'Lamp', 'Motorcycle', 'Truck']
    ds = PairedDataset(DatasetSpec(str(root), split='train.txt', class_names=classes))
    assert ds.rgb_dir.name == 'Vis' and ds.thermal_dir.name == 'Ir'
    assert [r.id for r in ds.records] == ['00000', '00002']
    assert ds.records[0].labels.tolist() == [0, 1]
    paper_split = llvip_person.parent / 'm3fd_meta'
    if paper_split.is_dir():
        trainval, test = (read_id_file(paper_split / f) for f in ('trainval.txt', 'test.txt'))
        assert len(trainval) == 2940 and len(test) == 1260
        assert not set(trainval) & set(test) and test[0] == '00000'


def test_yolo_labels(tmp_path):
    root = tmp_path / 'yolo'
    (root / 'labels').mkdir(parents=True)
    _write_pair(root, 'p1', 'rgb', 'thermal', hw=(40, 80))
    (root / 'labels' / 'p1.txt').write_text('1 0.5 0.5 0.25 0.5\n7 0.5 0.5 0.1 0.1\nbad line\n')
    ds = PairedDataset(DatasetSpec(str(root), label_format='yolo', class_names=['a', 'b']))
    np.testing.assert_allclose(ds.records[0].boxes, [[30, 10, 50, 30]])
    assert ds.records[0].labels.tolist() == [1]
    assert ds.report.counts['unknown_class'] == 1
    assert ds.report.counts['bad_label_entry'] == 1


def test_coco_json_labels(tmp_path):
    root = tmp_path / 'coco'
    for i in ('x1', 'x2', 'x3'):
        _write_pair(root, i)
    coco = {'images': [{'id': 7, 'file_name': 'visible/x1.png'}, {'id': 8, 'file_name': 'x2.png'}],
            'categories': [{'id': 3, 'name': 'car'}, {'id': 5, 'name': 'truck'}],
            'annotations': [
                {'image_id': 7, 'category_id': 5, 'bbox': [4, 5, 10, 20]},
                {'image_id': 7, 'category_id': 3, 'bbox': [1, 1, 5, 5], 'iscrowd': 1},
            ]}
    (root / 'ann.json').write_text(json.dumps(coco))
    ds = PairedDataset(DatasetSpec(str(root), label_format='coco', coco_json='ann.json',
                                   class_names=['car', 'truck']))
    assert [r.id for r in ds.records] == ['x1', 'x2']
    np.testing.assert_allclose(ds.records[0].boxes, [[4, 5, 14, 25]])
    assert ds.records[0].labels.tolist() == [1] and len(ds.records[1].boxes) == 0
    assert ds.report.counts['crowd_box'] == 1 and ds.report.counts['missing_label'] == 1


def test_bad_data_is_logged_once_and_counted(tmp_path, caplog):
    root = _voc_dataset(tmp_path, ids=('ok', 'clip', 'empty', 'noobj', 'unknown', 'garbage'))
    ann = root / 'Annotations'
    (root / 'infrared' / 'noir.png').unlink(missing_ok=True)
    _write_pair(root, 'noir')
    (root / 'infrared' / 'noir.png').unlink()
    (ann / 'noir.xml').write_text(_voc([]))
    _write_pair(root, 'norgb')
    (root / 'visible' / 'norgb.png').unlink()
    (ann / 'clip.xml').write_text(_voc([('person', (-5, 10, 30, 70)), ('person', (3, 3, 3, 9))]))
    (ann / 'empty.xml').write_text('')
    (ann / 'noobj.xml').write_text(_voc([]))
    (ann / 'unknown.xml').write_text(_voc([('dog', (1, 1, 9, 9)), ('person', (1, 1, 9, 9))]))
    (root / 'visible' / 'garbage.png').write_bytes(b'not an image at all')
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ds = PairedDataset(DatasetSpec(str(root), class_names=['person']))
    counts = ds.report.counts
    assert [r.id for r in ds.records] == ['clip', 'noobj', 'ok', 'unknown']
    assert counts['missing_thermal'] == 1 and counts['missing_rgb'] == 1
    assert counts['unreadable_label'] == 1 and counts['unreadable_image'] == 1
    assert counts['box_clipped'] == 1 and counts['box_degenerate'] == 1
    assert counts['empty_label'] == 1 and counts['unknown_class'] == 1
    clip = ds.records[0]
    np.testing.assert_allclose(clip.boxes, [[0, 10, 30, 48]])
    assert len(ds.records[1].boxes) == 0 and len(ds.records[3].boxes) == 1
    text = caplog.text
    for path in ('noir.png', 'norgb', 'empty.xml', 'garbage.png', 'noobj.xml', 'unknown.xml'):
        assert text.count(path) == 1, path
    # two problems in one file: one line for each
    assert text.count('clip.xml') == 2 and 'boxes clipped' in text and 'degenerate' in text
    summary = ds.summary()
    assert '4 used of 8 selected' in summary
    assert 'clipped 1' in summary and 'degenerate 1' in summary and 'unknown class 1' in summary
    assert 'missing_thermal 1' in summary and 'unreadable_image 1' in summary


def test_thermal_variants_resized_16bit_and_colour(tmp_path, caplog):
    root = tmp_path / 'ir'
    _write_pair(root, 'small', ir_hw=(47, 63))
    _write_pair(root, 'deep', ir=np.full((48, 64), 40000, np.uint16))
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[:, :, 2] = 200
    _write_pair(root, 'colour', ir=colour)
    spec = DatasetSpec(str(root), labelled=False, label_format='none')
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ds = PairedDataset(spec)
        samples = {s['id']: s for s in (ds[i] for i in range(len(ds)))}
    assert ds.report.counts['ir_resized'] == 1
    assert samples['small']['thermal'].shape == (48, 64)
    deep = samples['deep']['thermal']
    assert deep.dtype == np.uint16 and deep[0, 0] == 40000
    assert samples['colour']['thermal'].ndim == 2 and ds.report.counts['ir_colour'] == 1
    assert 'small.png' in caplog.text and 'colour.png' in caplog.text


def test_undecodable_image_falls_back_to_next_pair(tmp_path, caplog):
    root = _voc_dataset(tmp_path, ids=('a', 'b'))
    png = (root / 'visible' / 'a.png').read_bytes()
    (root / 'visible' / 'a.png').write_bytes(png[:60])  # header intact, pixel data cut
    ds = PairedDataset(DatasetSpec(str(root), class_names=['person']))
    assert len(ds) == 2
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert ds[0]['id'] == 'b' and ds[0]['id'] == 'b'
    assert caplog.text.count('a.png') == 1 and ds.report.counts['unreadable_image'] == 2


def test_splits_and_configuration_errors(tmp_path):
    root = _voc_dataset(tmp_path, ids=('001', '002', '010', 'x'))
    spec = dict(root=str(root), class_names=['person'])
    assert [r.id for r in PairedDataset(DatasetSpec(**spec, split='2..10')).records] == \
        ['002', '010']
    assert [r.id for r in PairedDataset(DatasetSpec(**spec, split=['x', '001'])).records] == \
        ['x', '001']
    with pytest.raises(DatasetError, match='neither an existing id-list file nor a range'):
        PairedDataset(DatasetSpec(**spec, split='nosuchfile.txt'))
    with pytest.raises(DatasetError, match='does not exist'):
        PairedDataset(DatasetSpec(str(tmp_path / 'missing'), class_names=['a']))
    with pytest.raises(DatasetError, match='label_format'):
        PairedDataset(DatasetSpec(**spec, label_format='kitti'))
    with pytest.raises(DatasetError, match='class_names'):
        PairedDataset(DatasetSpec(str(root)))
    with pytest.raises(DatasetError, match=r"dataset: unknown key\(s\) \['rgb'\]"):
        DatasetSpec.from_dict({'root': str(root), 'rgb': 'visible'})
    # the shared typed reader checks values too (it used to pass them on unchecked)
    with pytest.raises(DatasetError, match=r'dataset.weight must be a number'):
        DatasetSpec.from_dict({'root': str(root), 'weight': 'heavy'})
    with pytest.raises(DatasetError, match=r"missing required key\(s\) \['root'\]"):
        DatasetSpec.from_dict({'name': 'x'})
    with pytest.raises(DatasetError, match='thermal folder'):
        PairedDataset(DatasetSpec(**spec, thermal_dir='lwir'))


def test_mixing_weights_and_seeded_augmentation(tmp_path):
    labelled = _voc_dataset(tmp_path, ids=('a', 'b', 'c', 'd'))
    unlabelled = tmp_path / 'unl'
    for i in ('u1', 'u2'):
        _write_pair(unlabelled, i)
    aug = TrainAugment(AugmentConfig(size=(32, 48)))
    specs = [{'root': str(labelled), 'class_names': ['person'], 'weight': 3.0},
             {'root': str(unlabelled), 'labelled': False, 'label_format': 'none', 'weight': 1.0}]
    mixed = build_datasets(specs, transform=aug, seed=1)
    assert len(mixed) == 6 and mixed[5]['labelled'] is False and mixed[0]['labelled'] is True
    weights = mixed.sample_weights()
    assert float(weights[:4].sum()) == pytest.approx(0.75)
    draws = list(make_sampler(mixed, 4000, torch.Generator().manual_seed(0)))
    assert 0.72 < np.mean([i < 4 for i in draws]) < 0.78
    # the same seed reproduces the draws; a second draw of a pair or a new epoch changes them
    first, second = (build_datasets(specs, transform=aug, seed=1) for _ in range(2))
    np.testing.assert_array_equal(first[2]['rgb'], second[2]['rgb'])
    assert not np.array_equal(first[2]['rgb'], first[2]['rgb'])
    second.set_epoch(1)
    assert not np.array_equal(first[3]['rgb'], second[3]['rgb'])
    assert 'dataset set' in mixed.summary() and 'dataset unl' in mixed.summary()
