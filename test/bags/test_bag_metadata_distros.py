"""Bags the tools write must open in ROS 2 Humble and Jazzy.

The two checkers below restate how each distro's rosbag2 decodes metadata.yaml
(`rosbag2_storage` on the humble and jazzy branches: `metadata_io.cpp` / `yaml.hpp`): which keys
are read at which version and as what YAML type. yaml-cpp's `as<std::string>()` accepts a scalar
only, so a list where a string is expected is the failure users meet (`bad conversion`).
"""
import pytest
import yaml

from efficientmfd_ros.bags.frame_source import synthetic_frames
from efficientmfd_ros.bags.make import write_bag


def _scalar(node, key, where):
    assert key in node, f'{where}: no {key}'
    assert not isinstance(node[key], (list, dict)), f'{where}: {key} must be a scalar'


def _common(info, version, where):
    for key in ('storage_identifier', 'message_count', 'relative_file_paths', 'duration',
                'starting_time', 'topics_with_message_count'):
        assert key in info, f'{where}: no {key}'
    assert isinstance(info['duration']['nanoseconds'], int)
    assert isinstance(info['starting_time']['nanoseconds_since_epoch'], int)
    assert isinstance(info['relative_file_paths'], list)
    if version >= 3:
        _scalar(info, 'compression_format', where)
        _scalar(info, 'compression_mode', where)
    if version >= 5:
        for entry in info['files']:
            _scalar(entry, 'path', where)
            _scalar(entry, 'message_count', where)


def _topics(info, where):
    """Each topic_metadata, its name, type and serialization format checked as scalars."""
    for entry in info['topics_with_message_count']:
        topic = entry['topic_metadata']
        for key in ('name', 'type', 'serialization_format'):
            _scalar(topic, key, where)
        yield topic


def humble_reads(meta: dict):
    info = meta['rosbag2_bagfile_information']
    version = info['version']
    _common(info, version, 'humble')
    for topic in _topics(info, 'humble'):
        if version >= 4:
            _scalar(topic, 'offered_qos_profiles', 'humble')


def jazzy_reads(meta: dict):
    info = meta['rosbag2_bagfile_information']
    version = info['version']
    assert version <= 9, f'jazzy writes and reads up to version 9, got {version}'
    _common(info, version, 'jazzy')
    for topic in _topics(info, 'jazzy'):
        if version >= 9:
            assert isinstance(topic['offered_qos_profiles'], list), 'jazzy: v9 qos is a list'
        elif version >= 4:
            _scalar(topic, 'offered_qos_profiles', 'jazzy')
        if version >= 7:
            _scalar(topic, 'type_description_hash', 'jazzy')
    if version >= 6:
        assert isinstance(info['custom_data'], dict)
        assert all(isinstance(v, str) for v in info['custom_data'].values())
    if version >= 8:
        _scalar(info, 'ros_distro', 'jazzy')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_written_bags_satisfy_humble_and_jazzy_metadata_rules(tmp_path, storage):
    frames = synthetic_frames(2, (64, 48), seed=1, class_names=('person',))
    write_bag(frames, tmp_path / 'bag', storage, rate_hz=10.0, progress=False)
    meta = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    humble_reads(meta)
    jazzy_reads(meta)
    info = meta['rosbag2_bagfile_information']
    assert info['storage_identifier'] == storage
    assert info['custom_data']['class_names'] == 'person'
    hashes = [e['topic_metadata']['type_description_hash']
              for e in info['topics_with_message_count']]
    assert all(h.startswith('RIHS01_') for h in hashes)


def test_the_checkers_refuse_what_each_distro_refuses():
    """A version-9 file (a YAML list of QoS profiles) is what Humble cannot read."""
    topic = {'name': '/a', 'type': 'sensor_msgs/msg/Image', 'serialization_format': 'cdr',
             'offered_qos_profiles': [], 'type_description_hash': 'RIHS01_x'}
    info = {'version': 9, 'storage_identifier': 'mcap', 'message_count': 0,
            'relative_file_paths': ['a.mcap'], 'duration': {'nanoseconds': 0},
            'starting_time': {'nanoseconds_since_epoch': 0}, 'compression_format': '',
            'compression_mode': '', 'files': [], 'custom_data': {}, 'ros_distro': 'jazzy',
            'topics_with_message_count': [{'topic_metadata': topic, 'message_count': 0}]}
    meta = {'rosbag2_bagfile_information': info}
    jazzy_reads(meta)
    with pytest.raises(AssertionError, match='humble: offered_qos_profiles'):
        humble_reads(meta)
    info['version'] = 8
    with pytest.raises(AssertionError, match='jazzy: offered_qos_profiles'):
        jazzy_reads(meta)
