"""Independent PyTorch reference of the Hugging Face causal-LM loss for Ferret.NET's exported graphs.

Implements LlamaForCausalLM and GPT2LMHeadModel (eager, fp32, no cache) from their published math,
reads the artifact package's params.safetensors and manifest.json, runs one batch and writes the loss
and gradients as JSON. transformers is not needed (and not installed here).

    /usr/bin/python3 tools/reference/causal_lm_reference.py ARTIFACT_DIR BATCH.json OUT.json
BATCH.json: {"input_ids": [[...]], "attention_mask": [[...]], "labels": [[...]]}

With --hf it reads a Hugging Face folder instead (config.json with transformers' field names and
model.safetensors, as `ferret model` writes them) and writes the logits of the batch:

    /usr/bin/python3 tools/reference/causal_lm_reference.py --hf HF_DIR BATCH.json OUT.json
"""
import json
import math
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", meta["dtype"]
        a, b = meta["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(meta["shape"]).copy())
    return tensors


def causal_padding_mask(attention_mask, seq):
    # Additive mask [B, 1, S, S]: 0 where query i may see key j (j <= i and key not padding), else finfo.min.
    allowed = torch.ones(seq, seq, dtype=torch.bool).tril()[None, None] & attention_mask.bool()[:, None, None, :]
    return torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)


def rms_norm(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def llama_logits(p, cfg, ids, mask):
    bsz, seq = ids.shape
    h, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // nh
    eps = cfg["norm_eps"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = torch.arange(seq, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    bias = causal_padding_mask(mask, seq)
    x = p["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        y = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (y @ p[pre + "self_attn.q_proj.weight"].T).view(bsz, seq, nh, hd).transpose(1, 2)
        k = (y @ p[pre + "self_attn.k_proj.weight"].T).view(bsz, seq, nkv, hd).transpose(1, 2)
        v = (y @ p[pre + "self_attn.v_proj.weight"].T).view(bsz, seq, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k[:, :, None].expand(bsz, nkv, rep, seq, hd).reshape(bsz, nh, seq, hd)
        v = v[:, :, None].expand(bsz, nkv, rep, seq, hd).reshape(bsz, nh, seq, hd)
        w = torch.matmul(q, k.transpose(2, 3)) * (hd ** -0.5) + bias
        w = torch.softmax(w, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, v).transpose(1, 2).reshape(bsz, seq, h)
        x = x + o @ p[pre + "self_attn.o_proj.weight"].T
        y = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        gate = y @ p[pre + "mlp.gate_proj.weight"].T
        up = y @ p[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ p[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_logits(p, cfg, ids, mask):
    bsz, seq = ids.shape
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = h // nh
    eps = cfg["norm_eps"]
    bias = causal_padding_mask(mask, seq)
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][torch.arange(seq)][None]
    for i in range(cfg["num_hidden_layers"]):
        pre = f"transformer.h.{i}."
        y = torch.nn.functional.layer_norm(x, (h,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        qkv = y @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]
        q, k, v = (t.view(bsz, seq, nh, hd).transpose(1, 2) for t in qkv.split(h, dim=2))
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + bias
        w = torch.softmax(w, dim=-1)
        o = torch.matmul(w, v).transpose(1, 2).reshape(bsz, seq, h)
        x = x + o @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        y = torch.nn.functional.layer_norm(x, (h,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        x = x + gelu_new(y @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"]) @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
    x = torch.nn.functional.layer_norm(x, (h,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    return x @ p["transformer.wte.weight"].T


def causal_lm_loss(logits, labels):
    # Hugging Face: logits at t predict the label at t + 1; mean over labels that are not -100.
    shift_logits = logits[..., :-1, :].contiguous().view(-1, logits.shape[-1])
    shift_labels = labels[..., 1:].contiguous().view(-1)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)


def hf_config(path):
    """transformers' config.json field names -> the ones the forward functions read."""
    c = json.load(open(path))
    if c["model_type"] == "gpt2":
        return {"model_type": "gpt2", "hidden_size": c["n_embd"], "num_attention_heads": c["n_head"], "num_hidden_layers": c["n_layer"],
                "norm_eps": c.get("layer_norm_epsilon", 1e-5), "tie_word_embeddings": True}
    assert c["model_type"] == "llama", c["model_type"]
    return {"model_type": "llama", "hidden_size": c["hidden_size"], "num_attention_heads": c["num_attention_heads"],
            "num_key_value_heads": c.get("num_key_value_heads", c["num_attention_heads"]), "num_hidden_layers": c["num_hidden_layers"],
            "norm_eps": c.get("rms_norm_eps", 1e-6), "rope_theta": c.get("rope_theta", 10000.0),
            "tie_word_embeddings": c.get("tie_word_embeddings", False)}


def hf_logits(folder, batch_path, out_path):
    cfg = hf_config(f"{folder}/config.json")
    params = read_safetensors(f"{folder}/model.safetensors")
    batch = json.load(open(batch_path))
    ids = torch.tensor(batch["input_ids"], dtype=torch.int64)
    mask = torch.tensor(batch["attention_mask"], dtype=torch.int64)
    forward = llama_logits if cfg["model_type"] == "llama" else gpt2_logits
    with torch.no_grad():
        logits = forward(params, cfg, ids, mask)
    json.dump({"shape": list(logits.shape), "logits": [float(v) for v in logits.flatten()], "torch": torch.__version__}, open(out_path, "w"))


def main():
    if sys.argv[1] == "--hf":
        hf_logits(*sys.argv[2:5])
        return
    artifact, batch_path, out_path = sys.argv[1:4]
    manifest = json.load(open(f"{artifact}/manifest.json"))
    cfg = manifest["modelConfig"]
    params = read_safetensors(f"{artifact}/{manifest['parametersFile']}")
    for t in params.values():
        t.requires_grad_(True)
    batch = json.load(open(batch_path))
    ids = torch.tensor(batch["input_ids"], dtype=torch.int64)
    mask = torch.tensor(batch["attention_mask"], dtype=torch.int64)
    labels = torch.tensor(batch["labels"], dtype=torch.int64)
    forward = llama_logits if cfg["model_type"] == "llama" else gpt2_logits
    loss = causal_lm_loss(forward(params, cfg, ids, mask), labels)
    loss.backward()
    grads = {}
    for entry in manifest["parameters"]:
        g = params[entry["name"]].grad.detach().double()
        grads[entry["name"]] = {"norm": float(g.norm()), "first": [float(v) for v in g.flatten()[:8]],
                                "max_abs": float(g.abs().max())}
    json.dump({"loss": float(loss), "torch": torch.__version__, "gradients": grads}, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
