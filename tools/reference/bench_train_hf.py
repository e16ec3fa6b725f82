"""The PyTorch anchor of `ferret bench train` at scale: Hugging Face LlamaForCausalLM (eager attention, fp32
weights), SGD, the model shape read from an artifact package's manifest.json (weights random: the speed and the
memory do not depend on them, and a 7B model's 27 GB of weights need not be read). Prints one JSON line.

    python3 tools/reference/bench_train_hf.py ARTIFACT_DIR [--device cuda] [--tf32 1] [--batch 4] [--seq 512]
        [--steps 10] [--accumulate 1] [--precision fp32|bf16-autocast]

GPU memory: the peak this process held as NVML (nvidia-smi) reports it, sampled every 5 ms, and torch's own
max_memory_reserved. CPU memory: peak RSS (ru_maxrss).
"""
import argparse
import json
import resource
import threading
import time

import torch


def nvml_sampler(pid):
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # noqa: BLE001 - no NVML: report torch's figures only
        return None, None
    peak = [0]
    stop = threading.Event()

    def run():
        while not stop.is_set():
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if p.pid == pid and p.usedGpuMemory:
                    peak[0] = max(peak[0], p.usedGpuMemory)
            stop.wait(0.005)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return peak, stop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16-autocast"])
    a = ap.parse_args()
    import os
    from transformers import LlamaConfig, LlamaForCausalLM

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = bool(a.tf32)
    torch.backends.cudnn.allow_tf32 = bool(a.tf32)
    m = json.load(open(f"{a.artifact}/manifest.json"))["modelConfig"]
    cfg = LlamaConfig(vocab_size=m["vocab_size"], hidden_size=m["hidden_size"], intermediate_size=m["intermediate_size"],
                      num_hidden_layers=m["num_hidden_layers"], num_attention_heads=m["num_attention_heads"],
                      num_key_value_heads=m["num_key_value_heads"], rms_norm_eps=m["norm_eps"], rope_theta=m["rope_theta"],
                      max_position_embeddings=max(m.get("max_position_embeddings", 2048), a.seq),
                      tie_word_embeddings=m.get("tie_word_embeddings", False), attn_implementation="eager")
    peak, stop = nvml_sampler(os.getpid()) if a.device.startswith("cuda") else (None, None)
    with torch.device(a.device):
        model = LlamaForCausalLM(cfg)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), generator=g).to(a.device)

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = None
        for _ in range(a.accumulate):
            with torch.autocast(device_type=a.device.split(":")[0], dtype=torch.bfloat16, enabled=a.precision == "bf16-autocast"):
                loss = model(input_ids=ids, labels=ids).loss / a.accumulate
            loss.backward()
        opt.step()
        return float(loss) * a.accumulate

    for _ in range(a.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    elapsed = time.perf_counter() - start
    out = {"tokens_per_s": round(a.batch * a.seq * a.steps * a.accumulate / elapsed, 1), "final_loss": loss, "torch": torch.__version__,
           "parameters": sum(p.numel() for p in model.parameters()), "device": a.device, "tf32": bool(a.tf32) and a.device != "cpu",
           "precision": a.precision, "batch": a.batch, "seq": a.seq, "accumulate": a.accumulate,
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if a.device.startswith("cuda"):
        time.sleep(0.05)
        stop.set() if stop else None
        out["peak_device_bytes"] = peak[0] if peak else None
        out["torch_max_reserved_bytes"] = torch.cuda.max_memory_reserved()
        out["torch_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
