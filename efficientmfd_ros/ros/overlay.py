"""The debug image: boxes, class names and scores drawn on the fused (or RGB) image with OpenCV."""
import cv2
import numpy as np

# one colour per class index, cycling; saturated so it shows on thermal-looking fused images
_PALETTE = ((255, 56, 56), (56, 255, 56), (56, 140, 255), (255, 210, 40), (230, 60, 255),
            (40, 230, 230), (255, 140, 40), (160, 255, 120))


def draw_detections(image, detections, class_names):
    """A copy of ``image`` (H,W,3 uint8 RGB) with each box of ``detections`` drawn.

    ``detections.boxes`` (K,4) xyxy pixels of that same image; labels read ``name score``.
    """
    canvas = np.array(image, dtype=np.uint8, copy=True, order='C')
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 320))
    scale = max(0.4, min(height, width) / 1000.0)
    for box, score, label in zip(detections.boxes.tolist(), detections.scores.tolist(),
                                 detections.labels.tolist()):
        colour = _PALETTE[int(label) % len(_PALETTE)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f'{name} {score:.2f}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1 - th - base, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw, top + th + base), colour, -1)
        cv2.putText(canvas, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return canvas
