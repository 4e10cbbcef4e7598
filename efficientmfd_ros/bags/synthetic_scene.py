"""A short RGB-thermal street sequence the project renders itself, with exact boxes.

Night street: a dim, textured RGB view (dark sky, buildings with a few lit windows, asphalt with
lane marks, sensor noise) and a registered thermal view in which people and engines are the warm,
bright things. Pedestrians walk and cars drive across at several depths; the renderer knows every
box. Deterministic from ``seed``: the same arguments always give the same pixels.
"""
from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ('person', 'car')


@dataclass
class SyntheticFrame:
    """``rgb`` (H,W,3) uint8 RGB, ``thermal`` (H,W) uint8, ``boxes`` (K,4) float32 xyxy pixels,
    ``labels`` K class names (only classes asked for), ``name`` a frame id."""

    name: str
    rgb: np.ndarray
    thermal: np.ndarray
    boxes: np.ndarray
    labels: list


@dataclass
class _Actor:
    kind: str
    x0: float  # centre x at frame 0, pixels
    speed: float  # pixels per frame
    depth: float  # 0 far .. 1 near; sets the ground line and the scale
    colour: tuple  # RGB at full brightness
    phase: float  # gait phase of pedestrians


def _background(width, height, rng):
    """Static (rgb float32 HxWx3 in [0,255], thermal float32 HxW) and the horizon row."""
    horizon = int(height * 0.45)
    rows = np.arange(height, dtype=np.float32)[:, None]
    rgb = np.zeros((height, width, 3), np.float32)
    thermal = np.zeros((height, width), np.float32)
    sky = rows[:horizon] / max(horizon, 1)
    rgb[:horizon] = np.stack([8 + 6 * sky, 10 + 8 * sky, 24 + 10 * sky], -1).repeat(width, 1)
    thermal[:horizon] = 25 + 10 * sky
    ground = (rows[horizon:] - horizon) / max(height - horizon, 1)
    rgb[horizon:] = (28 + 20 * ground)[..., None].repeat(width, 1).repeat(3, 2)
    thermal[horizon:] = (70 + 25 * ground).repeat(width, 1)
    x = 0
    while x < width:  # building facades along the horizon, some lit windows
        w = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(horizon // 5, horizon * 3 // 4))
        shade = float(rng.uniform(18, 34))
        rgb[top:horizon, x:x + w] = (shade, shade * 0.95, shade * 1.1)
        thermal[top:horizon, x:x + w] = float(rng.uniform(50, 65))
        for wy in range(top + 4, horizon - 6, 10):
            for wx in range(x + 3, x + w - 5, 8):
                if rng.random() < 0.25:
                    rgb[wy:wy + 5, wx:wx + 4] = (150, 130, 70)
                    thermal[wy:wy + 5, wx:wx + 4] += 8
        x += w + int(rng.integers(0, width // 20 + 1))
    lane = horizon + (height - horizon) * 2 // 3
    for x in range(0, width, 40):
        rgb[lane:lane + 3, x:x + 20] = (90, 90, 80)
        thermal[lane:lane + 3, x:x + 20] -= 6
    rgb += rng.normal(0, 4, rgb.shape).astype(np.float32)  # asphalt / facade texture
    thermal += rng.normal(0, 3, thermal.shape).astype(np.float32)
    return rgb, thermal, horizon


def _actors(width, rng, num_people, num_cars):
    actors = []
    for i in range(num_people + num_cars):
        kind = 'person' if i < num_people else 'car'
        speed = float(rng.uniform(1.0, 2.5) if kind == 'person' else rng.uniform(3.0, 6.0))
        colour = tuple(float(c) for c in rng.uniform(60, 230, 3))
        actors.append(_Actor(kind, float(rng.uniform(0, width)), speed * rng.choice([-1, 1]),
                             float(rng.uniform(0.1, 1.0)), colour, float(rng.uniform(0, 6.3))))
    return sorted(actors, key=lambda a: a.depth)  # far first, so near ones occlude them


def _draw_person(rgb, thermal, cx, foot, scale, actor, frame):
    height = 60 * scale
    width = height * 0.38
    head_r = max(1, int(height * 0.09))
    top = foot - height
    swing = np.sin(actor.phase + frame * 0.6) * width * 0.35
    dim = np.array(actor.colour) * 0.35  # unlit people are dark at night
    torso = (int(cx - width * 0.3), int(top + 2 * head_r), int(cx + width * 0.3),
             int(top + height * 0.58))
    cv2.rectangle(rgb, torso[:2], torso[2:], dim.tolist(), -1)
    cv2.rectangle(thermal, torso[:2], torso[2:], 205, -1)
    cv2.circle(rgb, (int(cx), int(top + head_r)), head_r, (70, 55, 45), -1)
    cv2.circle(thermal, (int(cx), int(top + head_r)), head_r, 235, -1)
    hip = (int(cx), int(top + height * 0.58))
    thick = max(1, int(width * 0.22))
    for sign in (-1, 1):
        leg_end = (int(cx + sign * swing), int(foot))
        cv2.line(rgb, hip, leg_end, (dim * 0.7).tolist(), thick)
        cv2.line(thermal, hip, leg_end, 185, thick)
    return cx - width / 2, top, cx + width / 2, foot


def _draw_car(rgb, thermal, cx, ground, scale, actor):
    length, height = 110 * scale, 42 * scale
    x0, x1, y1 = cx - length / 2, cx + length / 2, ground
    body_top = y1 - height * 0.6
    dim = (np.array(actor.colour) * 0.4).tolist()
    cv2.rectangle(rgb, (int(x0), int(body_top)), (int(x1), int(y1 - height * 0.12)), dim, -1)
    cv2.rectangle(thermal, (int(x0), int(body_top)), (int(x1), int(y1 - height * 0.12)), 120, -1)
    cabin = (int(x0 + length * 0.22), int(y1 - height), int(x1 - length * 0.2), int(body_top))
    cv2.rectangle(rgb, cabin[:2], cabin[2:], (25, 30, 40), -1)
    cv2.rectangle(thermal, cabin[:2], cabin[2:], 95, -1)
    front = x1 if actor.speed > 0 else x0
    engine = (int(min(front, cx)), int(body_top), int(max(front, cx)), int(y1 - height * 0.12))
    cv2.rectangle(thermal, engine[:2], engine[2:], 170, -1)
    lamp = (int(front - np.sign(actor.speed) * 3 * scale), int(body_top + height * 0.12))
    cv2.circle(rgb, lamp, max(1, int(5 * scale)), (250, 240, 180), -1)
    wheel_r = max(1, int(height * 0.16))
    for wx in (x0 + length * 0.2, x1 - length * 0.2):
        cv2.circle(rgb, (int(wx), int(y1 - wheel_r)), wheel_r, (12, 12, 12), -1)
        cv2.circle(thermal, (int(wx), int(y1 - wheel_r)), wheel_r, 150, -1)
    return x0, y1 - height, x1, y1


def render_sequence(num_frames=40, width=320, height=256, seed=0, class_names=KINDS,
                    num_people=4, num_cars=2, min_visible=0.5):
    """Render ``num_frames`` frames. Boxes are kept for actors whose class is in ``class_names``
    and whose box is at least ``min_visible`` inside the image (clipped to it)."""
    if num_frames < 1 or width < 32 or height < 32:
        raise ValueError(f'need num_frames >= 1 and a size of at least 32x32, got '
                         f'{num_frames} frames of {width}x{height}')
    rng = np.random.default_rng(seed)
    rgb_bg, thermal_bg, horizon = _background(width, height, rng)
    actors = _actors(width, rng, num_people, num_cars)
    span = width * 1.4  # actors wrap around a stretch wider than the view
    frames = []
    for index in range(num_frames):
        noise = np.random.default_rng([seed, index])
        rgb, thermal = rgb_bg.copy(), thermal_bg.copy()
        boxes, labels = [], []
        for actor in actors:
            ground = horizon + (height - horizon) * (0.15 + 0.8 * actor.depth)
            scale = (ground - horizon) / (height - horizon) * height / 200
            cx = (actor.x0 + actor.speed * index + width * 0.2) % span - width * 0.2
            if actor.kind == 'person':
                box = _draw_person(rgb, thermal, cx, ground, scale, actor, index)
            else:
                box = _draw_car(rgb, thermal, cx, ground, scale, actor)
            clipped = np.clip(box, 0, [width, height, width, height])
            area = (box[2] - box[0]) * (box[3] - box[1])
            kept = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
            if actor.kind in class_names and area > 0 and kept >= min_visible * area and \
                    clipped[2] - clipped[0] >= 3 and clipped[3] - clipped[1] >= 3:
                boxes.append(clipped)
                labels.append(actor.kind)
        rgb += noise.normal(0, 3, rgb.shape).astype(np.float32)
        thermal = cv2.GaussianBlur(thermal, (0, 0), 1.2)  # thermal optics are soft
        thermal += noise.normal(0, 2, thermal.shape).astype(np.float32)
        frames.append(SyntheticFrame(
            name=f'synthetic_{index:05d}',
            rgb=np.clip(rgb, 0, 255).astype(np.uint8),
            thermal=np.clip(thermal, 0, 255).astype(np.uint8),
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=labels))
    return frames
