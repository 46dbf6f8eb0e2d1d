"""DeepseekV3ForCausalLM in plain torch, for training the demo model (issue #15).

Our own implementation of the math in docs/model-spec.md §4-7 (the same as webmoe's src/model/reference.ts):
  embed -> per layer [ RMSNorm -> MLA -> +res -> RMSNorm -> dense SwiGLU | MoE (sigmoid router, bias-corrected
  group-limited top-k, norm_topk_prob, routed_scaling_factor, + shared expert) -> +res ] -> RMSNorm -> lm_head
RoPE rotates interleaved pairs (2i, 2i+1) of the stored weights' rope dims (spec §5.3), as webmoe does.
Parameter names are the HF names, so export is a rename-free walk (routed experts are stored stacked for speed and
split per expert on export).

Legend: B batch, T tokens, D hidden, H heads, Dn/Dr/Dv nope/rope/v head dims, Dq = Dn + Dr, Rq q_lora_rank,
Rkv kv_lora_rank, E routed experts, K experts per token, F expert FFN width, N = B*T tokens.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def default_config(vocab_size):
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": vocab_size,
        "hidden_size": 192,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": 96,
        "kv_lora_rank": 64,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "v_head_dim": 32,
        "intermediate_size": 512,
        "moe_intermediate_size": 64,
        "n_routed_experts": 32,
        "num_experts_per_tok": 4,
        "n_shared_experts": 1,
        "n_group": 4,
        "topk_group": 2,
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
        "norm_topk_prob": True,
        "routed_scaling_factor": 1.5,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
        "bos_token_id": 256,
        "eos_token_id": 257,
        "initializer_range": 0.02,
        "torch_dtype": "bfloat16",
    }


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(c, T, device=None):
    """cos, sin [T, Dr/2]: angle = fp32(p * inv_f_i), inv_f_i = theta^(-2i/Dr) (no YaRN in the demo)."""
    dr = c["qk_rope_head_dim"]
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, dr, 2, dtype=torch.float64) / dr))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv.float()[None, :]
    return ang.double().cos().float().to(device), ang.double().sin().float().to(device)


def apply_rope(x, cos, sin):
    """x [..., T, (H,) Dr] with interleaved pairs; cos/sin [T, Dr/2] broadcast over the head axis."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class MLA(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, H = c["hidden_size"], c["num_attention_heads"]
        self.H, self.dn, self.dr, self.dv, self.rkv = H, c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
        dq = self.dn + self.dr
        self.q_a_proj = nn.Linear(D, c["q_lora_rank"], bias=False)
        self.q_a_layernorm = RMSNorm(c["q_lora_rank"], c["rms_norm_eps"])
        self.q_b_proj = nn.Linear(c["q_lora_rank"], H * dq, bias=False)  # per head [nope | rope]
        self.kv_a_proj_with_mqa = nn.Linear(D, self.rkv + self.dr, bias=False)  # [latent | k_pe]
        self.kv_a_layernorm = RMSNorm(self.rkv, c["rms_norm_eps"])
        self.kv_b_proj = nn.Linear(self.rkv, H * (self.dn + self.dv), bias=False)  # per head [k_nope | v]
        self.o_proj = nn.Linear(H * self.dv, D, bias=False)
        self.scale = dq ** -0.5

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        H = self.H
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, H, self.dn + self.dr)
        q_nope, q_pe = q.split([self.dn, self.dr], dim=-1)
        q_pe = apply_rope(q_pe, cos[:, None, :], sin[:, None, :])  # [B, T, H, Dr]
        kv = self.kv_a_proj_with_mqa(x)
        c_kv, k_pe = kv.split([self.rkv, self.dr], dim=-1)
        k_pe = apply_rope(k_pe, cos, sin)  # [B, T, Dr], shared by the heads
        kvb = self.kv_b_proj(self.kv_a_layernorm(c_kv)).view(B, T, H, self.dn + self.dv)
        k_nope, v = kvb.split([self.dn, self.dv], dim=-1)
        q = torch.cat([q_nope, q_pe], -1).transpose(1, 2)  # [B, H, T, Dq]
        k = torch.cat([k_nope, k_pe[:, :, None, :].expand(B, T, H, self.dr)], -1).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) * self.scale + mask  # [B, H, T, T]
        o = att.softmax(-1) @ v.transpose(1, 2)  # [B, H, T, Dv]
        return self.o_proj(o.transpose(1, 2).reshape(B, T, H * self.dv))


class MLP(nn.Module):
    def __init__(self, D, F_):
        super().__init__()
        self.gate_proj = nn.Linear(D, F_, bias=False)
        self.up_proj = nn.Linear(D, F_, bias=False)
        self.down_proj = nn.Linear(F_, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    def __init__(self, E, D):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(E, D))
        # not trained by the loss: moved by the auxiliary-loss-free balancing update (DeepSeek-V3 §2.1.2)
        self.register_buffer("e_score_correction_bias", torch.zeros(E))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, E, Fm = c["hidden_size"], c["n_routed_experts"], c["moe_intermediate_size"]
        self.c = c
        self.E, self.K = E, c["num_experts_per_tok"]
        self.gate = Gate(E, D)
        # routed experts stacked: [E, F, D] gate/up, [E, D, F] down (split into experts.{e}.* on export)
        self.w_gate = nn.Parameter(torch.empty(E, Fm, D))
        self.w_up = nn.Parameter(torch.empty(E, Fm, D))
        self.w_down = nn.Parameter(torch.empty(E, D, Fm))
        self.shared_experts = MLP(D, Fm * c["n_shared_experts"])
        self.last_load = None  # [E] tokens routed to each expert in the last forward (for the bias update)
        self.last_ids = None  # [N, K]

    def route(self, x):
        """x [N, D] -> ids [N, K] (by biased score, group-limited), weights [N, K] (from unbiased scores)."""
        c = self.c
        s = torch.sigmoid(x @ self.gate.weight.t())  # [N, E]
        b = s.detach() + self.gate.e_score_correction_bias
        G, TG = c["n_group"], c["topk_group"]
        if G > 1:
            gs = b.view(-1, G, self.E // G).topk(2, dim=-1).values.sum(-1)  # [N, G]
            keep = torch.zeros_like(gs, dtype=torch.bool).scatter_(1, gs.topk(TG, dim=-1).indices, True)
            b = b.masked_fill(~keep.repeat_interleave(self.E // G, dim=1), float("-inf"))
        ids = b.topk(self.K, dim=-1).indices  # [N, K]
        w = s.gather(1, ids)
        if c["norm_topk_prob"]:
            w = w / w.sum(-1, keepdim=True)
        return ids, w * c["routed_scaling_factor"]

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, D]
        ids, w = self.route(x)
        N, K = ids.shape
        flat = ids.reshape(-1)
        order = flat.argsort()
        counts = torch.bincount(flat, minlength=self.E)
        self.last_load = counts.detach()
        self.last_ids = ids.detach()
        tok = order // K  # token of each sorted assignment
        xs = x[tok]
        outs = []
        for e, chunk in enumerate(xs.split(counts.tolist())):
            if chunk.shape[0] == 0:
                continue
            h = F.silu(chunk @ self.w_gate[e].t()) * (chunk @ self.w_up[e].t())
            outs.append(h @ self.w_down[e].t())
        y = torch.cat(outs) * w.reshape(-1)[order][:, None]
        out = self.shared_experts(x).index_add(0, tok, y)
        return out.view(shape)


class Layer(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = MLA(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.is_moe = i >= c["first_k_dense_replace"] and i % c["moe_layer_freq"] == 0
        self.mlp = MoE(c) if self.is_moe else MLP(c["hidden_size"], c["intermediate_size"])

    def forward(self, h, cos, sin, mask):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c, i) for i in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class DeepseekV3(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = self.c["initializer_range"]
        out_std = std / math.sqrt(2 * self.c["num_hidden_layers"])  # residual-branch outputs (GPT-2)
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight") or name.endswith("w_down"):
                nn.init.normal_(p, 0, out_std)
            else:
                nn.init.normal_(p, 0, std)

    def moe_layers(self):
        return [l.mlp for l in self.model.layers if l.is_moe]

    def forward(self, ids):
        """ids [B, T] -> logits [B, T, V] (positions 0..T-1)."""
        B, T = ids.shape
        cos, sin = rope_tables(self.c, T, ids.device)
        mask = torch.full((T, T), float("-inf")).triu(1)
        h = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            h = layer(h, cos, sin, mask)
        return self.lm_head(self.model.norm(h))

    @torch.no_grad()
    def update_bias(self, gamma):
        """Auxiliary-loss-free balancing: b_e += gamma * sign(mean load - load_e) after each step."""
        for m in self.moe_layers():
            load = m.last_load.float()
            m.gate.e_score_correction_bias += gamma * torch.sign(load.mean() - load)


def count_params(model):
    c = model.c
    total = sum(p.numel() for p in model.parameters())
    E, K = c["n_routed_experts"], c["num_experts_per_tok"]
    per_expert = 3 * c["hidden_size"] * c["moe_intermediate_size"]
    inactive = len(model.moe_layers()) * (E - K) * per_expert
    return total, total - inactive - model.model.embed_tokens.weight.numel()
