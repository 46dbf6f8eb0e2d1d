"""Step 3: export the trained model as an HF DeepseekV3ForCausalLM checkpoint in BF16.

  /usr/bin/python3 scripts/train/export.py [--run .train/run] [--data .train] [--out .train/bf16]

Writes config.json (no quantization_config: BF16 linears), model.safetensors (every weight BF16 but the router's
e_score_correction_bias, F32), tokenizer.json, tokenizer_config.json, generation_config.json. Routed experts,
trained stacked, are split into model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight.
Then `npx tsx scripts/train/to-fp8.ts .train/bf16 models/demo` makes the committed block-FP8 checkpoint.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def hf_tensors(state):
    """(name, tensor f32) in HF names, experts split."""
    out = []
    for name, t in state.items():
        if name.endswith(".w_gate") or name.endswith(".w_up") or name.endswith(".w_down"):
            prefix, kind = name.rsplit(".", 1)
            proj = {"w_gate": "gate_proj", "w_up": "up_proj", "w_down": "down_proj"}[kind]
            for e in range(t.shape[0]):
                out.append((f"{prefix}.experts.{e}.{proj}.weight", t[e]))
        else:
            out.append((name, t))
    return out


def write_safetensors(path, tensors):
    """tensors: [(name, torch tensor)] in bf16 or f32; 8-byte aligned header, data in the given order."""
    header, blobs, at = {}, [], 0
    for name, t in tensors:
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            b, dt = t.view(torch.int16).numpy().tobytes(), "BF16"
        elif t.dtype == torch.float32:
            b, dt = t.numpy().tobytes(), "F32"
        else:
            raise ValueError(f"{name}: dtype {t.dtype}")
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def export(model_pt, data_dir, out):
    ck = torch.load(model_pt, map_location="cpu")
    cfg = dict(ck["config"])
    os.makedirs(out, exist_ok=True)
    tensors = []
    for name, t in hf_tensors(ck["state"]):
        t = t.float()
        tensors.append((name, t if name.endswith("e_score_correction_bias") else t.to(torch.bfloat16)))
    tensors.sort(key=lambda nt: nt[0])
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    gen = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": False}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(data_dir, name), os.path.join(out, name))
    return len(tensors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=".train/run")
    ap.add_argument("--data", default=".train")
    ap.add_argument("--out", default=".train/bf16")
    a = ap.parse_args()
    n = export(os.path.join(a.run, "model.pt"), a.data, a.out)
    print(f"export: {n} tensors -> {a.out}")


if __name__ == "__main__":
    main()
