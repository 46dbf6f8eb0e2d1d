"""Step 2: train the demo model on the token stream of prepare.py.

  nice -n 10 /usr/bin/python3 scripts/train/train.py [--data .train] [--out .train/run] [--budget-min 45]
      [--steps N] [--batch 8] [--ctx 256] [--lr 2e-3] [--seed 0] [--cfg '{"hidden_size": 256}']

Seeded: batches are random windows of the stream drawn from numpy's PCG64(seed), weights from torch.manual_seed.
The learning rate warms up, then follows a cosine to 10 %: over --steps when given (fully reproducible: same seed,
same steps, same numbers up to float reordering across thread counts), else over the wall-clock --budget-min,
stopping when it is spent (the steps done are written to OUT/run.json; --steps with that number reruns the same
batches with the step-based schedule). A hard stop at 1.15x the budget guards the wall clock. Every --save-min minutes and at the end: OUT/model.pt (weights + config) and
OUT/log.jsonl (step, tokens, train loss, held-out loss on a fixed sample, lr, seconds).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402
from model import DeepseekV3, count_params, default_config  # noqa: E402


def heldout_sample(data_dir, ctx, windows):
    """A fixed sample of held-out windows (each held-out file from its BOS) for the curve: [n, ctx + 1]."""
    tok = json.load(open(os.path.join(data_dir, "tokenizer.json")))
    strs = {v: k for k, v in tok["model"]["vocab"].items()}
    inv = {s: i for i, s in strs.items()}
    merges = [(inv[a], inv[b]) for a, b in tok["model"]["merges"]]
    enc = bpe.Encoder(merges)
    root = json.load(open(os.path.join(data_dir, "prepare.json")))["root"]
    rows = []
    for rel in open(os.path.join(data_dir, "heldout.txt")).read().split():
        ids = enc.encode(open(os.path.join(root, rel), encoding="utf-8").read())
        for at in range(0, len(ids) - ctx - 1, ctx):
            rows.append(ids[at:at + ctx + 1])
    rng = np.random.default_rng(1234)
    pick = rng.permutation(len(rows))[:windows]
    return torch.tensor(np.array([rows[i] for i in sorted(pick)], dtype=np.int64))


@torch.no_grad()
def eval_loss(model, rows, batch):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, rows.shape[0], batch):
        x = rows[i:i + batch]
        logits = model(x[:, :-1])
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum").item()
        n += x[:, 1:].numel()
    model.train()
    return tot / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".train")
    ap.add_argument("--out", default=".train/run")
    ap.add_argument("--budget-min", type=float, default=45)
    ap.add_argument("--save-min", type=float, default=5)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--gamma", type=float, default=5e-3, help="bias update speed of the aux-loss-free balancing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="1: on a shared 2-core machine, 2 OpenMP threads spin and run 4x slower")
    ap.add_argument("--eval-windows", type=int, default=24)
    ap.add_argument("--cfg", default="{}", help="JSON overrides of the model config")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    data = np.fromfile(os.path.join(a.data, "train.u16"), dtype=np.uint16)
    prep = json.load(open(os.path.join(a.data, "prepare.json")))
    cfg = default_config(prep["vocab_size"])
    cfg.update(json.loads(a.cfg))
    cfg["max_position_embeddings"] = a.ctx  # the training context: webmoe eval's default window
    model = DeepseekV3(cfg)
    total, active = count_params(model)
    print(f"train: {total / 1e6:.2f} M parameters, {active / 1e6:.2f} M active per token (embedding lookup excluded)", flush=True)
    val = heldout_sample(a.data, a.ctx, a.eval_windows)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    rng = np.random.default_rng(a.seed)
    run = {"args": vars(a), "config": cfg, "params": total, "active_params": active, "train_tokens_available": int(data.size)}

    def progress(step):
        """0..1 through the decay phase: by steps with --steps, else by wall clock against --budget-min."""
        if a.steps:
            return min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
        return min(1.0, (time.time() - t0) / (a.budget_min * 60))

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        p = progress(step)
        return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))

    log = open(os.path.join(a.out, "log.jsonl"), "w")
    t0 = time.time()
    last_save = t0
    step, tokens, run_loss, run_n = 0, 0, 0.0, 0

    def save(final=False):
        state = {k: v for k, v in model.state_dict().items()}
        torch.save({"config": cfg, "state": state, "step": step, "tokens": tokens}, os.path.join(a.out, "model.pt.tmp"))
        os.replace(os.path.join(a.out, "model.pt.tmp"), os.path.join(a.out, "model.pt"))
        run.update({"steps_done": step, "tokens": tokens, "seconds": round(time.time() - t0), "final": final})
        json.dump(run, open(os.path.join(a.out, "run.json"), "w"), indent=1)

    while True:
        if (a.steps and step >= a.steps) or (not a.steps and time.time() - t0 >= a.budget_min * 60):
            break
        if time.time() - t0 > a.budget_min * 60 * 1.15:
            print("train: hard wall-clock stop", flush=True)
            run["hard_stop"] = True
            break
        starts = rng.integers(0, data.size - a.ctx - 1, a.batch)
        x = torch.from_numpy(np.stack([data[s:s + a.ctx + 1] for s in starts]).astype(np.int64))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.update_bias(a.gamma)
        step += 1
        tokens += a.batch * a.ctx
        run_loss += loss.item()
        run_n += 1
        el = time.time() - t0
        if step == 20:
            print(f"train: {el / 20:.2f} s/step, {20 * a.batch * a.ctx / el:.0f} tok/s", flush=True)
        if step % 10 == 0 or step == a.steps:
            rec = {"step": step, "tokens": tokens, "loss": run_loss / run_n, "lr": lr_at(step - 1), "seconds": round(el, 1)}
            loads = [m.last_load.float() for m in model.moe_layers()]
            rec["load_max_mean"] = [round((l.max() / l.mean()).item(), 2) for l in loads]
            if step % 100 == 0 or step == a.steps:
                rec["val_loss"] = eval_loss(model, val, a.batch)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print("train:", json.dumps(rec), flush=True)
            run_loss, run_n = 0.0, 0
        if time.time() - last_save > a.save_min * 60:
            save()
            last_save = time.time()
    rec = {"step": step, "tokens": tokens, "val_loss": eval_loss(model, val, a.batch), "seconds": round(time.time() - t0, 1), "final": True}
    log.write(json.dumps(rec) + "\n")
    log.close()
    print("train:", json.dumps(rec), flush=True)
    save(final=True)
    print(f"train: done, {step} steps, {tokens} tokens, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
