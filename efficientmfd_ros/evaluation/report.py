"""report.html of a bag evaluation: one self-contained file (inline PNGs, inline CSS, no scripts).

Sections: summary table, per-class AP, precision-recall curve per class (IoU 0.5), latency
histogram and timeline, a strip of annotated frames (ground truth green, predictions orange),
and the best and worst frames by per-frame F1.
"""
import base64
import html
import io

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402

from efficientmfd_ros.evaluation.drawing import annotate  # noqa: E402

FRAME_WIDTH = 320  # pixels of the annotated frames in the page
STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;
max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#667;font-size:13px}table{border-collapse:collapse;font-size:14px;margin:8px 0}
td,th{border:1px solid #d5d8de;padding:4px 10px;text-align:left}th{background:#f1f3f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.strip{display:flex;flex-wrap:wrap;gap:8px}.strip figure{margin:0;width:320px}
.strip img{width:320px;border:1px solid #ccc}figcaption{font-size:12px;color:#445}
.legend span{display:inline-block;padding:1px 8px;margin-right:8px;font-size:12px}
.plots img{max-width:100%}.note{font-size:13px;color:#445;max-width:900px}
"""


def _png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=90, bbox_inches='tight')
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode('ascii')


def _img(b64, alt, mime='png'):
    return f'<img alt="{html.escape(alt)}" src="data:image/{mime};base64,{b64}">'


def _fmt(value, digits=3):
    if value is None:
        return '–'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return html.escape(str(value))


def _table(rows, header=None):
    out = ['<table>']
    if header:
        out.append('<tr>' + ''.join(f'<th>{html.escape(h)}</th>' for h in header) + '</tr>')
    for row in rows:
        cells = [f'<th>{html.escape(str(row[0]))}</th>'] + [
            f'<td class="num">{_fmt(v)}</td>' for v in row[1:]]
        out.append('<tr>' + ''.join(cells) + '</tr>')
    return '\n'.join(out + ['</table>'])


def pr_plot(curves):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, curve in curves.items():
        precision = np.asarray(curve['precision'], float)
        ax.plot(curve['recall'], np.where(precision < 0, 0, precision), label=name)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title('precision-recall at IoU 0.5')
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc='lower left')
    return _png(fig)


def latency_plots(records, what, unanswered=()):
    """Histogram and timeline of ``records``' latency; ``unanswered`` stamps (ns) are marked
    along the timeline's time axis."""
    stamps = np.array([r.stamp_ns for r in records], np.float64)
    values = np.array([r.latency_ms for r in records], np.float64)
    origin = min([*stamps, *unanswered]) if len(stamps) or len(unanswered) else 0.0
    fig, (hist, line) = plt.subplots(1, 2, figsize=(11, 3.6))
    hist.hist(values, bins=min(40, max(5, len(values) // 2)), color='#3b73b9')
    hist.set_xlabel('latency (ms)')
    hist.set_ylabel('pairs')
    hist.set_title(f'latency histogram ({what})')
    line.plot((stamps - origin) / 1e9, values, '.-', ms=3, color='#3b73b9', label='answered')
    if len(unanswered):
        line.plot((np.asarray(unanswered, np.float64) - origin) / 1e9,
                  np.zeros(len(unanswered)), 'x', color='#d62728', label='no answer (dropped)')
        line.legend(loc='upper left', fontsize=8)
    line.set_xlabel('bag time (s)')
    line.set_ylabel('latency (ms)')
    line.set_title('latency over the bag')
    for ax in (hist, line):
        ax.grid(alpha=0.3)
    return _png(fig)


def _frame_figure(record, collector, caption):
    thumb = cv2.imdecode(np.frombuffer(record.thumb, np.uint8), cv2.IMREAD_COLOR)
    thumb = cv2.cvtColor(thumb, cv2.COLOR_BGR2RGB)
    scale = record.thumb_scale
    if thumb.shape[1] < FRAME_WIDTH:  # small frames: enlarge so the labels stay readable
        factor = FRAME_WIDTH / thumb.shape[1]
        thumb = cv2.resize(thumb, (FRAME_WIDTH, round(thumb.shape[0] * factor)),
                           interpolation=cv2.INTER_LINEAR)
        scale *= factor
    gt = collector.gt.frames.get(record.stamp_ns)
    image = annotate(thumb, None if gt is None else (gt[0] * scale, collector.names(gt[1])),
                     (record.boxes * scale, collector.names(record.labels), record.scores))
    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 88])
    b64 = base64.b64encode(jpeg.tobytes()).decode('ascii')
    return (f'<figure>{_img(b64, caption, "jpeg")}<figcaption>{html.escape(caption)}'
            '</figcaption></figure>')


def _caption(record, first_ns):
    f1 = '' if record.f1 is None else f', F1 {record.f1:.2f}'
    return f't = {(record.stamp_ns - first_ns) / 1e9:.2f} s, {len(record.labels)} detections{f1}'


def frame_sections(collector, strip=8, extremes=3):
    records = [collector.records[s] for s in sorted(collector.records)]
    if not records:
        return '<p>No pair was processed: there are no frames to show.</p>'
    first = records[0].stamp_ns

    def figures(chosen):
        return [_frame_figure(r, collector, _caption(r, first)) for r in chosen]

    picks = np.unique(np.linspace(0, len(records) - 1, min(strip, len(records))).astype(int))
    parts = ['<h2>Annotated fused frames</h2>',
             '<p class="legend"><span style="background:#28dc5a">ground truth</span>'
             '<span style="background:#ff8c14">prediction, score</span></p>',
             '<div class="strip">', *figures(records[i] for i in picks), '</div>']
    scored = sorted((r for r in records if r.f1 is not None), key=lambda r: (r.f1, r.stamp_ns))
    if scored:
        parts += ['<h2>Best frames</h2><div class="strip">', *figures(scored[::-1][:extremes]),
                  '</div><h2>Worst frames</h2><div class="strip">',
                  *figures(scored[:extremes]), '</div>']
    return '\n'.join(parts)


def summary_rows(metrics):
    lat = metrics.get('latency_ms') or {}
    unpaired = metrics.get('unpaired') or {}
    rows = [('mAP@0.5', metrics.get('map50')), ('mAP@0.5:0.95', metrics.get('map50_95'))]
    rows += [(f'fusion {k.upper()}', metrics.get(k)) for k in ('en', 'mi', 'vif', 'qabf', 'ssim')]
    rows += [('pairs total (RGB frames)', metrics.get('pairs_total')),
             ('pairs matched (answered)', metrics.get('pairs_matched')),
             ('pairs dropped', metrics.get('pairs_dropped')),
             ('RGB frames without a thermal partner', unpaired.get('rgb')),
             ('thermal frames without an RGB partner', unpaired.get('thermal')),
             ('latency p50 (ms)', lat.get('p50')), ('latency p95 (ms)', lat.get('p95')),
             ('latency max (ms)', lat.get('max'))]
    if metrics.get('output_rate_hz') is not None:
        rows.append(('output rate (Hz)', metrics['output_rate_hz']))
    return rows


def write_report(path, metrics, collector, coco):
    """Write the HTML report for ``metrics`` (the metrics.json dict), the ``RunCollector`` and
    the COCO result (or None without ground truth)."""
    records = [collector.records[s] for s in sorted(collector.records)]
    unanswered = sorted(set(collector.gt.frames) - set(collector.records))
    title = f'EfficientMFD bag evaluation — {metrics.get("mode", "")}'
    head = (f'<p class="sub">bag <code>{html.escape(str(metrics.get("bag")))}</code> · model '
            f'<code>{html.escape(str(metrics.get("model")))}</code> · '
            f'{html.escape(str(metrics.get("backend")))} on '
            f'{html.escape(str(metrics.get("device")))}</p>')
    body = [f'<h1>{html.escape(title)}</h1>', head, '<h2>Summary</h2>',
            _table(summary_rows(metrics), ['metric', 'value'])]
    if coco is not None:
        rows = [(name, c['ap50'], c['ap50_95'], c['num_gt'], c['num_pred'])
                for name, c in coco['per_class'].items()]
        body += ['<h2>Per class</h2>', _table(rows, ['class', 'AP@0.5', 'AP@0.5:0.95',
                                                     'ground truth', 'predictions']),
                 f'<div class="plots">{_img(pr_plot(coco["pr_curve_iou50"]), "PR curves")}</div>']
    else:
        body.append('<p>No ground truth: detection accuracy is not scored.</p>')
    if records:
        plot = latency_plots(records, metrics['mode'], unanswered)
        body += ['<h2>Latency</h2>', f'<p class="note">{html.escape(metrics["latency_what"])}</p>',
                 f'<div class="plots">{_img(plot, "latency")}</div>']
    body.append(frame_sections(collector))
    body.append(f'<h2>Notes</h2><p class="note">{html.escape(metrics.get("notes", ""))}</p>')
    page = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>'
            + '\n'.join(body) + '</body></html>')
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(page)
    return path
