"""sensor_msgs/Image and CompressedImage fields <-> numpy arrays (the cv_bridge job, ROS-free).

Arrays are HxW for one-channel encodings and HxWxC otherwise, in the dtype of the encoding, native
byte order and C-contiguous. Multi-channel encodings without a colour order (``8UC3``) are taken
as BGR and ``8UC1`` as grey, as cv_bridge does. Every bad input raises ``ImageConversionError``.
"""
from array import array as py_array
from dataclasses import dataclass
import typing

import cv2
import numpy as np

# encoding -> (dtype, channels)
ENCODINGS = {
    'rgb8': (np.uint8, 3),
    'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1),
    'mono16': (np.uint16, 1),
    '8UC1': (np.uint8, 1),
    '8UC3': (np.uint8, 3),
    '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}
_GREY = ('mono8', '8UC1', 'mono16', '16UC1')
# OpenCV code turning each 8-bit colour encoding into RGB; None means already RGB
_TO_RGB = {
    'rgb8': None,
    'bgr8': cv2.COLOR_BGR2RGB,
    '8UC3': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB,
    'mono8': cv2.COLOR_GRAY2RGB,
    '8UC1': cv2.COLOR_GRAY2RGB,
}
# and into BGR, the order OpenCV encoders expect
_TO_BGR = {
    'rgb8': cv2.COLOR_RGB2BGR,
    'bgr8': None,
    '8UC3': None,
    'rgba8': cv2.COLOR_RGBA2BGR,
    'bgra8': cv2.COLOR_BGRA2BGR,
}
_COMPRESSIONS = ('jpeg', 'png')


class ImageConversionError(ValueError):
    """An image message or array that cannot be converted; the message names the problem."""


@dataclass
class ImageFields:
    """The sensor_msgs/Image fields other than the header. ``data`` is ``height * step`` bytes."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


def _spec(encoding: str) -> tuple[np.dtype, int]:
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f'unsupported encoding {encoding!r}; supported: {", ".join(ENCODINGS)}')
    dtype, channels = ENCODINGS[encoding]
    return np.dtype(dtype), channels


def _as_bytes(data: typing.Any) -> np.ndarray:
    """View any buffer rclpy or a caller may hand over as a flat uint8 array, without copying."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    if isinstance(data, py_array) and data.itemsize != 1:
        raise ImageConversionError(f'data array.array has typecode {data.typecode!r}; expected B')
    try:
        return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)
    except TypeError as exc:
        raise ImageConversionError(f'data of type {type(data).__name__} is not a buffer') from exc


def image_to_numpy(height: int, width: int, encoding: str, is_bigendian: bool | int, step: int,
                   data: object) -> np.ndarray:
    """Decode sensor_msgs/Image fields into a new array that never aliases ``data``.

    Returns ``(height, width)`` for one-channel encodings, else ``(height, width, C)``, dtype
    uint8 / uint16 / float32 as the encoding says, native byte order. Row padding beyond
    ``width * bytes_per_pixel`` is dropped; big-endian multi-byte data is swapped.
    """
    dtype, channels = _spec(encoding)
    try:
        height, width, step = int(height), int(width), int(step)
    except (TypeError, ValueError) as exc:
        raise ImageConversionError(f'height, width, step must be ints: {exc}') from exc
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'image size {width}x{height} is empty')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width*bytes_per_pixel = {row_bytes} for {encoding}')
    flat = _as_bytes(data)
    if flat.size != height * step:
        raise ImageConversionError(
            f'data length {flat.size} does not match height*step = {height}*{step} = '
            f'{height * step}')
    rows = np.ascontiguousarray(flat.reshape(height, step)[:, :row_bytes])
    wire = dtype.newbyteorder('>' if is_bigendian else '<')
    pixels = rows.view(wire).astype(dtype, copy=True)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def _check_array(array: np.ndarray, encoding: str) -> np.ndarray:
    """Validate that ``array`` holds an image of ``encoding``; return it as (H, W, C)."""
    dtype, channels = _spec(encoding)
    if not isinstance(array, np.ndarray):
        raise ImageConversionError(f'expected a numpy array, got {type(array).__name__}')
    if array.dtype.newbyteorder('=') != dtype.newbyteorder('='):
        raise ImageConversionError(
            f'array dtype {array.dtype} does not match {encoding} (needs {dtype})')
    if array.ndim == 2 and channels == 1:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ImageConversionError(
            f'array shape {array.shape} does not match {encoding} (needs HxW'
            f'{"" if channels == 1 else f"x{channels}"})')
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageConversionError(f'array shape {array.shape} is empty')
    return array


def _native(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder('='))


def numpy_to_image(array: np.ndarray, encoding: str) -> ImageFields:
    """Encode an array as sensor_msgs/Image fields: little-endian, unpadded rows."""
    array = _check_array(array, encoding)
    height, width, channels = array.shape
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder('<'))
    return ImageFields(
        height=height, width=width, encoding=encoding, is_bigendian=0,
        step=width * channels * array.dtype.itemsize, data=little.tobytes())


def _compression_of(fmt: str) -> str:
    """'jpeg' or 'png' from an image_transport format string like 'rgb8; jpeg compressed bgr8'."""
    text = str(fmt).lower()
    if 'compresseddepth' in text:
        raise ImageConversionError(f'compressedDepth format {fmt!r} is not supported')
    if 'png' in text:
        return 'png'
    if 'jpeg' in text or 'jpg' in text:
        return 'jpeg'
    raise ImageConversionError(
        f'unsupported compressed format {fmt!r}; supported: {", ".join(_COMPRESSIONS)}')


def compressed_to_numpy(fmt: str, data: object) -> tuple[np.ndarray, str]:
    """Decode sensor_msgs/CompressedImage ``format`` and ``data`` with OpenCV.

    Returns ``(array, encoding)``: colour as ``(H, W, 3)`` uint8 'rgb8' (alpha dropped), grey as
    ``(H, W)`` uint8 'mono8' or uint16 'mono16'. An empty format string is decoded by content.
    """
    if str(fmt).strip():
        _compression_of(fmt)
    flat = _as_bytes(data)
    if flat.size == 0:
        raise ImageConversionError(f'compressed image ({fmt!r}) has no data')
    try:
        decoded = cv2.imdecode(flat, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageConversionError(f'cannot decode compressed image ({fmt!r}): {exc}') from exc
    if decoded is None or decoded.size == 0:
        raise ImageConversionError(
            f'cannot decode compressed image ({fmt!r}, {flat.size} bytes): corrupt data')
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[:, :, 0]
    if decoded.ndim == 2 and decoded.dtype in (np.uint8, np.uint16):
        return decoded, 'mono8' if decoded.dtype == np.uint8 else 'mono16'
    if decoded.ndim == 3 and decoded.dtype == np.uint8 and decoded.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        return cv2.cvtColor(decoded, code), 'rgb8'
    raise ImageConversionError(
        f'decoded image ({fmt!r}) has shape {decoded.shape} and dtype {decoded.dtype}; '
        'only 8-bit colour and 8/16-bit grey are supported')


def numpy_to_compressed(array: np.ndarray, encoding: str, fmt: str = 'jpeg',
                        jpeg_quality: int = 95, png_level: int = 3) -> tuple[str, bytes]:
    """Encode an array as sensor_msgs/CompressedImage ``(format, data)``.

    The format string is written as image_transport's compressed publisher writes it, e.g.
    'rgb8; jpeg compressed bgr8' or '16UC1; png compressed '. JPEG takes 8-bit encodings only;
    PNG also takes mono16/16UC1. Alpha is dropped, as image_transport does. 32FC1 is refused.
    """
    if fmt not in _COMPRESSIONS:
        raise ImageConversionError(
            f'unsupported compressed format {fmt!r}; supported: {", ".join(_COMPRESSIONS)}')
    array = _check_array(array, encoding)
    if encoding == '32FC1' or (fmt == 'jpeg' and encoding in ('mono16', '16UC1')):
        raise ImageConversionError(f'{fmt} cannot hold {encoding} images')
    if encoding in _GREY:
        image, target = _native(array[:, :, 0]), ''
    else:
        code = _TO_BGR[encoding]
        image = array if code is None else cv2.cvtColor(array, code)
        image, target = np.ascontiguousarray(image), 'bgr8'
    if fmt == 'jpeg':
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
    ok, buffer = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', image, params)
    if not ok:
        raise ImageConversionError(f'OpenCV could not encode a {encoding} image as {fmt}')
    return f'{encoding}; {fmt} compressed {target}', buffer.tobytes()


def as_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Return ``(H, W, 3)`` uint8 RGB from any 8-bit encoding.

    bgr8 and 8UC3 (taken as BGR) are reordered, alpha is dropped, mono8/8UC1 are replicated.
    16-bit and float encodings raise. An rgb8 input is returned as is when already contiguous.
    """
    array = _check_array(array, encoding)
    if encoding not in _TO_RGB:
        raise ImageConversionError(f'{encoding} cannot be shown as rgb8; use an 8-bit encoding')
    code = _TO_RGB[encoding]
    if code is None:
        return np.ascontiguousarray(array)
    image = array[:, :, 0] if array.shape[2] == 1 else array
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def as_thermal(array: np.ndarray, encoding: str,
               float_range: tuple[float, float] | None = None) -> np.ndarray:
    """Return a one-channel thermal image ``(H, W)`` uint8 or uint16.

    mono8/8UC1/mono16/16UC1 pass through. Colour encodings (a grey or false-colour thermal camera
    publishing 3 or 4 channels) become their luminance (equal channels give that same value).
    32FC1 (e.g. temperatures) needs ``float_range=(low, high)``: it is mapped linearly onto
    uint16 0..65535, clipped, with NaN as 0; without it 32FC1 raises.
    """
    array = _check_array(array, encoding)
    if encoding in _GREY:
        return _native(array[:, :, 0])
    if encoding == '32FC1':
        if float_range is None:
            raise ImageConversionError('32FC1 thermal needs float_range=(low, high) to map it')
        low, high = (float(v) for v in float_range)
        if not np.isfinite(low) or not np.isfinite(high) or high <= low:
            raise ImageConversionError(f'float_range {float_range!r} must be finite with low<high')
        scaled = (array[:, :, 0].astype(np.float64) - low) * (65535.0 / (high - low))
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=65535.0, neginf=0.0)
        return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)
    return cv2.cvtColor(as_rgb8(array, encoding), cv2.COLOR_RGB2GRAY)


def thermal_input(array: np.ndarray, encoding: str,
                  float_range: tuple[float, float] | None = None) -> np.ndarray:
    """The thermal image as the detector takes it, for the node and offline evaluation alike:
    ``as_thermal``, except that 32FC1 (mapped through ``float_range``) comes out as uint8, so a
    detector's 16-bit counts range (``thermal_counts_*``) never applies to it a second time."""
    thermal = as_thermal(array, encoding, float_range)
    return thermal_to_uint8(thermal) if encoding == '32FC1' else thermal


def thermal_to_uint8(thermal: np.ndarray,
                     counts_range: tuple[float, float] = (0.0, 65535.0)) -> np.ndarray:
    """uint8 ``HxW`` of a uint8 (unchanged) or uint16 thermal image, ``counts_range=(lo, hi)``
    mapped to 0..255 and clipped, as the runtime maps uint16 thermal to [0, 1]; the one
    16-to-8-bit thermal conversion (metrics, bags, 32FC1 input)."""
    if thermal.dtype == np.uint8:
        return thermal
    if thermal.dtype != np.uint16:
        raise ImageConversionError(f'thermal must be uint8 or uint16, got {thermal.dtype}')
    lo, hi = (float(v) for v in counts_range)
    unit = np.clip((thermal.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return np.round(unit * 255.0).astype(np.uint8)
