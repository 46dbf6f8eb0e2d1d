"""Prints the markdown tables of docs/demo-model.md from .train/results/ (the outputs of run-all.sh).

  /usr/bin/python3 scripts/train/tables.py [--results .train/results]
"""
import argparse
import json
import os


def load(path):
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=".train/results")
    a = ap.parse_args()
    r = lambda name: os.path.join(a.results, name)
    t = load(r("torch.json"))
    rows = [("our torch model, float32 weights", "torch (f64 log-softmax)", t["torch_f32"]["bits_per_byte"], None)]
    for k, v in t.items():
        if k.startswith("torch_weights_of:"):
            what = "BF16" if "bf16" in k else "FP8"
            rows.append((f"{what} export's weights in our torch model", "torch", v["bits_per_byte"], None))
    for name, what, backend in (("webmoe-bf16-webgpu.json", "BF16 export", "webmoe webgpu (lavapipe)"),
                                ("webmoe-fp8-cpu.json", "FP8 export (models/demo)", "webmoe cpu (reference)"),
                                ("webmoe-fp8-webgpu.json", "FP8 export (models/demo)", "webmoe webgpu (lavapipe)")):
        if os.path.exists(r(name)):
            try:
                w = load(r(name))
                rows.append((what, backend, w["bits_per_byte"], w))
            except (ValueError, IndexError, KeyError):
                rows.append((what, backend, None, None))
    base = t["torch_f32"]["bits_per_byte"]
    print("| weights | run by | bits per byte | vs torch f32 |")
    print("|---|---|---|---|")
    for what, by, bpb, _ in rows:
        cell = f"{bpb:.5f}" if bpb is not None else "not run"
        rel = f"{(bpb / base - 1) * 100:+.3f} %" if bpb is not None else ""
        print(f"| {what} | {by} | {cell} | {rel} |")
    print(f"| byte-level bigram, fitted on the training files (add-0.5) | numpy | {t['bigram_bits_per_byte']:.4f} | |")
    print(f"| gzip -9, each file on its own | Python's gzip | {t['gzip9_bits_per_byte']:.4f} | |")
    print()
    print(f"tokens scored: {t.get('tokens')}, bytes: {t['bytes']}, files: {t['files']}")
    for _, by, _, w in rows:
        if w:
            print(by, json.dumps(w))
    print()
    if "routing" in t:
        print("| MoE layer | max/mean load | unused experts | reuse by the next token | top-quarter share |")
        print("|---|---|---|---|---|")
        for s in t["routing"]["stats"]:
            print(f"| {s['layer']} | {s['maxOverMean']:.2f} | {s['unused']} | {s['reuse']:.3f} | {s['topQuarterShare']:.3f} |")
        print(f"\nrouted tokens: {t['routing']['tokens']}")


if __name__ == "__main__":
    main()
