"""ROS 2 bag reading and writing without ROS, on ``rosbags``.

A bag is a rosbag2 directory (``metadata.yaml`` plus one ``.mcap`` or ``.db3`` file) or a bare
``.mcap``/``.db3`` file. Messages are (de)serialized as CDR with one shared typestore: the ROS 2
kilted types plus vision_msgs registered from its ``.msg`` definitions, so the type hashes written
into ``metadata.yaml`` are the ones a ROS install computes. Every problem reading a bag (missing,
corrupt, truncated, topic absent, wrong type or type hash) raises ``BagError``, whose message says
what the bag contains.
"""
from dataclasses import dataclass
import functools
import os
from pathlib import Path

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
import yaml

IMAGE = 'sensor_msgs/msg/Image'
DETECTIONS = 'vision_msgs/msg/Detection2DArray'
# vision_msgs 4.1 (humble .. kilted) Detection2DArray, as rosidl computes it
DETECTIONS_RIHS01 = 'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968'
STORAGES = ('mcap', 'sqlite3')
# rosbag2 metadata version 8: the newest that Humble and Jazzy both read. From version 9 on,
# offered_qos_profiles is a YAML list, which Humble's reader (any version >= 4) takes as a string
# and fails on; Jazzy and kilted read version 8's string form. Extra keys are ignored by Humble.
BAG_VERSION = 8


class BagError(Exception):
    """A bag that cannot be read as asked; the message names the problem and the bag's topics."""


def vision_msgs_dir():
    """The folder holding vision_msgs' ``.msg`` files.

    The source checkout's ``interfaces/vision_msgs/msg`` first (it is what ``./dev setup``
    builds), then ``share/vision_msgs/msg`` under each ``AMENT_PREFIX_PATH`` entry (an installed
    or system vision_msgs).
    """
    candidates = [Path(__file__).resolve().parents[2] / 'interfaces' / 'vision_msgs' / 'msg']
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / 'vision_msgs' / 'msg')
    candidates += sorted(Path('/opt/ros').glob('*/share/vision_msgs/msg'))
    for folder in candidates:
        if (folder / 'Detection2DArray.msg').is_file():
            return folder
    raise BagError('vision_msgs .msg definitions not found; looked in: '
                   + ', '.join(str(c) for c in candidates))


@functools.lru_cache(maxsize=1)
def typestore():
    """The kilted typestore with vision_msgs registered (cached; treat as read-only)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(vision_msgs_dir().glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'vision_msgs/msg/{path.stem}'))
    store.register(types)
    got = store.hash_rihs01(DETECTIONS)
    if got != DETECTIONS_RIHS01:
        raise BagError(f'vision_msgs definitions in {vision_msgs_dir()} hash Detection2DArray '
                       f'to {got}, not vision_msgs 4.1 ({DETECTIONS_RIHS01})')
    return store


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int
    type_hash: str


@dataclass(frozen=True)
class BagMessage:
    """One stored message: ``log_time_ns`` is the bag's receive time, ``raw`` its CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes


def _describe(topics):
    if not topics:
        return 'no topics'
    return '; '.join(f'{t.name} [{t.msgtype}, {t.count} messages]' for t in topics.values())


def _metadata_topics(path):
    """Topics listed by ``metadata.yaml`` alone, for errors about bags whose storage is broken."""
    try:
        info = yaml.safe_load((Path(path) / 'metadata.yaml').read_text())
        entries = info['rosbag2_bagfile_information']['topics_with_message_count']
        return {e['topic_metadata']['name']: TopicInfo(
            e['topic_metadata']['name'], e['topic_metadata']['type'], int(e['message_count']),
            e['topic_metadata'].get('type_description_hash', '')) for e in entries}
    except Exception:  # noqa: BLE001 - only used to enrich an error message
        return None


class BagReader:
    """Read a bag: ``topics`` ({name: TopicInfo}), ``require``, ``messages``, ``decode``.

    Use as a context manager, or call ``close()``.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'no bag at {self.path}')
        if self.path.is_dir() and not (self.path / 'metadata.yaml').is_file():
            names = ', '.join(sorted(p.name for p in self.path.iterdir())) or 'nothing'
            raise BagError(f'{self.path} is not a rosbag2 directory: it has no metadata.yaml '
                           f'(it contains: {names})')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags, sqlite3 and mcap raise many types
            raise self._broken(exc) from exc
        self.topics = {}
        for conn in self._reader.connections:
            info = self.topics.get(conn.topic)
            count = conn.msgcount + (info.count if info else 0)
            self.topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count, conn.digest or '')

    def _broken(self, exc):
        listed = _metadata_topics(self.path) if self.path.is_dir() else None
        contents = (f'; its metadata.yaml lists: {_describe(listed)}' if listed
                    else '; no readable metadata.yaml')
        return BagError(f'cannot read bag {self.path}: corrupt or truncated '
                        f'({type(exc).__name__}: {exc}){contents} (a recording cut short may be '
                        'repaired with `ros2 bag reindex` or `mcap recover`)')

    @property
    def duration_ns(self):
        """Receive-time span of all messages (0 for an empty bag)."""
        return max(0, int(self._reader.duration) - 1) if self._reader.message_count else 0

    def describe(self):
        """Human-readable list of the bag's topics, types and message counts."""
        return _describe(self.topics)

    def require(self, topic, msgtype):
        """Return the TopicInfo of ``topic``, checking it exists with ``msgtype`` and, where the
        bag records one, the type hash this reader decodes with."""
        info = self.topics.get(topic)
        if info is None:
            raise BagError(f'bag {self.path} has no topic {topic!r}; it contains: '
                           f'{self.describe()}')
        if info.msgtype != msgtype:
            raise BagError(f'topic {topic!r} in bag {self.path} is {info.msgtype}, expected '
                           f'{msgtype}; the bag contains: {self.describe()}')
        want = typestore().hash_rihs01(msgtype)
        if info.type_hash and info.type_hash != want:
            raise BagError(f'topic {topic!r} in bag {self.path} has type hash {info.type_hash}, '
                           f'this reader decodes {msgtype} as {want}')
        return info

    def messages(self, topics):
        """Yield ``BagMessage`` of ``topics`` in storage (receive-time) order."""
        conns = [c for c in self._reader.connections if c.topic in set(topics)]
        if not conns:
            return  # rosbags reads every topic when given none
        count = 0
        try:
            for conn, log_time, raw in self._reader.messages(connections=conns):
                count += 1
                yield BagMessage(conn.topic, conn.msgtype, int(log_time), bytes(raw))
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncation surfaces mid-iteration
            raise BagError(f'bag {self.path} is corrupt or truncated after {count} messages '
                           f'({type(exc).__name__}: {exc}); it lists: {self.describe()}') from exc

    def decode(self, message):
        """Deserialize a ``BagMessage`` into a rosbags message object."""
        try:
            return typestore().deserialize_cdr(message.raw, message.msgtype)
        except Exception as exc:  # noqa: BLE001 - malformed CDR
            raise BagError(f'cannot decode a {message.msgtype} message on {message.topic} at '
                           f'{message.log_time_ns} ns in {self.path}: {exc}') from exc

    @property
    def custom_data(self):
        """``custom_data`` of metadata.yaml ({} for a bare storage file or none recorded)."""
        try:
            info = yaml.safe_load((self.path / 'metadata.yaml').read_text())
            return dict(info['rosbag2_bagfile_information'].get('custom_data') or {})
        except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
            return {}

    def close(self):
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class BagWriter:
    """Write a new bag directory at ``path`` (which must not exist) in ``storage`` (mcap|sqlite3).

    ``add_topic(topic, msgtype)`` once per topic, then ``write(topic, log_time_ns, msg)`` with a
    rosbags message object or ``write_raw`` with CDR bytes. ``custom_data`` ({str: str}) goes
    into ``metadata.yaml``. A writer closed by an exception leaves no metadata.yaml behind.
    """

    def __init__(self, path, storage='mcap', custom_data=None):
        if storage not in STORAGES:
            raise BagError(f'storage {storage!r} is not one of {", ".join(STORAGES)}')
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} exists already; choose a new bag path')
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        self._writer.open()
        self._connections = {}

    def add_topic(self, topic, msgtype):
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore())
        return self._connections[topic]

    def write(self, topic, log_time_ns, message):
        conn = self._connections[topic]
        self.write_raw(topic, log_time_ns, typestore().serialize_cdr(message, conn.msgtype))

    def write_raw(self, topic, log_time_ns, raw):
        self._writer.write(self._connections[topic], int(log_time_ns), raw)

    def close(self):
        self._writer.close()

    def abort(self):
        self._writer.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
