"""Counting and logging of bad data: every problem is counted, and logged once with its path."""
from collections import Counter
import logging

LOG = logging.getLogger('efficientmfd_ros.train.data.paired')

# reason -> (what happens, text for the summary); pairs with a 'skip' reason are not used
REASONS = {
    'missing_rgb': ('skip', 'no RGB partner'),
    'missing_thermal': ('skip', 'no thermal partner'),
    'unreadable_image': ('skip', 'unreadable image'),
    'missing_label': ('skip', 'no label file'),
    'unreadable_label': ('skip', 'unreadable label file'),
    'empty_label': ('keep', 'label files without objects'),
    'bad_label_entry': ('drop box', 'malformed label entries'),
    'unknown_class': ('drop box', 'unknown class'),
    'crowd_box': ('drop box', 'COCO crowd boxes'),
    'box_clipped': ('clip box', 'boxes clipped to the image'),
    'box_degenerate': ('drop box', 'empty or degenerate boxes'),
    'ir_resized': ('keep', 'thermal resized to the RGB size'),
    'ir_colour': ('keep', 'thermal with differing colour channels, converted to grey'),
    'duplicate_file': ('keep', 'several files with one id, first taken'),
}
# more than this many log lines per reason and dataset are only counted
MAX_LOGGED_PER_REASON = 20


class DataReport:
    """Counts of bad-data events of one dataset; logs each (reason, path) once at WARNING."""

    def __init__(self, name):
        self.name = name
        self.counts = Counter()
        self._logged = set()
        self._logged_per_reason = Counter()

    def event(self, reason, path, detail='', count=1):
        """Count ``count`` events of ``reason`` (a REASONS key) at ``path``; log the first."""
        if reason not in REASONS:
            raise KeyError(f'unknown data report reason {reason!r}')
        self.counts[reason] += count
        key = (reason, str(path))
        if key in self._logged:
            return
        self._logged.add(key)
        self._logged_per_reason[reason] += 1
        n = self._logged_per_reason[reason]
        if n <= MAX_LOGGED_PER_REASON:
            action = REASONS[reason][0]
            LOG.warning('[%s] %s (%s): %s%s', self.name, REASONS[reason][1], action, path,
                        f': {detail}' if detail else '')
        if n == MAX_LOGGED_PER_REASON:
            LOG.warning('[%s] further "%s" cases are only counted in the summary', self.name,
                        REASONS[reason][1])

    def skipped(self):
        """Counts of the reasons that skipped whole pairs."""
        return {r: n for r, n in self.counts.items() if REASONS[r][0] == 'skip' and n}

    def lines(self, exclude=()):
        """``reason text: count`` for every non-zero count not in ``exclude``, in REASONS order."""
        return [f'{REASONS[r][1]}: {self.counts[r]}' for r in REASONS
                if self.counts[r] and r not in exclude]
