"""What every behemoth-nano script agrees on: paths, special ids, the translation prompt, the model's
config.json, and safetensors reading/writing (written here: the format is a u64 header length, a JSON
header, then raw little-endian tensors)."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MODEL_DIR = os.path.join(REPO, "models", "behemoth-nano")
WORK_DIR = os.path.join(HERE, "work")

UNK, BOS, EOS, PAD = 0, 1, 2, 3

# The one prompt format of the translation task. A device profile for live translation is carved with
# calibration text in this format, and the chrF evaluation prompts with everything up to "Italian:".
TRANSLATION_PROMPT = "English: {en}\nItalian:"


def translation_text(en: str, it: str) -> str:
    return TRANSLATION_PROMPT.format(en=en) + " " + it


def translation_prompt(en: str) -> str:
    return TRANSLATION_PROMPT.format(en=en)


def nano_config(vocab: int = 6144) -> dict:
    """config.json for behemoth-nano: every key Llama4TextConfig reads, with its real meaning.

    All four layers are MoE layers (16 routed experts, top-1 sigmoid routing, one shared expert).
    Layer 3 is a NoPE layer (no_rope_layer_interval 4) with full attention and attention temperature
    tuning; layers 0-2 use RoPE, QK L2-norm and chunked attention (chunks of 128 tokens)."""
    layers = 4
    interval = 4
    no_rope = [int((i + 1) % interval != 0) for i in range(layers)]
    return {
        "architectures": ["Llama4ForCausalLM"],
        "model_type": "llama4_text",
        "vocab_size": vocab,
        "hidden_size": 256,
        "intermediate_size": 160,
        "intermediate_size_mlp": 512,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-05,
        "use_cache": True,
        "pad_token_id": PAD,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "tie_word_embeddings": True,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_dropout": 0.0,
        "attention_bias": False,
        "num_experts_per_tok": 1,
        "num_local_experts": 16,
        "moe_layers": list(range(layers)),
        "interleave_moe_layer_step": 1,
        "use_qk_norm": True,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.01,
        "router_jitter_noise": 0.0,
        "no_rope_layers": no_rope,
        "no_rope_layer_interval": interval,
        "attention_chunk_size": 128,
        "layer_types": ["chunked_attention" if r else "full_attention" for r in no_rope],
        "attn_temperature_tuning": True,
        "floor_scale": 64,
        "attn_scale": 0.1,
        "torch_dtype": "bfloat16",
    }


def generation_config(cfg: dict) -> dict:
    return {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
            "pad_token_id": cfg["pad_token_id"], "do_sample": False, "max_new_tokens": 128}


_DTYPES = {torch.float32: ("F32", torch.float32), torch.bfloat16: ("BF16", torch.int16), torch.float16: ("F16", torch.int16)}


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """Writes tensors (name -> torch tensor) in name order, through a temp file and a rename."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        tag, view = _DTYPES[t.dtype]
        raw = t.view(view).numpy().tobytes() if view != t.dtype else t.numpy().tobytes()
        header[name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path: str) -> dict:
    """Reads every tensor as float32 (BF16/F16 upcast exactly)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = data[a:b]
        if e["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif e["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {e['dtype']}")
        out[name] = torch.from_numpy(arr.reshape(e["shape"]).copy())
    return out


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
