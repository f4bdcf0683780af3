#!/usr/bin/python3
"""Independent float64 NumPy oracle for Hugging Face transformers MoE decoders.

Full-sequence forward pass (one sequence, positions 0..S-1, no padding, no KV
cache, eval mode) for:

    MixtralForCausalLM            (model_type "mixtral")
    Qwen2MoeForCausalLM           (model_type "qwen2_moe")
    Qwen3MoeForCausalLM           (model_type "qwen3_moe")
    OlmoeForCausalLM              (model_type "olmoe")
    Llama4ForCausalLM             (model_type "llama4_text")
    Llama4ForConditionalGeneration(model_type "llama4", text tower only)

Everything is computed in float64 from the weights *as stored* (F32/F16/BF16
are upcast exactly).  Only numpy is used; the safetensors reader/writer is
written here.

The comments name the Hugging Face source each step mirrors
(src/transformers/models/<model>/modeling_<model>.py, modular_<model>.py,
configuration_<model>.py, modeling_rope_utils.py, masking_utils.py on the
main branch; see tests/fixtures/variants/README.md for the snapshots read).

CLI:
    hf_moe_oracle.py check GOLDEN_DIR [GOLDEN_DIR ...]
        Recompute logits for each directory and print max |diff| vs logits.f32.
    hf_moe_oracle.py logits MODEL_DIR [--ids input_ids.json] [--out logits.f32]
        Compute logits for an arbitrary HF model dir.
    hf_moe_oracle.py make-golden OUT_DIR [--only NAME ...]
        Generate the repository's golden sets (configs in golden_configs/, fresh weights).
    hf_moe_oracle.py make-variants OUT_DIR [--only NAME ...]
        Generate the extra fixtures (see VARIANTS at the bottom).
    hf_moe_oracle.py sensitivity VARIANTS_DIR
        Recompute each fixture with one semantic flag flipped; prints how much the logits move.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# --------------------------------------------------------------------------------------
# safetensors I/O (format: u64 LE header length, JSON header, raw little-endian data)
# --------------------------------------------------------------------------------------


def _decode_tensor(raw: bytes, dtype: str, shape) -> np.ndarray:
    """Decode a raw little-endian buffer to a float64 array (exact upcast)."""
    if dtype == "F64":
        a = np.frombuffer(raw, dtype="<f8")
    elif dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2")
    elif dtype == "BF16":
        # bf16 is the top 16 bits of an IEEE float32: shift into place, reinterpret.
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        a = u.view(np.float32)
    elif dtype == "I64":
        a = np.frombuffer(raw, dtype="<i8")
    elif dtype == "I32":
        a = np.frombuffer(raw, dtype="<i4")
    else:
        raise ValueError(f"unsupported safetensors dtype {dtype}")
    return a.astype(np.float64).reshape(shape)


def read_safetensors(path: str) -> tuple[dict, dict]:
    """Return ({name: float64 array}, {name: stored dtype string})."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    tensors, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        tensors[name] = _decode_tensor(data[b:e], info["dtype"], info["shape"])
        dtypes[name] = info["dtype"]
    return tensors, dtypes


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float -> bf16 bit pattern (uint16), round-to-nearest-even via float32 (as torch does)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def encode_tensor(a: np.ndarray, dtype: str) -> bytes:
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    if dtype == "BF16":
        return to_bf16_bits(a).astype("<u2").tobytes()
    if dtype == "F64":
        return np.ascontiguousarray(a, dtype="<f8").tobytes()
    raise ValueError(dtype)


def quantize(a: np.ndarray, dtype: str) -> np.ndarray:
    """Round-trip a float64 array through the storage dtype (what a reader will see)."""
    return _decode_tensor(encode_tensor(a, dtype), dtype, a.shape)


def write_safetensors(path: str, tensors: dict, dtype: str) -> int:
    """Write {name: array} with every tensor stored as `dtype`. Returns the data size in bytes."""
    names = sorted(tensors)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in names:
        raw = encode_tensor(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad header to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)
    return off


def load_model_dir(model_dir: str) -> tuple[dict, dict, dict]:
    """config.json + model.safetensors, or sharded files listed in model.safetensors.index.json."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    tensors, dtypes = {}, {}
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        for shard in sorted(set(weight_map.values())):
            t, d = read_safetensors(os.path.join(model_dir, shard))
            for k in t:
                if weight_map.get(k) != shard:
                    raise ValueError(f"{k} found in {shard} but index maps it to {weight_map.get(k)}")
            tensors.update(t)
            dtypes.update(d)
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError(f"tensors listed in index but absent: {sorted(missing)[:5]}")
    else:
        tensors, dtypes = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return cfg, tensors, dtypes


# --------------------------------------------------------------------------------------
# Config resolution (configuration_*.py __post_init__ + RotaryEmbeddingConfigMixin)
# --------------------------------------------------------------------------------------

# Per-model defaults that matter for the forward pass (dataclass field defaults in
# configuration_<model>.py; default_theta is the class attribute, 10_000 in the mixin).
_DEFAULTS = {
    "mixtral": dict(rms_norm_eps=1e-5, default_theta=1e6, sliding_window=None, num_experts_per_tok=2),
    "qwen2_moe": dict(rms_norm_eps=1e-6, default_theta=1e4, use_sliding_window=False, sliding_window=4096,
                      max_window_layers=28, decoder_sparse_step=1, norm_topk_prob=False, qkv_bias=True,
                      num_experts_per_tok=4),
    "qwen3_moe": dict(rms_norm_eps=1e-6, default_theta=1e4, use_sliding_window=False, sliding_window=4096,
                      decoder_sparse_step=1, norm_topk_prob=False, attention_bias=False, num_experts_per_tok=8),
    "olmoe": dict(rms_norm_eps=1e-5, default_theta=1e4, clip_qkv=None, norm_topk_prob=False,
                  attention_bias=False, num_experts_per_tok=8),
    "llama4_text": dict(rms_norm_eps=1e-5, default_theta=5e5, head_dim=128, num_experts_per_tok=1,
                        interleave_moe_layer_step=1, use_qk_norm=True, no_rope_layer_interval=4,
                        attention_chunk_size=8192, attn_temperature_tuning=True, floor_scale=8192,
                        attn_scale=0.1, attention_bias=False),
}

_ARCH = {
    "MixtralForCausalLM": ("mixtral", "model.", "lm_head.weight"),
    "Qwen2MoeForCausalLM": ("qwen2_moe", "model.", "lm_head.weight"),
    "Qwen3MoeForCausalLM": ("qwen3_moe", "model.", "lm_head.weight"),
    "OlmoeForCausalLM": ("olmoe", "model.", "lm_head.weight"),
    "Llama4ForCausalLM": ("llama4_text", "model.", "lm_head.weight"),
    # modeling_llama4.py: Llama4ForConditionalGeneration.__init__ -> self.language_model = Llama4ForCausalLM(...)
    # so the text tower lives under "language_model.model.*" and "language_model.lm_head.weight".
    "Llama4ForConditionalGeneration": ("llama4_text", "language_model.model.", "language_model.lm_head.weight"),
}


class Spec:
    """Resolved, per-layer description of the network (what the HF config classes derive)."""


def rope_parameters(c: dict, default_theta: float) -> dict:
    # RotaryEmbeddingConfigMixin.convert_rope_params_to_dict:
    #   rope_parameters = rope_scaling (legacy key) or rope_parameters or {}
    #   rope_parameters.setdefault("rope_theta", kwargs.pop("rope_theta", default_theta))
    # standardize_rope_params: rope_parameters.setdefault("rope_type", rope_parameters.get("type", "default"))
    rp = dict(c.get("rope_scaling") or c.get("rope_parameters") or {})
    rp.setdefault("rope_theta", c.get("rope_theta", default_theta))
    rp.setdefault("rope_type", rp.get("type", "default"))
    return rp


def resolve(cfg: dict) -> Spec:
    arch = cfg["architectures"][0]
    if arch not in _ARCH:
        raise ValueError(f"unsupported architecture {arch}")
    kind, prefix, lm_head_name = _ARCH[arch]
    c = cfg["text_config"] if arch == "Llama4ForConditionalGeneration" else cfg
    d = dict(_DEFAULTS[kind])

    def g(key):  # value from config.json if present, else the config class default
        return c[key] if key in c else d.get(key)

    s = Spec()
    s.kind, s.prefix, s.lm_head_name = kind, prefix, lm_head_name
    s.L = c["num_hidden_layers"]
    s.H = c["hidden_size"]
    s.nh = c["num_attention_heads"]
    s.nkv = c.get("num_key_value_heads") or s.nh
    # head_dim: Mixtral/Qwen*/OLMoE use getattr(config, "head_dim", None) or hidden // heads;
    # Llama4TextConfig has a field head_dim: int = 128 (only None -> hidden // heads).
    if kind == "llama4_text":
        s.hd = c.get("head_dim", 128) if c.get("head_dim", 128) is not None else s.H // s.nh
    else:
        s.hd = c.get("head_dim") or s.H // s.nh
    s.eps = g("rms_norm_eps")
    s.vocab = c["vocab_size"]
    # tie_word_embeddings: PreTrainedModel ties lm_head.weight to embed_tokens.weight
    # (_tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}).
    s.tie = bool(cfg.get("tie_word_embeddings", c.get("tie_word_embeddings", False)))
    s.rope = rope_parameters(c, d["default_theta"])
    s.topk = g("num_experts_per_tok")
    s.norm_topk = bool(g("norm_topk_prob")) if kind != "mixtral" else True
    s.clip_qkv = c.get("clip_qkv") if kind == "olmoe" else None

    L = s.L
    # ---- attention biases ------------------------------------------------------------
    if kind == "mixtral":
        s.qkv_bias = s.o_bias = False
    elif kind == "qwen2_moe":  # Qwen2MoeAttention: q/k/v bias=config.qkv_bias, o_proj bias=False
        s.qkv_bias, s.o_bias = bool(g("qkv_bias")), False
    else:  # LlamaAttention / Qwen3Attention / Llama4TextAttention: bias=config.attention_bias on q,k,v,o
        s.qkv_bias = s.o_bias = bool(g("attention_bias"))

    # ---- per-layer attention mask type: ("full",), ("sliding", W), ("chunked", C) ---
    if kind == "mixtral":
        # MixtralModel.forward: mask_function = create_causal_mask if config.sliding_window is None
        #                                       else create_sliding_window_causal_mask  (all layers)
        w = c.get("sliding_window")
        s.masks = [("full",) if w is None else ("sliding", w)] * L
    elif kind == "qwen3_moe":
        # Qwen3MoeConfig.__post_init__: sliding_window = sliding_window if use_sliding_window else None
        # Qwen3MoeModel(MixtralModel): same global rule as Mixtral (max_window_layers/layer_types unused).
        w = c.get("sliding_window", 4096) if g("use_sliding_window") else None
        s.masks = [("full",) if w is None else ("sliding", w)] * L
    elif kind == "qwen2_moe":
        # Qwen2MoeConfig.__post_init__:
        #   sliding_window = sliding_window if use_sliding_window else 0
        #   layer_types default: "sliding_attention" if bool((i + 1) % 2) and i < max_window_layers
        #                        and use_sliding_window else "full_attention"
        # Qwen2MoeModel.forward uses causal_mask_mapping[config.layer_types[i]].
        w = c.get("sliding_window", 4096) if g("use_sliding_window") else 0
        lt = c.get("layer_types")
        if lt is None:
            mwl = g("max_window_layers")
            lt = ["sliding_attention" if ((i + 1) % 2) and i < mwl and g("use_sliding_window") else "full_attention"
                  for i in range(L)]
        s.masks = []
        for t in lt:
            if t == "sliding_attention":
                if not w:
                    raise ValueError("sliding_attention layer with sliding_window 0/None")
                s.masks.append(("sliding", w))
            else:
                s.masks.append(("full",))
        s.layer_types = lt
    elif kind == "olmoe":
        s.masks = [("full",)] * L  # OlmoeModel.forward: create_causal_mask (diff with mixtral: no sliding)
    else:  # llama4_text -- Llama4TextConfig.__post_init__
        nri = g("no_rope_layer_interval")
        default_nrl = [int((i + 1) % nri != 0) for i in range(L)]
        nrl = c.get("no_rope_layers")
        s.use_rope = list(nrl) if nrl else default_nrl  # empty list / None -> default; 1 = RoPE layer
        ml = c.get("moe_layers")
        step = g("interleave_moe_layer_step")
        s.moe_layers = list(ml) if ml is not None else list(range(step - 1, L, step))
        lt = c.get("layer_types")
        if lt is None:
            lt = ["chunked_attention" if nr else "full_attention" for nr in s.use_rope]
        s.layer_types = lt
        chunk = c.get("attention_chunk_size", 8192)
        s.masks = []
        for t in lt:
            if t == "chunked_attention":
                if chunk is None:
                    raise ValueError("chunked_attention layer but attention_chunk_size is None")
                s.masks.append(("chunked", chunk))
            else:
                s.masks.append(("full",))
        s.use_qk_norm = bool(g("use_qk_norm"))
        s.temp_tuning = bool(g("attn_temperature_tuning"))
        s.floor_scale = g("floor_scale")
        s.attn_scale = g("attn_scale")
        s.dense_I = c.get("intermediate_size_mlp", 16384)

    # ---- per-layer FFN type -------------------------------------------------------------
    if kind in ("qwen2_moe", "qwen3_moe"):
        # Qwen2MoeDecoderLayer.__init__: MoE iff layer_idx not in mlp_only_layers and
        # num_experts > 0 and (layer_idx + 1) % decoder_sparse_step == 0; else dense MLP(intermediate_size).
        mlo = c.get("mlp_only_layers") or []
        step = g("decoder_sparse_step")
        ne = c.get("num_experts", c.get("num_local_experts", 0))
        s.is_moe = [(i not in mlo) and ne > 0 and (i + 1) % step == 0 for i in range(L)]
    elif kind == "llama4_text":
        s.is_moe = [i in s.moe_layers for i in range(L)]  # Llama4TextDecoderLayer: layer_idx in config.moe_layers
    else:
        s.is_moe = [True] * L
    return s


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    # LlamaRMSNorm / MixtralRMSNorm / Qwen*RMSNorm / OlmoeRMSNorm / Llama4TextRMSNorm:
    #   x * rsqrt(mean(x^2, -1) + eps), then * weight
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if w is None else y * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def inv_freq(rope: dict, dim: int) -> np.ndarray:
    """modeling_rope_utils.py ROPE_INIT_FUNCTIONS (default / linear / llama3); attention_factor is 1.0 for all three."""
    base = float(rope["rope_theta"])
    # _compute_default_rope_parameters: 1 / base ** (arange(0, dim, 2) / dim)
    inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    t = rope["rope_type"]
    if t == "default":
        return inv
    if t == "linear":
        # _compute_linear_scaling_rope_parameters: inv_freq /= factor
        return inv / float(rope["factor"])
    if t == "llama3":
        # _compute_llama3_parameters
        factor = float(rope["factor"])
        lff = float(rope["low_freq_factor"])
        hff = float(rope["high_freq_factor"])
        old = float(rope["original_max_position_embeddings"])
        low_wl, high_wl = old / lff, old / hff
        wavelen = 2 * math.pi / inv
        out = np.where(wavelen > low_wl, inv / factor, inv)  # wavelen > low_freq_wavelen: divide by factor
        with np.errstate(divide="ignore", invalid="ignore"):  # hff == lff is legal (Llama-4-Scout); no medium band
            smooth = (old / wavelen - lff) / (hff - lff)
            smoothed = (1 - smooth) * out / factor + smooth * out
        is_medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
        return np.where(is_medium, smoothed, out)
    raise ValueError(f"rope_type {t} not supported by this oracle")


def rope_neox(x, cos, sin):
    # apply_rotary_pos_emb with rotate_half: x*cos + rotate_half(x)*sin, cos = cat(freqs, freqs)
    # x: [S, heads, D]; cos/sin: [S, D]
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


def rope_interleaved(x, freqs):
    # modeling_llama4.py apply_rotary_emb: view_as_complex(x.reshape(..., -1, 2)) * freqs_cis
    # i.e. pairs (x[2i], x[2i+1]) rotated by angle pos * inv_freq[i].  freqs: [S, D/2]
    xr, xi = x[..., 0::2], x[..., 1::2]
    c, s_ = np.cos(freqs)[:, None, :], np.sin(freqs)[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = xr * c - xi * s_
    out[..., 1::2] = xr * s_ + xi * c
    return out


def build_mask(kind_tuple, S: int) -> np.ndarray:
    """masking_utils.py: boolean 'may attend' [q, kv]."""
    q = np.arange(S)[:, None]
    kv = np.arange(S)[None, :]
    allowed = kv <= q  # causal_mask_function: kv_idx <= q_idx
    if kind_tuple[0] == "sliding":
        allowed &= kv > q - kind_tuple[1]  # sliding_window_overlay: kv_idx > q_idx - sliding_window
    elif kind_tuple[0] == "chunked":
        c = kind_tuple[1]
        allowed &= (kv // c) == (q // c)  # chunked_overlay (no left padding): kv//chunk == q//chunk
    return allowed


# --------------------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.min_gap = math.inf  # min over MoE layers/tokens of (k-th largest - (k+1)-th largest) router logit
        self.gap_where = None
        self.clip_changed = 0  # OLMoE: number of q/k/v entries changed by clip_qkv
        self.clip_total = 0
        self.expert_counts = {}  # layer -> counts per expert

    def gap(self, layer, logits, k):
        srt = -np.sort(-logits, axis=-1)
        if k < logits.shape[-1]:
            gaps = srt[:, k - 1] - srt[:, k]
            i = int(np.argmin(gaps))
            if gaps[i] < self.min_gap:
                self.min_gap, self.gap_where = float(gaps[i]), (layer, i)


def forward(spec: Spec, W: dict, ids, stats: Stats | None = None) -> np.ndarray:
    st = stats or Stats()
    p = spec.prefix
    ids = np.asarray(ids, dtype=np.int64)
    S = len(ids)
    x = W[p + "embed_tokens.weight"][ids]  # nn.Embedding
    pos = np.arange(S, dtype=np.float64)  # position_ids = cache_position = arange(S)
    freqs = pos[:, None] * inv_freq(spec.rope, spec.hd)[None, :]  # [S, D/2]
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)
    nh, nkv, hd = spec.nh, spec.nkv, spec.hd

    for li in range(spec.L):
        lp = f"{p}layers.{li}."
        # ---- self-attention block (pre-norm) --------------------------------------------
        h = rms_norm(x, W[lp + "input_layernorm.weight"], spec.eps)
        a = lp + "self_attn."

        def proj(name, inp):
            y = inp @ W[a + name + ".weight"].T
            if spec.qkv_bias:
                y = y + W[a + name + ".bias"]
            return y

        q, k, v = proj("q_proj", h), proj("k_proj", h), proj("v_proj", h)
        if spec.kind == "olmoe":
            wrong_order = getattr(spec, "_clip_before_norm", False)  # sensitivity experiment only
            if not wrong_order:
                # OlmoeAttention.forward: q_norm/k_norm over the FULL projections (before the head split) ...
                q = rms_norm(q, W[a + "q_norm.weight"], spec.eps)
                k = rms_norm(k, W[a + "k_norm.weight"], spec.eps)
            # ... then clip_qkv clamps the *normed* q, k and the raw v
            if spec.clip_qkv is not None:
                cq = float(spec.clip_qkv)
                for t in (q, k, v):
                    st.clip_changed += int(np.sum(np.abs(t) > cq))
                    st.clip_total += t.size
                q, k, v = (np.clip(t, -cq, cq) for t in (q, k, v))
            if wrong_order:
                q = rms_norm(q, W[a + "q_norm.weight"], spec.eps)
                k = rms_norm(k, W[a + "k_norm.weight"], spec.eps)
        q = q.reshape(S, nh, hd)
        k = k.reshape(S, nkv, hd)
        v = v.reshape(S, nkv, hd)
        if spec.kind == "qwen3_moe":
            # Qwen3Attention.forward: q_norm(q_proj(h).view(hidden_shape)) -- per-head RMSNorm, weight [head_dim]
            q = rms_norm(q, W[a + "q_norm.weight"], spec.eps)
            k = rms_norm(k, W[a + "k_norm.weight"], spec.eps)

        if spec.kind == "llama4_text":
            use_rope = bool(spec.use_rope[li])
            if use_rope:  # Llama4TextAttention.forward: rope only where no_rope_layers[i] == 1
                q, k = rope_interleaved(q, freqs), rope_interleaved(k, freqs)
            if spec.use_qk_norm and use_rope:
                # Llama4TextL2Norm(eps=rms_norm_eps), applied AFTER rope: x * rsqrt(mean(x^2) + eps), no weight
                q, k = rms_norm(q, None, spec.eps), rms_norm(k, None, spec.eps)
            if spec.temp_tuning and not use_rope:
                # attn_scales = log1p(floor((cache_position + 1) / floor_scale)) * attn_scale + 1, on q only
                sc = np.log1p(np.floor((pos + 1.0) / spec.floor_scale)) * spec.attn_scale + 1.0
                q = q * sc[:, None, None]
        else:
            q, k = rope_neox(q, cos, sin), rope_neox(k, cos, sin)

        # eager_attention_forward: repeat_kv, q @ k^T * head_dim**-0.5 + mask, softmax, @ v
        rep = nh // nkv
        kr = np.repeat(k, rep, axis=1)  # repeat_kv: kv head j serves q heads j*rep .. j*rep+rep-1
        vr = np.repeat(v, rep, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, kr) * (hd ** -0.5)
        allowed = build_mask(spec.masks[li], S)
        scores = np.where(allowed[None], scores, -np.inf)
        probs = softmax(scores, axis=-1)
        o = np.einsum("hqk,khd->qhd", probs, vr).reshape(S, nh * hd)
        o = o @ W[a + "o_proj.weight"].T
        if spec.o_bias:
            o = o + W[a + "o_proj.bias"]
        x = x + o

        # ---- feed-forward block (pre-norm) ---------------------------------------------
        h = rms_norm(x, W[lp + "post_attention_layernorm.weight"], spec.eps)
        x = x + ffn(spec, W, lp, li, h, st)

    x = rms_norm(x, W[p + "norm.weight"], spec.eps)
    head = W.get(spec.lm_head_name)
    if head is None or spec.tie:
        if not spec.tie and head is None:
            raise ValueError("no lm_head tensor and tie_word_embeddings is false")
        head = W[p + "embed_tokens.weight"]
    return x @ head.T


def mlp(W, base, h):
    # Qwen2MoeMLP / GemmaMLP / Llama4TextMLP: down(act(gate(x)) * up(x))
    return (silu(h @ W[base + "gate_proj.weight"].T) * (h @ W[base + "up_proj.weight"].T)) @ W[base + "down_proj.weight"].T


def ffn(spec, W, lp, li, h, st: Stats):
    S = h.shape[0]
    k = spec.topk
    if spec.kind == "mixtral":
        b = lp + "block_sparse_moe."
        logits = h @ W[b + "gate.weight"].T
        st.gap(li, logits, k)
        # MixtralSparseMoeBlock / MixtralTopKRouter: softmax(float) -> topk -> renormalise
        probs = softmax(logits)
        idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        wts = np.take_along_axis(probs, idx, axis=-1)
        wts = wts / wts.sum(-1, keepdims=True)
        out = np.zeros_like(h)
        for t in range(S):
            for j in range(k):
                e = idx[t, j]
                eb = f"{b}experts.{e}."
                y = (silu(h[t] @ W[eb + "w1.weight"].T) * (h[t] @ W[eb + "w3.weight"].T)) @ W[eb + "w2.weight"].T
                out[t] += wts[t, j] * y
        _count(st, li, idx, logits.shape[-1])
        return out

    if spec.kind in ("qwen2_moe", "qwen3_moe", "olmoe"):
        b = lp + "mlp."
        if not spec.is_moe[li]:
            return mlp(W, b, h)  # dense Qwen2MoeMLP(config, intermediate_size=config.intermediate_size)
        logits = h @ W[b + "gate.weight"].T
        st.gap(li, logits, k)
        # Qwen2MoeTopKRouter: softmax(float) -> topk -> renormalise only if norm_topk_prob
        probs = softmax(logits)
        idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        wts = np.take_along_axis(probs, idx, axis=-1)
        if spec.norm_topk:
            wts = wts / wts.sum(-1, keepdims=True)
        out = np.zeros_like(h)
        for t in range(S):
            for j in range(k):
                out[t] += wts[t, j] * mlp(W, f"{b}experts.{idx[t, j]}.", h[t:t + 1])[0]
        _count(st, li, idx, logits.shape[-1])
        if spec.kind == "qwen2_moe":
            # Qwen2MoeSparseMoeBlock: + sigmoid(shared_expert_gate(x)) * shared_expert(x)
            gate = sigmoid(h @ W[b + "shared_expert_gate.weight"].T)  # [S, 1]
            out = out + gate * mlp(W, b + "shared_expert.", h)
        return out

    # ---- llama4_text -------------------------------------------------------------------
    b = lp + "feed_forward."
    if not spec.is_moe[li]:
        return mlp(W, b, h)  # Llama4TextMLP(config, intermediate_size=config.intermediate_size_mlp)
    logits = h @ W[b + "router.weight"].T
    st.gap(li, logits, k)
    # Llama4Router: topk on raw logits, scatter into -inf, sigmoid -> scores (0 for unselected)
    idx = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    scores = np.zeros_like(logits)
    np.put_along_axis(scores, idx, sigmoid(np.take_along_axis(logits, idx, axis=-1)), axis=-1)
    gu = W[b + "experts.gate_up_proj"]  # [E, hidden, 2*I]
    dn = W[b + "experts.down_proj"]  # [E, I, hidden]
    I = dn.shape[1]
    # Llama4TextMoe: routed_in = x * score (score scales the expert INPUT), experts(bmm), summed over experts
    out = mlp(W, b + "shared_expert.", h)
    for e in range(gu.shape[0]):
        if getattr(spec, "_scale_output", False):  # sensitivity experiment only (the usual mistake)
            g_u = h @ gu[e]
            out = out + scores[:, e:e + 1] * ((g_u[:, I:] * silu(g_u[:, :I])) @ dn[e]) * (scores[:, e:e + 1] > 0)
            continue
        xin = h * scores[:, e:e + 1]
        g_u = xin @ gu[e]
        gate, up = g_u[:, :I], g_u[:, I:]  # gate_up.chunk(2, dim=-1)
        out = out + (up * silu(gate)) @ dn[e]
    _count(st, li, idx, logits.shape[-1])
    return out


def _count(st, li, idx, n_experts):
    st.expert_counts[li] = np.bincount(idx.ravel(), minlength=n_experts).tolist()


def run_dir(model_dir: str, ids=None):
    cfg, W, dtypes = load_model_dir(model_dir)
    spec = resolve(cfg)
    if ids is None:
        with open(os.path.join(model_dir, "input_ids.json")) as f:
            ids = json.load(f)
    st = Stats()
    logits = forward(spec, W, ids, st)
    return logits, st, spec, dtypes


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------

def cmd_check(dirs):
    worst = 0.0
    for d in dirs:
        logits, st, spec, _ = run_dir(d)
        with open(os.path.join(d, "meta.json")) as f:
            meta = json.load(f)
        ref = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(meta["shape"]).astype(np.float64)
        diff = float(np.max(np.abs(logits - ref)))
        worst = max(worst, diff)
        print(f"{d}: {spec.kind} max|diff| = {diff:.3e}  max|logit| = {np.max(np.abs(logits)):.3f}  "
              f"min_router_top_k_gap = {st.min_gap:.6g} (meta {meta.get('min_router_top_k_gap')})")
    print(f"worst max|diff| = {worst:.3e}")
    return worst


# --------------------------------------------------------------------------------------
# Fixture generation
# --------------------------------------------------------------------------------------

def _lin(rng, out_f, in_f, gain=1.0):
    return rng.standard_normal((out_f, in_f)) * (gain / math.sqrt(in_f))


def _norm_w(rng, n):
    return 1.0 + 0.2 * rng.standard_normal(n)


def gen_weights(spec: Spec, c: dict, rng) -> dict:
    """Random init scaled so that logits are O(1) and routing is non-trivial (mirrors the golden sets)."""
    W, p = {}, spec.prefix
    H, hd, nh, nkv = spec.H, spec.hd, spec.nh, spec.nkv
    # Tied models reuse the embedding as the output head: keep it small enough for O(1) logits.
    W[p + "embed_tokens.weight"] = rng.standard_normal((spec.vocab, H)) * (0.2 if spec.tie else 1.0)
    W[p + "norm.weight"] = _norm_w(rng, H)
    if not spec.tie:
        W[spec.lm_head_name] = _lin(rng, spec.vocab, H)
    for li in range(spec.L):
        lp = f"{p}layers.{li}."
        a = lp + "self_attn."
        W[lp + "input_layernorm.weight"] = _norm_w(rng, H)
        W[lp + "post_attention_layernorm.weight"] = _norm_w(rng, H)
        W[a + "q_proj.weight"] = _lin(rng, nh * hd, H, 2.0)
        W[a + "k_proj.weight"] = _lin(rng, nkv * hd, H, 2.0)
        W[a + "v_proj.weight"] = _lin(rng, nkv * hd, H)
        W[a + "o_proj.weight"] = _lin(rng, H, nh * hd)
        if spec.qkv_bias:
            for n, m in (("q_proj", nh * hd), ("k_proj", nkv * hd), ("v_proj", nkv * hd)):
                W[a + n + ".bias"] = 0.3 * rng.standard_normal(m)
        if spec.o_bias:
            W[a + "o_proj.bias"] = 0.1 * rng.standard_normal(H)
        if spec.kind == "olmoe":
            W[a + "q_norm.weight"] = _norm_w(rng, nh * hd)
            W[a + "k_norm.weight"] = _norm_w(rng, nkv * hd)
        if spec.kind == "qwen3_moe":
            W[a + "q_norm.weight"] = _norm_w(rng, hd)
            W[a + "k_norm.weight"] = _norm_w(rng, hd)

        def dense(base, I):
            W[base + "gate_proj.weight"] = _lin(rng, I, H)
            W[base + "up_proj.weight"] = _lin(rng, I, H)
            W[base + "down_proj.weight"] = _lin(rng, H, I)

        if spec.kind == "mixtral":
            b = lp + "block_sparse_moe."
            E, I = c["num_local_experts"], c["intermediate_size"]
            W[b + "gate.weight"] = _lin(rng, E, H)
            for e in range(E):
                W[f"{b}experts.{e}.w1.weight"] = _lin(rng, I, H)
                W[f"{b}experts.{e}.w3.weight"] = _lin(rng, I, H)
                W[f"{b}experts.{e}.w2.weight"] = _lin(rng, H, I)
        elif spec.kind in ("qwen2_moe", "qwen3_moe", "olmoe"):
            b = lp + "mlp."
            if not spec.is_moe[li]:
                dense(b, c["intermediate_size"])
                continue
            E = c["num_experts"]
            I = c["moe_intermediate_size"] if spec.kind != "olmoe" else c["intermediate_size"]
            W[b + "gate.weight"] = _lin(rng, E, H)
            for e in range(E):
                dense(f"{b}experts.{e}.", I)
            if spec.kind == "qwen2_moe":
                dense(b + "shared_expert.", c["shared_expert_intermediate_size"])
                W[b + "shared_expert_gate.weight"] = _lin(rng, 1, H)
        else:
            b = lp + "feed_forward."
            if not spec.is_moe[li]:
                dense(b, spec.dense_I)
                continue
            E, I = c["num_local_experts"], c["intermediate_size"]
            W[b + "router.weight"] = _lin(rng, E, H)
            W[b + "experts.gate_up_proj"] = rng.standard_normal((E, H, 2 * I)) / math.sqrt(H)
            W[b + "experts.down_proj"] = rng.standard_normal((E, I, H)) / math.sqrt(I)
            dense(b + "shared_expert.", I)
    return W


def _base(arch, model_type, **kw):
    c = {"architectures": [arch], "model_type": model_type}
    c.update(kw)
    return c


_COMMON = dict(hidden_act="silu", initializer_range=0.02, use_cache=True, attention_dropout=0.0,
               output_router_logits=False, bos_token_id=1, eos_token_id=2, pad_token_id=None)

# Each variant: config, storage dtype, seq length, number of shards, notes.
VARIANTS = {
    "mixtral_bf16_sliding_tied": dict(
        config=_base("MixtralForCausalLM", "mixtral", vocab_size=160, hidden_size=48, intermediate_size=24,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                     max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
                     sliding_window=6, num_local_experts=6, num_experts_per_tok=2, router_aux_loss_coef=0.001,
                     router_jitter_noise=0.0, rope_theta=10000.0,
                     rope_scaling={"type": "linear", "factor": 2.0}, torch_dtype="bfloat16", **_COMMON),
        dtype="BF16", seq=32, shards=1,
        exercises=["BF16 weights (upcast exactly)", "sliding_window=6 on every layer (Mixtral rule)",
                   "tie_word_embeddings=true with no lm_head tensor",
                   "legacy rope_scaling key with BC field name 'type' = linear, factor 2 (+ top-level rope_theta)",
                   "head_dim key (12) with hidden 48 / 4 heads"]),
    "qwen2_moe_sparse_f16": dict(
        config=_base("Qwen2MoeForCausalLM", "qwen2_moe", vocab_size=192, hidden_size=48, intermediate_size=40,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                     max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=False,
                     use_sliding_window=True, sliding_window=5, max_window_layers=3, decoder_sparse_step=2,
                     mlp_only_layers=[3], moe_intermediate_size=16, shared_expert_intermediate_size=24,
                     num_experts=6, num_experts_per_tok=2, norm_topk_prob=True, qkv_bias=True,
                     router_aux_loss_coef=0.001, rope_theta=1000000.0, torch_dtype="float16", **_COMMON),
        dtype="F16", seq=28, shards=1,
        exercises=["F16 weights", "decoder_sparse_step=2 -> layers 0 and 2 dense (intermediate_size 40)",
                   "mlp_only_layers=[3] -> layer 3 dense although (3+1)%2==0; only layer 1 is MoE",
                   "norm_topk_prob=true", "q/k/v bias via qkv_bias (o_proj has no bias)",
                   "use_sliding_window=true, sliding_window=5, max_window_layers=3, layer_types ABSENT: "
                   "current Qwen2MoeConfig derives sliding for i with (i+1)%2!=0 and i<max_window_layers "
                   "-> layers 0 and 2 sliding, 1 and 3 full",
                   "shared expert with sigmoid(shared_expert_gate) on the MoE layer"]),
    "qwen3_moe_sharded_llama3rope": dict(
        config=_base("Qwen3MoeForCausalLM", "qwen3_moe", vocab_size=176, hidden_size=48, intermediate_size=56,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=False,
                     attention_bias=False, use_sliding_window=True, sliding_window=7, max_window_layers=2,
                     decoder_sparse_step=1, mlp_only_layers=[1], moe_intermediate_size=20, num_experts=5,
                     num_experts_per_tok=2, norm_topk_prob=False, router_aux_loss_coef=0.001,
                     rope_theta=10000.0,
                     rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                     torch_dtype="float32", **_COMMON),
        dtype="F32", seq=30, shards=2,
        exercises=["2 safetensors shards + model.safetensors.index.json",
                   "head_dim=16 with hidden 48 / 4 heads (q_proj out 64 != hidden 48)",
                   "per-head q_norm/k_norm [head_dim] before RoPE", "mlp_only_layers=[1] -> layer 1 dense",
                   "norm_topk_prob=false (weights are raw softmax probs)",
                   "use_sliding_window=true, sliding_window=7, max_window_layers=2: current Qwen3MoeModel "
                   "(MixtralModel.forward) windows EVERY layer; max_window_layers is ignored",
                   "rope_scaling llama3 (factor 8, low 1, high 4, original_max_position_embeddings 32): "
                   "low-, medium- and high-frequency bands all present"]),
    "olmoe_clip_tied": dict(
        config=_base("OlmoeForCausalLM", "olmoe", vocab_size=144, hidden_size=32, intermediate_size=16,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
                     attention_bias=False, clip_qkv=1.5, num_experts=6, num_experts_per_tok=2,
                     norm_topk_prob=True, router_aux_loss_coef=0.01, rope_theta=10000.0,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                     torch_dtype="float32", **dict(_COMMON, pad_token_id=1, bos_token_id=None)),
        dtype="F32", seq=24, shards=1,
        exercises=["clip_qkv=1.5 applied AFTER q_norm/k_norm (full-projection norms) and to raw v",
                   "norm_topk_prob=true", "tie_word_embeddings=true, no lm_head tensor",
                   "modern rope_parameters dict"]),
    "llama4_interleave": dict(
        config=_base("Llama4ForCausalLM", "llama4_text", vocab_size=200, hidden_size=48, intermediate_size=16,
                     intermediate_size_mlp=40, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                     head_dim=12, max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=False,
                     num_local_experts=4, num_experts_per_tok=2, interleave_moe_layer_step=2, use_qk_norm=True,
                     router_aux_loss_coef=0.001, router_jitter_noise=0.0, no_rope_layer_interval=4,
                     attention_chunk_size=5, attn_temperature_tuning=True, floor_scale=3, attn_scale=0.1,
                     attention_bias=False,
                     rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 64},
                     torch_dtype="float32", **_COMMON),
        dtype="F32", seq=30, shards=1,
        exercises=["moe_layers ABSENT, interleave_moe_layer_step=2 -> moe_layers [1, 3]; layers 0, 2 dense "
                   "with intermediate_size_mlp=40 (experts/shared use intermediate_size=16)",
                   "no_rope_layers ABSENT -> default [1,1,1,0] (interval 4): layer 3 is NoPE",
                   "layer_types ABSENT -> chunked_attention on RoPE layers 0-2, full on layer 3",
                   "attention_chunk_size=5 with seq 30 (6 chunks)",
                   "num_experts_per_tok=2 (two sigmoid-scaled expert inputs summed)",
                   "attn_temperature_tuning with floor_scale=3 on the NoPE layer",
                   "use_qk_norm on RoPE layers only", "rope_parameters llama3 (modern key)", "head_dim=12"]),
    "llama4_conditional_bf16": dict(
        config={"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
                "boi_token_index": 200080, "eoi_token_index": 200081, "image_token_index": 200092,
                "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                "text_config": dict(model_type="llama4_text", vocab_size=224, hidden_size=48, intermediate_size=16,
                                    intermediate_size_mlp=32, num_hidden_layers=3, num_attention_heads=4,
                                    num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                                    rms_norm_eps=1e-5, tie_word_embeddings=False, num_local_experts=4,
                                    num_experts_per_tok=1, moe_layers=[0, 2], interleave_moe_layer_step=1,
                                    use_qk_norm=False, no_rope_layers=[1, 0, 1], no_rope_layer_interval=4,
                                    attention_chunk_size=8, attn_temperature_tuning=True, floor_scale=4,
                                    attn_scale=0.1, attention_bias=False, router_aux_loss_coef=0.001,
                                    router_jitter_noise=0.0, rope_theta=500000.0,
                                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 1.0,
                                                  "original_max_position_embeddings": 32},
                                    torch_dtype="bfloat16", **_COMMON),
                "vision_config": {"model_type": "llama4_vision_model", "hidden_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "intermediate_size": 64, "image_size": 28,
                                  "patch_size": 14, "num_channels": 3, "vision_output_dim": 64,
                                  "projector_input_dim": 64, "projector_output_dim": 64,
                                  "pixel_shuffle_ratio": 0.5, "norm_eps": 1e-5,
                                  "vision_feature_select_strategy": "default", "rope_theta": 10000}},
        dtype="BF16", seq=26, shards=1,
        exercises=["Llama4ForConditionalGeneration: nested text_config, tensors under language_model.model.* and "
                   "language_model.lm_head.weight (vision tensors omitted)",
                   "BF16", "use_qk_norm=false", "top-1 routing", "MQA (1 kv head)",
                   "explicit moe_layers [0,2] (layer 1 dense, intermediate_size_mlp=32)",
                   "explicit no_rope_layers [1,0,1]; layer_types absent -> derived",
                   "chunk 8 with seq 26", "temperature tuning (floor_scale 4) on NoPE layer 1",
                   "legacy rope_scaling llama3 with high_freq_factor == low_freq_factor (as in Llama-4-Scout): "
                   "0/0 in the smooth factor must not leak (no medium band)"]),
}


GAP_MIN = 3e-3  # required: >= 1e-3; we ask for a little more margin


def make_variant(name: str, v: dict, out_root: str, max_tries: int = 200, seed_base: int = 1000):
    cfg = v["config"]
    spec = resolve(cfg)
    c = cfg["text_config"] if "text_config" in cfg else cfg
    for attempt in range(max_tries):
        seed = seed_base + attempt
        rng = np.random.default_rng(seed)
        W = gen_weights(spec, c, rng)
        Wq = {k: quantize(a, v["dtype"]) for k, a in W.items()}  # compute from weights AS STORED
        ids = rng.integers(0, spec.vocab, size=v["seq"]).tolist()
        st = Stats()
        logits = forward(spec, Wq, ids, st)
        if st.min_gap >= GAP_MIN and np.all(np.isfinite(logits)) and (spec.clip_qkv is None or st.clip_changed > 0):
            break
    else:
        raise RuntimeError(f"{name}: no seed satisfied the router gap constraint")

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    for fn in os.listdir(d):
        os.remove(os.path.join(d, fn))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if v["shards"] == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), W, v["dtype"])
    else:
        names = sorted(W)
        n = v["shards"]
        per = (len(names) + n - 1) // n
        weight_map, total = {}, 0
        for i in range(n):
            fn = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            part = {k: W[k] for k in names[i * per:(i + 1) * per]}
            total += write_safetensors(os.path.join(d, fn), part, v["dtype"])
            weight_map.update({k: fn for k in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
            f.write("\n")
    with open(os.path.join(d, "input_ids.json"), "w") as f:
        json.dump(ids, f)
        f.write("\n")
    logits.astype("<f4").tofile(os.path.join(d, "logits.f32"))

    # Self-check: reload from disk through the normal reader path and recompute.
    re_logits, re_st, _, dtypes = run_dir(d)
    assert np.array_equal(re_logits, logits), "reloaded fixture does not reproduce logits"
    assert set(dtypes.values()) == {v["dtype"]}

    meta = {
        "architecture": cfg["architectures"][0],
        "model_type": cfg["model_type"],
        "shape": [len(ids), spec.vocab],
        "dtype": "float32",
        "byte_order": "little",
        "layout": "row-major [seq, vocab]",
        "compute_dtype": "float64",
        "weight_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[v["dtype"]],
        "seed": seed,
        "generator": "numpy.random.default_rng(seed); tools/oracle/hf_moe_oracle.py",
        "max_abs_logit": float(np.max(np.abs(logits))),
        "min_router_top_k_gap": st.min_gap,
        "min_router_top_k_gap_at": {"layer": st.gap_where[0], "token": st.gap_where[1]},
        "layer_masks": [list(m) for m in spec.masks],
        "moe_layers": [i for i in range(spec.L) if spec.is_moe[i]],
        "expert_token_counts": {str(k): v_ for k, v_ in st.expert_counts.items()},
        "exercises": v["exercises"],
    }
    if spec.kind == "llama4_text":
        meta["use_rope_per_layer"] = spec.use_rope
        meta["layer_types"] = spec.layer_types
    if spec.kind == "qwen2_moe":
        meta["layer_types_derived"] = spec.layer_types
    if spec.clip_qkv is not None:
        meta["clip_qkv_values_changed"] = st.clip_changed
        meta["clip_qkv_values_total"] = st.clip_total
    if spec.rope["rope_type"] != "default":
        inv0 = inv_freq(dict(spec.rope, rope_type="default"), spec.hd)
        inv1 = inv_freq(spec.rope, spec.hd)
        meta["rope_inv_freq_ratio_scaled_over_default"] = [float(r) for r in inv1 / inv0]
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(d, fn)) for fn in os.listdir(d))
    print(f"{name}: seed {seed}, min gap {st.min_gap:.4g}, max|logit| {meta['max_abs_logit']:.3f}, "
          f"{size / 1024:.0f} KiB" + (f", clip changed {st.clip_changed}/{st.clip_total}" if spec.clip_qkv else ""))


# The repository's own golden sets: the five architectures' tiny configs (tools/oracle/golden_configs,
# the same shapes and flags as the shared golden sets), fresh NumPy weights, 24 tokens, float32 storage.
GOLDEN_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_configs")
GOLDEN_EXERCISES = {
    "mixtral": ["GQA 4:2, 8 experts top-2 renormalised, rope_theta 1e6"],
    "qwen2_moe": ["q/k/v bias, shared expert with sigmoid gate, norm_topk_prob false"],
    "qwen3_moe": ["per-head q_norm/k_norm, norm_topk_prob true"],
    "olmoe": ["q_norm/k_norm over the full projections, rope_theta 1e4"],
    "llama4": ["layers 0, 2: RoPE + chunked attention (chunk 8) + qk L2 norm; layer 1: NoPE + temperature tuning "
               "(floor_scale 4); top-1 sigmoid routing on the expert input; shared expert"],
}


def make_golden(out_root: str, only=None):
    for name in sorted(GOLDEN_EXERCISES):
        if only and name not in only:
            continue
        with open(os.path.join(GOLDEN_CONFIGS, name + ".json")) as f:
            cfg = json.load(f)
        v = dict(config=cfg, dtype="F32", seq=24, shards=1, exercises=GOLDEN_EXERCISES[name])
        make_variant(name, v, out_root, seed_base=1)


# --------------------------------------------------------------------------------------
# Sensitivity: show that each fixture's flag matters (mutate the resolved spec, recompute)
# --------------------------------------------------------------------------------------

def _mut(**kw):
    def f(spec):
        for k, v in kw.items():
            setattr(spec, k, v(spec) if callable(v) else v)
    return f


SENSITIVITY = {
    "mixtral_bf16_sliding_tied": {
        "no sliding window": _mut(masks=lambda s: [("full",)] * s.L),
        "window 7 instead of 6 (off-by-one)": _mut(masks=lambda s: [("sliding", 7)] * s.L),
        "rope default (ignore linear factor)": _mut(rope=lambda s: dict(s.rope, rope_type="default")),
    },
    "qwen2_moe_sparse_f16": {
        "Qwen2 (dense) rule i >= max_window_layers": _mut(
            masks=lambda s: [("sliding", 5) if i >= 3 else ("full",) for i in range(s.L)]),
        "sliding on all layers": _mut(masks=lambda s: [("sliding", 5)] * s.L),
        "norm_topk_prob false": _mut(norm_topk=False),
    },
    "qwen3_moe_sharded_llama3rope": {
        "no sliding window": _mut(masks=lambda s: [("full",)] * s.L),
        "sliding only for i >= max_window_layers": _mut(
            masks=lambda s: [("sliding", 7) if i >= 2 else ("full",) for i in range(s.L)]),
        "rope default (ignore llama3)": _mut(rope=lambda s: dict(s.rope, rope_type="default")),
        "norm_topk_prob true": _mut(norm_topk=True),
    },
    "olmoe_clip_tied": {
        "no clip_qkv": _mut(clip_qkv=None),
        "clip before q_norm/k_norm": _mut(_clip_before_norm=True),
        "norm_topk_prob false": _mut(norm_topk=False),
    },
    "llama4_interleave": {
        "no chunking": _mut(masks=lambda s: [("full",)] * s.L),
        "no temperature tuning": _mut(temp_tuning=False),
        "no qk norm": _mut(use_qk_norm=False),
        "rope default (ignore llama3)": _mut(rope=lambda s: dict(s.rope, rope_type="default")),
        "RoPE on every layer": _mut(use_rope=lambda s: [1] * s.L),
        "router score scales expert OUTPUT": _mut(_scale_output=True),
    },
    "llama4_conditional_bf16": {
        "rope default (ignore llama3)": _mut(rope=lambda s: dict(s.rope, rope_type="default")),
        "no temperature tuning": _mut(temp_tuning=False),
        "no chunking": _mut(masks=lambda s: [("full",)] * s.L),
        "qk norm on (wrongly)": _mut(use_qk_norm=True),
    },
}


def cmd_sensitivity(root):
    for name, muts in SENSITIVITY.items():
        d = os.path.join(root, name)
        base, _, _, _ = run_dir(d)
        cfg, W, _ = load_model_dir(d)
        with open(os.path.join(d, "input_ids.json")) as f:
            ids = json.load(f)
        for label, m in muts.items():
            spec = resolve(cfg)
            m(spec)
            alt = forward(spec, W, ids)
            print(f"{name:30s} {label:45s} max|diff| = {np.max(np.abs(alt - base)):.3g}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p1 = sub.add_parser("check")
    p1.add_argument("dirs", nargs="+")
    p1.add_argument("--tol", type=float, default=1e-5)
    p2 = sub.add_parser("logits")
    p2.add_argument("model_dir")
    p2.add_argument("--ids")
    p2.add_argument("--out")
    p3 = sub.add_parser("make-variants")
    p3.add_argument("out_dir")
    p3.add_argument("--only", nargs="*")
    p5 = sub.add_parser("make-golden")
    p5.add_argument("out_dir")
    p5.add_argument("--only", nargs="*")
    p4 = sub.add_parser("sensitivity")
    p4.add_argument("variants_dir")
    a = ap.parse_args(argv)
    if a.cmd == "sensitivity":
        cmd_sensitivity(a.variants_dir)
        return 0
    if a.cmd == "check":
        dirs = []
        for d in a.dirs:  # accept the golden root as well as individual sets
            if os.path.exists(os.path.join(d, "config.json")):
                dirs.append(d)
            else:
                dirs += sorted(os.path.join(d, x) for x in os.listdir(d) if os.path.exists(os.path.join(d, x, "config.json")))
        worst = cmd_check(dirs)
        return 0 if worst < a.tol else 1
    if a.cmd == "logits":
        ids = None
        if a.ids:
            with open(a.ids) as f:
                ids = json.load(f)
        logits, st, spec, _ = run_dir(a.model_dir, ids)
        if a.out:
            logits.astype("<f4").tofile(a.out)
        print(f"{spec.kind}: shape {logits.shape}, max|logit| {np.max(np.abs(logits)):.4f}, min gap {st.min_gap:.4g}")
        return 0
    if a.cmd == "make-golden":
        make_golden(a.out_dir, a.only)
        return 0
    if a.cmd == "make-variants":
        for name, v in VARIANTS.items():
            if a.only and name not in a.only:
                continue
            make_variant(name, v, a.out_dir)
        return 0


if __name__ == "__main__":
    sys.exit(main())
