"""Missing, corrupt, truncated and wrong-topic bags give one clear BagError naming the contents."""
import shutil

import pytest

from efficientmfd_ros.bags.bagio import DETECTIONS, IMAGE, BagError, BagReader, BagWriter
from efficientmfd_ros.bags.frame_source import synthetic_frames
from efficientmfd_ros.bags.make import write_bag
from efficientmfd_ros.tools.eval_bag import main as eval_main


@pytest.fixture(scope='module')
def good_bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    for storage in ('mcap', 'sqlite3'):
        write_bag(synthetic_frames(6, (160, 128), seed=2), root / storage, storage,
                  progress=False)
    return root


def _read_everything(path):
    with BagReader(path) as reader:
        return sum(len(reader.decode(m).header.frame_id) >= 0
                   for m in reader.messages(list(reader.topics)))


def _storage_file(bag):
    return next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))


def test_good_bags_read(good_bags):
    assert _read_everything(good_bags / 'mcap') == 18
    assert _read_everything(good_bags / 'sqlite3') == 18


def test_missing_bag(tmp_path):
    with pytest.raises(BagError, match='no bag at'):
        BagReader(tmp_path / 'nothing')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('x')
    with pytest.raises(BagError, match=r'no metadata.yaml \(it contains: notes.txt\)'):
        BagReader(tmp_path / 'empty')


def test_missing_topic_lists_contents(good_bags):
    with BagReader(good_bags / 'mcap') as reader:
        with pytest.raises(BagError) as info:
            reader.require('/camera/left', IMAGE)
    text = str(info.value)
    assert "no topic '/camera/left'" in text
    assert '/rgb/image_raw [sensor_msgs/msg/Image, 6 messages]' in text
    assert '/ground_truth/detections [vision_msgs/msg/Detection2DArray, 6 messages]' in text


def test_wrong_type_lists_contents(good_bags):
    with BagReader(good_bags / 'sqlite3') as reader:
        with pytest.raises(BagError, match='is vision_msgs/msg/Detection2DArray, expected '
                                           'sensor_msgs/msg/Image; the bag contains: /rgb'):
            reader.require('/ground_truth/detections', IMAGE)
        assert reader.require('/ground_truth/detections', DETECTIONS).count == 6


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_truncated_bag(good_bags, tmp_path, storage):
    bag = tmp_path / storage
    shutil.copytree(good_bags / storage, bag)
    data = _storage_file(bag)
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    with pytest.raises(BagError, match='corrupt or truncated') as info:
        _read_everything(bag)
    assert '/thermal/image_raw' in str(info.value)  # what the metadata says the bag holds


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_corrupt_bag(good_bags, tmp_path, storage):
    bag = tmp_path / storage
    shutil.copytree(good_bags / storage, bag)
    data = _storage_file(bag)
    raw = bytearray(data.read_bytes())
    raw[:64] = b'\x5a' * 64  # clobber the file header / magic
    data.write_bytes(bytes(raw))
    with pytest.raises(BagError, match='corrupt or truncated'):
        _read_everything(bag)


def test_corrupt_metadata(good_bags, tmp_path):
    bag = tmp_path / 'meta'
    shutil.copytree(good_bags / 'mcap', bag)
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: [: broken')
    with pytest.raises(BagError, match='(?s)corrupt or truncated.*no readable metadata.yaml'):
        BagReader(bag)


def test_writer_refuses_existing_path(good_bags):
    with pytest.raises(BagError, match='exists already'):
        BagWriter(good_bags / 'mcap')


def test_eval_bag_reports_wrong_topic(good_bags, tmp_path, capsys):
    code = eval_main(['--bag', str(good_bags / 'mcap'), '--weights', str(tmp_path / 'w.pt'),
                      '--out', str(tmp_path / 'out'), '--rgb-topic', '/camera/rgb', '--quiet'])
    assert code == 2
    err = capsys.readouterr().err
    assert "no topic '/camera/rgb'" in err and '/thermal/image_raw [sensor_msgs' in err


def test_eval_bag_reports_wrong_gt_type(good_bags, tmp_path, capsys):
    code = eval_main(['--bag', str(good_bags / 'sqlite3'), '--weights', str(tmp_path / 'w.pt'),
                      '--out', str(tmp_path / 'out'), '--gt-topic', '/thermal/image_raw',
                      '--quiet'])
    assert code == 2
    err = capsys.readouterr().err
    assert "'/thermal/image_raw'" in err and 'is sensor_msgs/msg/Image, expected ' \
        'vision_msgs/msg/Detection2DArray' in err and '/ground_truth/detections [' in err
