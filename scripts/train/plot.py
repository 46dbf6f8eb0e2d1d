"""The loss curve of a training run as an SVG (no matplotlib on this machine; an SVG needs no library).

  /usr/bin/python3 scripts/train/plot.py [--log .train/run/log.jsonl] [--out models/demo/loss.svg]

Train loss (mean of each 10 steps) and held-out loss (a fixed sample of 24 windows of the held-out files) in nats per
token against training tokens.
"""
import argparse
import json


def nice_ticks(lo, hi, n=6):
    span = hi - lo
    step = 10 ** int(f"{span / n:e}".split("e")[1])
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    t = (int(lo / step) + (lo > 0)) * step if lo % step else lo
    out = []
    while t <= hi + 1e-9:
        out.append(t)
        t += step
    return out


def svg(train, val, title):
    W, H, L, R, T, B = 720, 420, 64, 20, 40, 50
    xs = [p[0] for p in train + val]
    ys = [p[1] for p in train + val]
    x0, x1 = 0, max(xs)
    y0, y1 = max(0.0, min(ys) - 0.2), min(max(ys), 8.0)
    px = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    py = lambda y: T + (1 - (min(y, y1) - y0) / (y1 - y0)) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for t in nice_ticks(y0, y1):
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x0, x1):
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{px(t):.1f}" y="{H - B + 16}" text-anchor="middle">{t / 1e6:g}M</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">training tokens</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">loss (nats / token)</text>')
    for pts, color, name, k in ((train, "#1f77b4", "train", 0), (val, "#d62728", "held-out sample", 1)):
        if pts:
            d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{1.5 + k}"/>')
        out.append(f'<line x1="{W - R - 150}" x2="{W - R - 125}" y1="{T + 18 + 18 * k}" y2="{T + 18 + 18 * k}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{W - R - 118}" y="{T + 22 + 18 * k}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", default=".train/run/log.jsonl")
    ap.add_argument("--out", default="models/demo/loss.svg")
    ap.add_argument("--title", default="webmoe demo model: DeepseekV3 MoE on the Python standard library")
    a = ap.parse_args()
    recs = [json.loads(l) for l in open(a.log) if l.strip()]
    train = [(r["tokens"], r["loss"]) for r in recs if "loss" in r]
    val = [(r["tokens"], r["val_loss"]) for r in recs if "val_loss" in r]
    with open(a.out, "w") as f:
        f.write(svg(train, val, a.title))
    print(f"plot: {len(train)} train points, {len(val)} held-out points -> {a.out}")


if __name__ == "__main__":
    main()
