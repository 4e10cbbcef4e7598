"""Soak efficientmfd_node: 30 Hz RGB + thermal pairs at 640x512 for a long time (default 10 min).

./dev run python benchmarks/soak_node.py [--minutes 10] [--model PATH] [--backend torch]

Reports pairs sent, processed (detections received), dropped (sent - processed: pairs superseded
while the model was busy, plus any lost), end-to-end latency p50/p95 (publishing the pair ->
receiving its detections, same host), and the node's resident memory after warm-up and at the end,
sampled along the way, so growth beyond noise shows. Writes benchmarks/results/soak_node.json.
"""
import argparse
import json
from pathlib import Path
import platform
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))

import node_rig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=10.0, help='soak duration')
    parser.add_argument('--warmup', type=float, default=10.0, help='seconds fed before RSS start')
    parser.add_argument('--rate', type=float, default=30.0, help='pairs per second')
    parser.add_argument('--size', default='640x512', help='image WxH')
    parser.add_argument('--model', help='checkpoint (default: committed lite, else random lite)')
    parser.add_argument('--backend', default='torch')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--sample-s', type=float, default=30.0, help='RSS sampling period')
    parser.add_argument('--out', default=str(RESULTS / 'soak_node.json'))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split('x'))
    duration = args.minutes * 60.0
    rss = []
    with node_rig.temp_dir() as tmp:
        model, model_text = ((Path(args.model), args.model) if args.model
                             else node_rig.default_model(tmp))
        pairs = node_rig.frames(size)
        params = dict(model_path=str(model), backend=args.backend, device=args.device)
        node = node_rig.NodeProcess(params, args.warmup + duration + 300, Path(tmp) / 'node.log')
        client = None
        try:
            node.wait_active()
            pid = node.pid
            client = node_rig.Client()
            client.wait_matched()
            client.run(pairs, args.rate, args.warmup)
            start = time.monotonic()
            rss.append((0.0, node_rig.rss_mib(pid)))
            every = max(1, int(args.sample_s * args.rate))

            def sample(count):
                if count % every == 0:
                    rss.append((round(time.monotonic() - start, 1), node_rig.rss_mib(pid)))
            client.feed.sent_at.clear()
            client.feed.latency_s.clear()
            sent = client.run(pairs, args.rate, duration, t0=100000.0, tick=sample)
            time.sleep(2.0)
            rss.append((round(time.monotonic() - start, 1), node_rig.rss_mib(pid)))
            inference = client.latest_status('inference')
            inputs = client.latest_status('inputs')
            latency = dict(client.feed.latency_s)
            alive = node.proc.poll() is None
        finally:
            if client is not None:
                client.close()
            node.stop()
    p50, p95 = node_rig.percentiles_ms(latency.values())
    processed = len(latency)
    report = {
        'what': 'efficientmfd_node soak: 30 Hz pairs over real DDS, node in its own process',
        'machine': f'{platform.processor() or platform.machine()}, {platform.node()}',
        'model': model_text, 'backend': args.backend, 'device': args.device,
        'image_size': args.size, 'rate_hz': args.rate, 'minutes': args.minutes,
        'pairs_sent': sent, 'pairs_processed': processed, 'pairs_dropped': sent - processed,
        'node_superseded_total': int(inputs.get('superseded_pairs', -1)),
        'node_unmatched': [int(inputs.get('rgb_unmatched', -1)),
                           int(inputs.get('thermal_unmatched', -1))],
        'end_to_end_latency_ms_p50': p50, 'end_to_end_latency_ms_p95': p95,
        'model_ms_p50': float(inference.get('inference_latency_p50_ms', 'nan')),
        'rss_mib_start': rss[0][1], 'rss_mib_end': rss[-1][1],
        'rss_mib_samples': rss, 'node_alive_at_end': alive,
    }
    text = json.dumps(report, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
