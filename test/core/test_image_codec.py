"""image_codec: sensor_msgs/Image and CompressedImage fields <-> numpy."""
from array import array as py_array

import cv2
import numpy as np
import pytest

from efficientmfd_ros.core.image_codec import (
    ENCODINGS,
    ImageConversionError,
    ImageFields,
    as_rgb8,
    as_thermal,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_compressed,
    numpy_to_image,
    thermal_input,
)


def _random_image(rng, encoding, height=5, width=7):
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype is np.float32:
        return rng.normal(20.0, 15.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _fields(fields):
    return (fields.height, fields.width, fields.encoding, fields.is_bigendian, fields.step,
            fields.data)


@pytest.mark.parametrize('encoding', list(ENCODINGS))
def test_round_trip_every_encoding(rng, encoding):
    image = _random_image(rng, encoding)
    fields = numpy_to_image(image, encoding)
    assert isinstance(fields, ImageFields)
    assert fields.is_bigendian == 0
    assert fields.step == 7 * image.itemsize * (image.shape[2] if image.ndim == 3 else 1)
    assert len(fields.data) == fields.height * fields.step
    back = image_to_numpy(*_fields(fields))
    assert back.dtype == image.dtype and back.shape == image.shape
    assert back.flags.c_contiguous and back.flags.writeable
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize('encoding', list(ENCODINGS))
def test_padded_step_every_encoding(rng, encoding):
    image = _random_image(rng, encoding, height=4, width=3)
    packed = numpy_to_image(image, encoding)
    pad = 6 if image.itemsize > 1 else 5
    rows = [packed.data[r * packed.step:(r + 1) * packed.step] + b'\xab' * pad
            for r in range(packed.height)]
    back = image_to_numpy(4, 3, encoding, 0, packed.step + pad, b''.join(rows))
    assert back.flags.c_contiguous
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize('encoding, wire', [('mono16', '>u2'), ('16UC1', '>u2'),
                                            ('32FC1', '>f4')])
@pytest.mark.parametrize('pad', [0, 4])
def test_big_endian_is_swapped_to_native(rng, encoding, wire, pad):
    image = _random_image(rng, encoding, height=3, width=4)
    step = 4 * image.itemsize + pad
    data = b''.join(row.astype(wire).tobytes() + b'\x00' * pad for row in image)
    back = image_to_numpy(3, 4, encoding, 1, step, data)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, image)
    little = image_to_numpy(3, 4, encoding, 0, step, data)
    assert not np.array_equal(little, image)


def test_byte_layout_matches_the_message_definition():
    assert image_to_numpy(1, 1, 'mono16', 0, 2, b'\x01\x02')[0, 0] == 0x0201
    assert image_to_numpy(1, 1, 'mono16', 1, 2, b'\x01\x02')[0, 0] == 0x0102
    rgb = image_to_numpy(1, 2, 'rgb8', 0, 6, bytes([1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(rgb, [[[1, 2, 3], [4, 5, 6]]])
    swapped = numpy_to_image(np.array([[0x0102]], dtype='>u2'), '16UC1')
    assert swapped.data == b'\x02\x01' and swapped.is_bigendian == 0


@pytest.mark.parametrize('wrap', [bytes, bytearray, memoryview, lambda b: py_array('B', b),
                                  lambda b: np.frombuffer(b, np.uint8), list])
def test_data_buffer_types(rng, wrap):
    image = _random_image(rng, 'rgb8')
    fields = numpy_to_image(image, 'rgb8')
    back = image_to_numpy(5, 7, 'rgb8', 0, fields.step, wrap(fields.data))
    np.testing.assert_array_equal(back, image)


def test_result_does_not_alias_the_message_buffer():
    data = bytearray(range(6))
    back = image_to_numpy(2, 3, 'mono8', 0, 3, data)
    data[0] = 99
    assert back[0, 0] == 0


@pytest.mark.parametrize('args, needle', [
    ((2, 2, 'yuv422', 0, 4, bytes(8)), 'unsupported encoding'),
    ((2, 2, 'rgb8', 0, 6, bytes(11)), 'data length 11'),
    ((2, 2, 'rgb8', 0, 6, bytes(13)), 'data length 13'),
    ((2, 2, 'mono16', 0, 3, bytes(6)), 'step 3'),
    ((0, 2, 'mono8', 0, 2, b''), 'empty'),
    ((2, 0, 'mono8', 0, 0, b''), 'empty'),
    ((1, 1, 'mono8', 0, 1, py_array('H', [1])), 'typecode'),
    ((1, 1, 'mono8', 0, 1, object()), 'not a buffer'),
])
def test_bad_image_fields_raise(args, needle):
    with pytest.raises(ImageConversionError, match=needle):
        image_to_numpy(*args)


def test_unknown_encoding_lists_supported():
    with pytest.raises(ImageConversionError, match='supported:.*rgb8.*32FC1'):
        image_to_numpy(1, 1, 'bayer_rggb8', 0, 1, b'\x00')


@pytest.mark.parametrize('array, encoding, needle', [
    (np.zeros((4, 4, 3), np.uint16), 'rgb8', 'dtype'),
    (np.zeros((4, 4), np.uint8), 'mono16', 'dtype'),
    (np.zeros((4, 4), np.float64), '32FC1', 'dtype'),
    (np.zeros((4, 4), np.uint8), 'rgb8', 'shape'),
    (np.zeros((4, 4, 3), np.uint8), 'mono8', 'shape'),
    (np.zeros((4, 4, 3), np.uint8), 'rgba8', 'shape'),
    (np.zeros((0, 4, 3), np.uint8), 'rgb8', 'empty'),
    ([[1, 2]], 'mono8', 'numpy array'),
    (np.zeros((4, 4), np.uint8), 'jpeg', 'unsupported encoding'),
])
def test_bad_arrays_raise(array, encoding, needle):
    with pytest.raises(ImageConversionError, match=needle):
        numpy_to_image(array, encoding)


def _smooth_rgb(height=32, width=48):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 5, y * 7, 255 - x * 5], axis=2).astype(np.uint8)


def test_jpeg_round_trip_keeps_rgb_order():
    image = _smooth_rgb()
    fmt, data = numpy_to_compressed(image, 'rgb8', 'jpeg')
    assert fmt == 'rgb8; jpeg compressed bgr8'
    decoded, encoding = compressed_to_numpy(fmt, data)
    assert encoding == 'rgb8' and decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 3
    from_bgr, _ = compressed_to_numpy(*numpy_to_compressed(image[:, :, ::-1], 'bgr8'))
    assert np.abs(from_bgr.astype(int) - image).mean() < 3


def test_jpeg_grey_and_plain_format_strings():
    grey = _smooth_rgb()[:, :, 0]
    fmt, data = numpy_to_compressed(grey, 'mono8', 'jpeg')
    assert fmt == 'mono8; jpeg compressed '
    for given in (fmt, 'jpeg', 'JPEG', ''):
        decoded, encoding = compressed_to_numpy(given, py_array('B', data))
        assert encoding == 'mono8' and decoded.shape == grey.shape
        assert np.abs(decoded.astype(int) - grey).mean() < 3


@pytest.mark.parametrize('encoding, expect', [
    ('rgb8', 'rgb8'), ('bgr8', 'rgb8'), ('8UC3', 'rgb8'), ('rgba8', 'rgb8'), ('bgra8', 'rgb8'),
    ('mono8', 'mono8'), ('8UC1', 'mono8'), ('mono16', 'mono16'), ('16UC1', 'mono16'),
])
def test_png_round_trip_is_lossless(rng, encoding, expect):
    image = _random_image(rng, encoding, height=6, width=9)
    fmt, data = numpy_to_compressed(image, encoding, 'png')
    suffix = 'bgr8' if image.ndim == 3 else ''
    assert fmt == f'{encoding}; png compressed {suffix}'
    decoded, got = compressed_to_numpy(fmt, data)
    assert got == expect
    np.testing.assert_array_equal(decoded, as_rgb8(image, encoding) if expect == 'rgb8' else image)


def test_sixteen_bit_png_keeps_full_range():
    image = np.array([[0, 1, 255, 256], [4095, 40000, 65534, 65535]], np.uint16)
    decoded, encoding = compressed_to_numpy('16UC1; png compressed ', numpy_to_compressed(
        image, '16UC1', 'png')[1])
    assert encoding == 'mono16' and decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize('fmt, data, needle', [
    ('jpeg', b'', 'no data'),
    ('jpeg', bytes(range(200)), 'corrupt'),
    ('png', b'\x89PNG\r\n\x1a\n' + bytes(50), 'corrupt'),
    ('tiff', b'II*\x00', 'unsupported compressed format'),
    ('16UC1; compressedDepth png', b'\x00' * 20, 'compressedDepth'),
])
def test_bad_compressed_input_raises(fmt, data, needle):
    with pytest.raises(ImageConversionError, match=needle):
        compressed_to_numpy(fmt, data)


@pytest.mark.parametrize('array, encoding, fmt, needle', [
    (np.zeros((4, 4), np.uint16), 'mono16', 'jpeg', 'cannot hold'),
    (np.zeros((4, 4), np.float32), '32FC1', 'png', 'cannot hold'),
    (np.zeros((4, 4), np.uint8), 'mono8', 'webp', 'unsupported compressed format'),
    (np.zeros((4, 4), np.uint8), 'rgb8', 'png', 'shape'),
])
def test_bad_compression_request_raises(array, encoding, fmt, needle):
    with pytest.raises(ImageConversionError, match=needle):
        numpy_to_compressed(array, encoding, fmt)


@pytest.mark.parametrize('encoding, pixel', [
    ('rgb8', [10, 20, 30]), ('bgr8', [30, 20, 10]), ('8UC3', [30, 20, 10]),
    ('rgba8', [10, 20, 30, 99]), ('bgra8', [30, 20, 10, 99]),
])
def test_as_rgb8_orders_channels(encoding, pixel):
    image = np.tile(np.array(pixel, np.uint8), (3, 4, 1))
    rgb = as_rgb8(image, encoding)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb[1, 2], [10, 20, 30])


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_as_rgb8_replicates_grey(encoding):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(as_rgb8(grey, encoding), np.repeat(grey[:, :, None], 3, 2))


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', '32FC1'])
def test_as_rgb8_refuses_wide_encodings(encoding):
    dtype = ENCODINGS[encoding][0]
    with pytest.raises(ImageConversionError, match='cannot be shown as rgb8'):
        as_rgb8(np.zeros((2, 2), dtype), encoding)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1', 'mono16', '16UC1'])
def test_as_thermal_passes_grey_through(rng, encoding):
    image = _random_image(rng, encoding)
    thermal = as_thermal(image, encoding)
    assert thermal.dtype == image.dtype and thermal.shape == image.shape
    np.testing.assert_array_equal(thermal, image)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', '8UC3', 'rgba8', 'bgra8'])
def test_as_thermal_keeps_grey_published_as_colour(rng, encoding):
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    channels = ENCODINGS[encoding][1]
    thermal = as_thermal(np.repeat(grey[:, :, None], channels, 2), encoding)
    assert thermal.shape == (5, 6) and thermal.dtype == np.uint8
    np.testing.assert_array_equal(thermal, grey)


def test_as_thermal_colour_uses_luminance():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    expected = cv2.cvtColor(red, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(as_thermal(red, 'rgb8'), expected)
    np.testing.assert_array_equal(as_thermal(red[:, :, ::-1].copy(), 'bgr8'), expected)


def test_as_thermal_float_needs_a_range():
    temps = np.array([[-10.0, 20.0], [50.0, np.nan]], np.float32)
    with pytest.raises(ImageConversionError, match='float_range'):
        as_thermal(temps, '32FC1')
    with pytest.raises(ImageConversionError, match='low<high'):
        as_thermal(temps, '32FC1', float_range=(5.0, 5.0))
    mapped = as_thermal(temps, '32FC1', float_range=(0.0, 40.0))
    assert mapped.dtype == np.uint16
    np.testing.assert_array_equal(mapped, [[0, 32768], [65535, 0]])


def test_thermal_input_gives_float_thermal_as_8_bits_and_passes_counts_on():
    temps = np.array([[-10.0, 20.0], [50.0, np.nan]], np.float32)
    mapped = thermal_input(temps, '32FC1', float_range=(0.0, 40.0))
    assert mapped.dtype == np.uint8
    np.testing.assert_array_equal(mapped, [[0, 128], [255, 0]])
    counts = np.array([[1000, 60000]], np.uint16)
    np.testing.assert_array_equal(thermal_input(counts, 'mono16', (0.0, 40.0)), counts)
    assert thermal_input(counts, 'mono16').dtype == np.uint16
    with pytest.raises(ImageConversionError, match='float_range'):
        thermal_input(temps, '32FC1')


@pytest.mark.data
def test_real_llvip_pair_survives_messages(llvip_person):
    visible = cv2.imread(str(llvip_person / 'visible' / '010001.jpg'), cv2.IMREAD_COLOR)
    infrared = cv2.imread(str(llvip_person / 'infrared' / '010001.jpg'), cv2.IMREAD_GRAYSCALE)
    visible = cv2.resize(visible, (160, 128))
    infrared = cv2.resize(infrared, (160, 128))
    rgb = image_to_numpy(*_fields(numpy_to_image(visible, 'bgr8')))
    np.testing.assert_array_equal(as_rgb8(rgb, 'bgr8'), visible[:, :, ::-1])
    wide = infrared.astype(np.uint16) * 257
    decoded, encoding = compressed_to_numpy(*numpy_to_compressed(wide, 'mono16', 'png'))
    np.testing.assert_array_equal(as_thermal(decoded, encoding), wide)
