"""Step 5 (torch side of the quality table): bits per byte on the evaluation set, and the baselines.

  /usr/bin/python3 scripts/train/evaluate.py [--run .train/run] [--data .train] [--export DIR ...] [--eval-dir .train/eval]

- writes the evaluation set (corpus.eval_set: held-out files <= 24 KiB) to --eval-dir, keeping relative paths, and
  its list to --list (models/demo/heldout.txt), so `webmoe eval --text .train/eval` reads the same files;
- torch float32 bits per byte of the trained weights (RUN/model.pt) under webmoe eval's pinned protocol (each
  file on its own with BOS first, windows of ctx = max_position_embeddings at stride ctx/2, each token scored once);
  with --export DIR also of an exported folder's weights (BF16 rounded, or FP8 dequantised) in torch;
- a byte-level bigram model fitted on the training files (add-0.5 smoothing; the first byte of a file is
  conditioned on "\\n") and gzip -9 (each file compressed on its own), on the same files.
Prints one JSON object.
"""
import argparse
import gzip
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
from check import load_tokenizer, torch_model_from_export  # noqa: E402
from model import DeepseekV3  # noqa: E402


def windows(T, ctx, stride):
    """Same as src/cli/eval.ts evalWindows: (start, end, first scored index)."""
    out, scored, start = [], 1, 0
    while scored < T:
        end = min(start + ctx, T)
        out.append((start, end, scored))
        scored = end
        start += stride
    return out


@torch.no_grad()
def model_nll(model, enc, texts, ctx, stride):
    nll, tokens = 0.0, 0
    for text in texts:
        ids = enc.encode(text, bos=True)
        for s, e, f in windows(len(ids), ctx, stride):
            logits = model(torch.tensor([ids[s:e]])).double()[0]  # [W, V]
            lp = logits.log_softmax(-1)
            tgt = torch.tensor(ids[f:e])
            nll -= lp[f - 1 - s:e - 1 - s].gather(1, tgt[:, None]).sum().item()
            tokens += e - f
    return nll, tokens


def bigram_bits(train_texts, texts):
    counts = np.zeros((256, 256), dtype=np.float64)
    for t in train_texts:
        b = np.frombuffer(b"\n" + t.encode("utf-8"), dtype=np.uint8)
        np.add.at(counts, (b[:-1], b[1:]), 1)
    p = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    bits = 0.0
    for t in texts:
        b = np.frombuffer(b"\n" + t.encode("utf-8"), dtype=np.uint8)
        bits -= np.log2(p[b[:-1], b[1:]]).sum()
    return bits


@torch.no_grad()
def routing_trace(model, enc, texts, ctx):
    """[N][L][K] experts per token in text order: each file with BOS, consecutive windows of ctx from position 0
    (the layout of scripts/train/routing.ts)."""
    tokens = []
    for text in texts:
        ids = enc.encode(text, bos=True)
        for s in range(0, len(ids), ctx):
            model(torch.tensor([ids[s:s + ctx]]))
            per = [m.last_ids.tolist() for m in model.moe_layers()]  # L x [W, K], by descending biased score
            tokens.extend([list(x) for x in zip(*per)])
    return tokens


def trace_stats(tokens, E, layers):
    """Same as src/offload/traces.ts traceStats."""
    out = []
    K = len(tokens[0][0])
    for l, layer in enumerate(layers):
        load = np.zeros(E)
        again = pairs = 0
        for i, tok in enumerate(tokens):
            for e in tok[l]:
                load[e] += 1
            if i > 0:
                prev = set(tokens[i - 1][l])
                again += sum(e in prev for e in tok[l])
                pairs += K
        srt = np.sort(load)[::-1]
        total = len(tokens) * K
        q = max(1, round(E / 4))
        out.append({"layer": layer, "reuse": again / pairs, "topQuarterShare": srt[:q].sum() / total,
                    "maxOverMean": srt[0] / (total / E), "unused": int((load == 0).sum())})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=".train/run")
    ap.add_argument("--data", default=".train")
    ap.add_argument("--export", action="append", default=[])
    ap.add_argument("--eval-dir", default=".train/eval")
    ap.add_argument("--list", default="models/demo/heldout.txt")
    ap.add_argument("--no-model", action="store_true", help="baselines only")
    ap.add_argument("--routing", default=None, help="an export folder: routing stats of its weights on the set")
    ap.add_argument("--trace", default=None, help="with --routing: write the webmoe-routing/1 trace here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    prep = json.load(open(os.path.join(a.data, "prepare.json")))
    train, held = corpus.split(corpus.list_files(prep["root"]))
    ev = corpus.eval_set(held)
    for rel, text in ev:
        path = os.path.join(a.eval_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    os.makedirs(os.path.dirname(a.list) or ".", exist_ok=True)
    with open(a.list, "w") as f:
        f.write("".join(rel + "\n" for rel, _ in ev))
    texts = [t for _, t in ev]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    gz = sum(len(gzip.compress(t.encode("utf-8"), 9)) for t in texts) * 8
    res = {
        "files": len(texts),
        "bytes": nbytes,
        "bigram_bits_per_byte": bigram_bits([t for _, t in train], texts) / nbytes,
        "gzip9_bits_per_byte": gz / nbytes,
    }
    if not a.no_model:
        ck = torch.load(os.path.join(a.run, "model.pt"), map_location="cpu")
        cfg = ck["config"]
        model = DeepseekV3(cfg)
        model.load_state_dict(ck["state"])
        model.eval()
        ctx = cfg["max_position_embeddings"]
        enc = load_tokenizer(a.data)
        nll, tokens = model_nll(model, enc, texts, ctx, ctx // 2)
        res.update({"ctx": ctx, "stride": ctx // 2, "tokens": tokens, "torch_f32": {"nll_nats": nll, "bits_per_byte": nll / math.log(2) / nbytes}})
        for folder in a.export:
            m, _ = torch_model_from_export(folder)
            nll, _ = model_nll(m, enc, texts, ctx, ctx // 2)
            res[f"torch_weights_of:{folder}"] = {"nll_nats": nll, "bits_per_byte": nll / math.log(2) / nbytes}
    if a.routing:
        m, cfg = torch_model_from_export(a.routing)
        layers = [i for i, l in enumerate(m.model.layers) if l.is_moe]
        toks = routing_trace(m, load_tokenizer(a.data), texts, cfg["max_position_embeddings"])
        res["routing"] = {"tokens": len(toks), "stats": trace_stats(toks, cfg["n_routed_experts"], layers)}
        if a.trace:
            with open(a.trace, "w") as f:
                json.dump({"format": "webmoe-routing/1", "experts": cfg["n_routed_experts"], "topK": cfg["num_experts_per_tok"], "layers": layers, "tokens": toks}, f, separators=(",", ":"))
                f.write("\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
