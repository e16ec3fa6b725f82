"""The anchor of `ferret bench train`: PyTorch (CPU, eager) training steps of the same LLaMA.

Forward, backward and an SGD update with the reference LlamaForCausalLM math of causal_lm_reference.py,
on an exported artifact package's weights (or, with --random-init, random weights of the manifest's shapes, so
the file is never read and the peak RSS is the training's alone), batch 1 x seq 128 of random tokens. Prints
tokens per second and the peak resident set size.
    /usr/bin/python3 tools/reference/bench_train_torch.py ARTIFACT_DIR [--threads 2] [--steps 20] [--random-init]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from causal_lm_reference import causal_lm_loss, gpt2_logits, llama_logits, read_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--random-init", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    manifest = json.load(open(f"{a.artifact}/manifest.json"))
    cfg = manifest["modelConfig"]
    if a.random_init:
        params = {t["name"]: torch.empty(t["shape"]).normal_(0, 0.02) for t in manifest["parameters"]}
    else:
        params = read_safetensors(f"{a.artifact}/{manifest['parametersFile']}")
    for t in params.values():
        t.requires_grad_(True)
    opt = torch.optim.SGD(list(params.values()), lr=1e-4)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, cfg["vocab_size"], (a.batch, a.seq), generator=g)
    mask = torch.ones_like(ids)
    forward = llama_logits if cfg["model_type"] == "llama" else gpt2_logits

    def step():
        opt.zero_grad(set_to_none=True)
        loss = causal_lm_loss(forward(params, cfg, ids, mask), ids)
        loss.backward()
        opt.step()
        return float(loss)

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    elapsed = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": round(a.batch * a.seq * a.steps / elapsed, 1), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "final_loss": loss,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
