"""Decoding one RGB-thermal pair from disk into the arrays the datasets hand out."""
import cv2
import numpy as np

# 3-channel thermal files whose channels differ by at most this are grey (JPEG rounding)
_GREY_TOLERANCE = 2


def read_rgb(path):
    """uint8 HxWx3 RGB (grey files are expanded to three channels), or None if undecodable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_thermal(path, report=None):
    """uint8 or uint16 HxW; a 3-channel grey file gives one channel, a colour one is converted
    to grey (reported as ``ir_colour``). None if undecodable or of another dtype."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype not in (np.uint8, np.uint16):
        return None
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        wide = image.astype(np.int32)
        spread = max(np.abs(wide[:, :, 0] - wide[:, :, 1]).max(),
                     np.abs(wide[:, :, 0] - wide[:, :, 2]).max())
        if spread <= _GREY_TOLERANCE:
            image = image[:, :, 0]
        else:
            if report is not None:
                report.event('ir_colour', path, f'channels differ by up to {spread}')
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(image)


def load_pair(rgb_path, thermal_path, report=None):
    """``(rgb uint8 HxWx3, thermal uint8|uint16 HxW)`` of equal HxW, the thermal image resized to
    the RGB size if it differs; None (reported as ``unreadable_image``) if either fails."""
    rgb = read_rgb(rgb_path)
    thermal = read_thermal(thermal_path, report) if rgb is not None else None
    if rgb is None or thermal is None:
        if report is not None:
            report.event('unreadable_image', rgb_path if rgb is None else thermal_path,
                         'cannot be decoded')
        return None
    if thermal.shape != rgb.shape[:2]:
        thermal = cv2.resize(thermal, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return rgb, thermal
