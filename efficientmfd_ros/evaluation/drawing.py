"""Annotated frames for reports, videos and bag renders: ground truth and predictions apart.

Images are (H,W,3) uint8 RGB; boxes ``xyxy`` float pixels of that image. Ground truth is drawn in
green, predictions in orange with ``name score``; the colours are fixed so every picture the tools
make reads the same way.
"""
import cv2
import numpy as np

GT_COLOUR = (40, 220, 90)
PRED_COLOUR = (255, 140, 20)


def _style(image):
    side = min(image.shape[:2])
    return max(1, round(side / 300)), max(0.35, side / 900.0)


def _label(canvas, text, x, y, colour, scale, thickness, below=False):
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = y if below else max(y - th - base, 0)
    cv2.rectangle(canvas, (x, top), (x + tw, top + th + base), colour, -1)
    cv2.putText(canvas, text, (x, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)


def draw_boxes(image, boxes, names, colour, scores=None, below=False):
    """Draw ``boxes`` (K,4) on a copy of ``image``; ``names`` K strings, ``scores`` (K,) or None.

    ``below`` puts the label inside the box top (used for ground truth so the two labels of a
    well-matched pair do not overlap).
    """
    canvas = np.array(image, dtype=np.uint8, copy=True, order='C')
    thickness, scale = _style(canvas)
    for k, box in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        text = str(names[k]) if scores is None else f'{names[k]} {float(scores[k]):.2f}'
        if text:
            _label(canvas, text, x1, y1 + (thickness if below else 0), colour, scale, thickness,
                   below)
    return canvas


def annotate(image, gt=None, pred=None, caption=''):
    """``image`` with ``gt`` = (boxes, names) and ``pred`` = (boxes, names, scores) drawn, and a
    caption bar along the bottom."""
    canvas = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if gt is not None:
        canvas = draw_boxes(canvas, gt[0], gt[1], GT_COLOUR, below=True)
    if pred is not None:
        canvas = draw_boxes(canvas, pred[0], pred[1], PRED_COLOUR, scores=pred[2])
    if caption:
        canvas = np.array(canvas, copy=True)
        thickness, scale = _style(canvas)
        (_, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(canvas, (0, canvas.shape[0] - th - base - 4), (canvas.shape[1],
                      canvas.shape[0]), (0, 0, 0), -1)
        cv2.putText(canvas, caption, (3, canvas.shape[0] - base - 2), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def fit_width(image, width):
    """Scale ``image`` to ``width`` pixels wide (no change when it already is); returns
    ``(image, factor)`` so boxes can follow."""
    if image.shape[1] == width:
        return image, 1.0
    factor = width / image.shape[1]
    size = (width, max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


class VideoSink:
    """MP4 (mp4v) writer of RGB frames; frames of another size are resized to the first's."""

    def __init__(self, path, fps):
        self.path, self.fps = str(path), float(fps)
        self._writer, self._size = None, None
        self.frames = 0

    def add(self, image):
        if self._writer is None:
            self._size = (image.shape[1] - image.shape[1] % 2, image.shape[0] - image.shape[0] % 2)
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*'mp4v'), self.fps,
                                           self._size)
            if not self._writer.isOpened():
                raise OSError(f'OpenCV cannot open an mp4v video at {self.path}')
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
