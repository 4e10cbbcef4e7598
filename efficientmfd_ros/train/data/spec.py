"""The configuration of one paired dataset (a ``datasets:`` entry of a train config)."""
from dataclasses import asdict, dataclass, field

from efficientmfd_ros.core.config_io import from_plain

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
RGB_DIR_NAMES = ('visible', 'Vis', 'vis', 'rgb', 'RGB', 'vi')
THERMAL_DIR_NAMES = ('infrared', 'Ir', 'ir', 'IR', 'thermal', 'lwir')
LABEL_FORMATS = ('voc', 'yolo', 'coco', 'none')


class DatasetError(ValueError):
    """A dataset configuration that cannot be used; the message names the problem."""


@dataclass
class DatasetSpec:
    """Where one paired dataset lives and how to read it; relative paths are under ``root``."""

    root: str
    name: str = ''                    # shown in logs and summaries; default: the root folder name
    rgb_dir: str | None = None        # None: the first of RGB_DIR_NAMES under root
    thermal_dir: str | None = None    # None: the first of THERMAL_DIR_NAMES under root
    label_format: str = 'voc'         # voc | yolo | coco | none
    label_dir: str | None = None      # None: Annotations/ or Annotation*/ (voc), labels/ (yolo)
    coco_json: str | None = None      # the COCO file, relative to root or absolute
    split: str | list | None = None   # id-list file, 'first..last' range, list of ids, None: all
    class_names: list = field(default_factory=list)
    labelled: bool = True             # False: fusion loss only, labels never read
    weight: float = 1.0               # share of the mixed samples, relative to the other sets
    min_box_size: float = 1.0         # pixels; boxes narrower or lower after clipping are dropped

    @classmethod
    def from_dict(cls, data, where='dataset'):
        """Keys and value types checked against the fields; `root` is required. `where` names
        the entry in messages."""
        return from_plain(cls, data, where, root=False, error=DatasetError)

    def to_dict(self):
        return asdict(self)


def resolve_dir(root, given, candidates, what):
    """``root / given`` if set (it must exist), else the first existing ``root / candidate``."""
    if given is not None:
        path = root / given
        if not path.is_dir():
            raise DatasetError(f'{what} folder {path} does not exist')
        return path
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f'no {what} folder under {root}: set it (looked for {list(candidates)})')


