"""Checks our torch model against webmoe's CPU reference on the exported weights (logits agreement).

  /usr/bin/python3 scripts/train/check.py --run .train/run --model .train/bf16 [--tokens 48]

The torch model is loaded with the export's weights (BF16-rounded, or for an FP8 folder dequantised E4M3 x block
scale), run over the first --tokens tokens of a held-out file (BOS first), and compared with
`webmoe logits --backend cpu` on the same ids: max |diff|, max |diff| / max |logit|, argmax agreement, and the
selected experts of every MoE layer (webmoe's taps vs ours).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
from model import DeepseekV3  # noqa: E402

E4M3 = None


def e4m3_table():
    out = np.zeros(256, dtype=np.float32)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e, m = (b >> 3) & 0xF, b & 7
        if e == 15 and m == 7:
            out[b] = np.nan
        elif e == 0:
            out[b] = s * m / 8 * 2.0 ** -6
        else:
            out[b] = s * (1 + m / 8) * 2.0 ** (e - 7)
    return out


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        raw = data[a:b]
        if h["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16).float()
        elif h["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.float32).copy())
        elif h["dtype"] == "F8_E4M3":
            t = torch.from_numpy(e4m3_table()[np.frombuffer(raw, dtype=np.uint8)])
        else:
            raise ValueError(h["dtype"])
        out[name] = t.reshape(h["shape"])
    return out


def load_export(folder):
    """The export's weights as f32 torch tensors in HF names (FP8 dequantised with its 128x128 block scales)."""
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    for name in [n for n in w if n.endswith(".weight_scale_inv")]:
        s = w.pop(name)
        base = name[: -len("_scale_inv")]
        q = w[base]
        full = s.repeat_interleave(128, 0).repeat_interleave(128, 1)[: q.shape[0], : q.shape[1]]
        w[base] = q * full
    return w


def torch_model_from_export(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    cfg.pop("quantization_config", None)
    model = DeepseekV3(cfg)
    w = load_export(folder)
    state = model.state_dict()
    for name in list(state):
        if name.endswith((".w_gate", ".w_up", ".w_down")):
            prefix, kind = name.rsplit(".", 1)
            proj = {"w_gate": "gate_proj", "w_up": "up_proj", "w_down": "down_proj"}[kind]
            state[name] = torch.stack([w.pop(f"{prefix}.experts.{e}.{proj}.weight") for e in range(state[name].shape[0])])
        else:
            state[name] = w.pop(name)
    if w:
        raise SystemExit(f"check: tensors not used: {sorted(w)[:5]}")
    model.load_state_dict(state)
    return model.eval(), cfg


def load_tokenizer(folder):
    tok = json.load(open(os.path.join(folder, "tokenizer.json")))
    inv = tok["model"]["vocab"]
    return bpe.Encoder([(inv[a], inv[b]) for a, b in tok["model"]["merges"]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=".train/bf16")
    ap.add_argument("--data", default=".train")
    ap.add_argument("--tokens", type=int, default=48)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, cfg = torch_model_from_export(a.model)
    root = json.load(open(os.path.join(a.data, "prepare.json")))["root"]
    rel = open(os.path.join(a.data, "heldout.txt")).read().split()[0]
    ids = load_tokenizer(a.model).encode(open(os.path.join(root, rel), encoding="utf-8").read())[: a.tokens]
    with torch.no_grad():
        ours = model(torch.tensor([ids])).double()[0].numpy()
        our_ids = [m.last_ids.numpy() for m in model.moe_layers()]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.npy")
        taps = os.path.join(tmp, "taps.safetensors")
        subprocess.run(["node", "bin/webmoe.js", "logits", "--model", a.model, "--backend", "cpu", "--tokens", ",".join(map(str, ids)), "--out", out, "--taps", taps], check=True)
        theirs = np.load(out).astype(np.float64)
        with open(taps, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
    diff = np.abs(ours - theirs)
    moe_layers = [i for i, l in enumerate(model.model.layers) if l.is_moe]
    same_experts = []
    for i, mine in zip(moe_layers, our_ids):
        h = header[f"layers.{i}.moe.topk_idx"]
        a0, b0 = h["data_offsets"]
        t = np.frombuffer(data[a0:b0], dtype=np.int64).reshape(h["shape"])
        same_experts.append(float(np.mean(np.sort(t, 1) == np.sort(mine, 1))))
    res = {
        "model": a.model,
        "tokens": len(ids),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(diff.max() / np.abs(theirs).max()),
        "argmax_agree": float(np.mean(ours.argmax(-1) == theirs.argmax(-1))),
        "same_experts_per_moe_layer": same_experts,
    }
    print("check:", json.dumps(res))


if __name__ == "__main__":
    main()
