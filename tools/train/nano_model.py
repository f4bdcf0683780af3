"""The Hugging Face Llama-4 text model (Llama4ForCausalLM) in plain PyTorch, for training behemoth-nano.

Parameter names are the Hugging Face ones, so state_dict() is the checkpoint. The math follows
transformers' modeling_llama4.py step by step (the C# reference engine and tools/oracle check it):

  attention:  q,k,v projections -> RoPE on interleaved pairs (RoPE layers) -> weightless L2 (RMS) norm of
              q and k (RoPE layers, use_qk_norm) -> temperature tuning of q (NoPE layers) -> GQA softmax
              attention, causal, chunked on chunked_attention layers -> o_proj
  MoE:        router logits -> top-k -> sigmoid of the kept logits scales the expert *input* -> SwiGLU expert
              (gate_up_proj [E, H, 2I], gate half first) -> plus the shared expert on the unscaled input

Also used for evaluation: forward() can return routing choices and accepts a KV cache for greedy decoding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def l2_norm(x, eps: float):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)


def rope_tables(head_dim: int, theta: float, positions: torch.Tensor):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ang = positions.float()[:, None] * inv[None, :]            # [T, D/2]
    return torch.cos(ang), torch.sin(ang)


def apply_rope_interleaved(x, cos, sin):
    """x: [B, T, heads, D]; rotates pairs (2i, 2i+1) by angle_i, as torch.view_as_complex does in HF."""
    x = x.float()
    xr, xi = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack((xr * c - xi * s, xr * s + xi * c), dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: dict, layer: int):
        super().__init__()
        h, self.nh, self.nkv, self.hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.q_proj = nn.Linear(h, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, h, bias=False)
        self.use_rope = bool(cfg["no_rope_layers"][layer])
        self.qk_norm = cfg["use_qk_norm"] and self.use_rope
        self.temperature = cfg["attn_temperature_tuning"] and not self.use_rope
        self.chunk = cfg["attention_chunk_size"] if cfg["layer_types"][layer] == "chunked_attention" else None
        self.eps, self.theta = cfg["rms_norm_eps"], cfg["rope_theta"]
        self.floor_scale, self.attn_scale = cfg["floor_scale"], cfg["attn_scale"]

    def forward(self, x, positions, cache=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.nh, self.hd)
        k = self.k_proj(x).view(b, t, self.nkv, self.hd)
        v = self.v_proj(x).view(b, t, self.nkv, self.hd)
        if self.use_rope:
            cos, sin = rope_tables(self.hd, self.theta, positions)
            q, k = apply_rope_interleaved(q, cos, sin), apply_rope_interleaved(k, cos, sin)
            if self.qk_norm:
                q, k = l2_norm(q, self.eps), l2_norm(k, self.eps)
        if self.temperature:
            scale = torch.log(torch.floor((positions.float() + 1.0) / self.floor_scale) + 1.0) * self.attn_scale + 1.0
            q = q * scale[None, :, None, None]
        if cache is not None:                                      # cache: dict with "k", "v", "pos" so far
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=1)
                v = torch.cat([cache["v"], v], dim=1)
                kpos = torch.cat([cache["pos"], positions])
            else:
                kpos = positions
            cache["k"], cache["v"], cache["pos"] = k, v, kpos
        else:
            kpos = positions
        q = q.transpose(1, 2)                                      # [B, nh, T, D]
        rep = self.nh // self.nkv
        k = k.transpose(1, 2).repeat_interleave(rep, dim=1)
        v = v.transpose(1, 2).repeat_interleave(rep, dim=1)
        visible = kpos[None, :] <= positions[:, None]
        if self.chunk:
            visible = visible & (torch.div(kpos[None, :], self.chunk, rounding_mode="floor")
                                 == torch.div(positions[:, None], self.chunk, rounding_mode="floor"))
        scores = (q @ k.transpose(-1, -2)) * (self.hd ** -0.5)
        scores = scores.masked_fill(~visible, float("-inf"))
        probs = torch.softmax(scores.float(), dim=-1).type_as(q)
        out = (probs @ v).transpose(1, 2).reshape(b, t, self.nh * self.hd)
        return self.o_proj(out)


class Experts(nn.Module):
    def __init__(self, e: int, h: int, i: int, std: float):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(e, h, 2 * i) * std)
        self.down_proj = nn.Parameter(torch.randn(e, i, h) * std)

    def one(self, e: int, x):
        gate, up = (x @ self.gate_up_proj[e]).chunk(2, dim=-1)
        return (up * F.silu(gate)) @ self.down_proj[e]


class SwiGluMlp(nn.Module):
    def __init__(self, h: int, i: int):
        super().__init__()
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Moe(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, i, self.e, self.k = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
        self.router = nn.Linear(h, self.e, bias=False)
        self.experts = Experts(self.e, h, i, cfg["initializer_range"])
        self.shared_expert = SwiGluMlp(h, i)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.router(x)                                    # [N, E]
        top_val, top_idx = torch.topk(logits, self.k, dim=-1)
        scores = torch.sigmoid(top_val.float()).type_as(x)         # sigmoid of the kept logits only
        out = self.shared_expert(x)
        routed = torch.zeros_like(x)
        for e in range(self.e):
            rows, slot = torch.nonzero(top_idx == e, as_tuple=True)
            if rows.numel():
                routed.index_add_(0, rows, self.experts.one(e, x[rows] * scores[rows, slot, None]))
        # Switch-style balance statistics: fraction of tokens per expert and mean router probability
        probs = torch.softmax(logits.float(), dim=-1)
        frac = torch.zeros(self.e, device=x.device).index_add_(0, top_idx[:, 0], torch.ones(x.shape[0], device=x.device)) / x.shape[0]
        aux = self.e * (frac * probs.mean(0)).sum()
        return (out + routed).reshape(shape), top_idx[:, 0].reshape(shape[:-1]), aux


class DecoderLayer(nn.Module):
    def __init__(self, cfg: dict, layer: int):
        super().__init__()
        self.self_attn = Attention(cfg, layer)
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        if layer not in cfg["moe_layers"]:
            raise ValueError("behemoth-nano uses MoE in every layer")
        self.feed_forward = Moe(cfg)

    def forward(self, x, positions, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), positions, cache)
        ff, choice, aux = self.feed_forward(self.post_attention_layernorm(x))
        return x + ff, choice, aux


class Llama4TextModel(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class Llama4ForCausalLM(nn.Module):
    """state_dict() keys are the Hugging Face ones (lm_head is tied to model.embed_tokens and not stored)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.model = Llama4TextModel(cfg)
        std = cfg["initializer_range"]
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
        if not cfg["tie_word_embeddings"]:
            raise ValueError("behemoth-nano ties lm_head to the embeddings")

    def forward(self, ids, positions=None, caches=None):
        """ids [B, T] -> logits [B, T, V], per-layer top-1 expert choices [L, B, T], mean balance loss."""
        if positions is None:
            positions = torch.arange(ids.shape[1])
        x = self.model.embed_tokens(ids)
        choices, aux = [], 0.0
        for i, layer in enumerate(self.model.layers):
            x, choice, a = layer(x, positions, None if caches is None else caches[i])
            choices.append(choice)
            aux = aux + a
        x = self.model.norm(x)
        logits = x @ self.model.embed_tokens.weight.t()
        return logits, torch.stack(choices), aux / len(self.model.layers)

    def hf_state_dict(self) -> dict:
        return {k: v for k, v in self.state_dict().items()}


def parameter_counts(model: Llama4ForCausalLM) -> dict:
    total = sum(p.numel() for p in model.parameters())
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n or ".shared_expert." in n)
    return {"total": total, "experts": experts, "expert_fraction": experts / total}


def nll_sum(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="sum")

