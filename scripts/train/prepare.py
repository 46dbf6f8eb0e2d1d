"""Step 1: corpus split, BPE tokenizer, token streams.

  /usr/bin/python3 scripts/train/prepare.py [--out .train] [--vocab 4096]

Writes OUT/tokenizer.json, OUT/tokenizer_config.json, OUT/train.u16 (every training file as <|bos|> tokens <|eos|>,
concatenated in path order), OUT/heldout.txt (held-out relative paths) and OUT/prepare.json (sizes, root).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".train")
    ap.add_argument("--root", default=None, help="stdlib folder (default: the newest /usr/lib/python3.X)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--max-length", type=int, default=512)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    root = a.root or corpus.default_root()
    files = corpus.list_files(root)
    train, held = corpus.split(files)
    t0 = time.time()
    merges = bpe.train([t for _, t in train], a.vocab)
    print(f"prepare: {len(merges)} merges in {time.time() - t0:.0f} s", flush=True)
    bpe.save(merges, a.out, a.max_length)
    enc = bpe.Encoder(merges)
    ids = []
    for _, text in train:
        ids.extend(enc.encode(text, bos=True))
        ids.append(bpe.EOS_ID)
    arr = np.array(ids, dtype=np.uint16)
    arr.tofile(os.path.join(a.out, "train.u16"))
    held_tokens = sum(len(enc.encode(t)) for _, t in held)
    with open(os.path.join(a.out, "heldout.txt"), "w") as f:
        f.write("".join(rel + "\n" for rel, _ in held))
    info = {
        "root": root,
        "train_files": len(train),
        "train_bytes": sum(len(t.encode("utf-8")) for _, t in train),
        "train_tokens": int(arr.size),
        "heldout_files": len(held),
        "heldout_bytes": sum(len(t.encode("utf-8")) for _, t in held),
        "heldout_tokens": held_tokens,
        "vocab_size": bpe.FIRST_MERGE_ID + len(merges),
        "seconds": round(time.time() - t0),
    }
    with open(os.path.join(a.out, "prepare.json"), "w") as f:
        json.dump(info, f, indent=1)
    print("prepare:", json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
