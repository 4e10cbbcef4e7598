"""Scoring: a paired dataset or a bag (offline, or live through the real node), COCO and fusion
metrics, the HTML report and the drawings it shows."""
