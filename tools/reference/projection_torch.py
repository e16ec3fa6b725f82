"""The anchor of `ferret bench projection`: Ferret's reference way of projecting an update.

For each of K seeds: torch.manual_seed, trunc_normal_ into a tensor of N elements cut at +-1/sqrt(N),
then a dot product with the update. Prints elements per second (N * K / time) as JSON.
Run with Debian's python3 and python3-torch: /usr/bin/python3 tools/reference/projection_torch.py
"""
import argparse
import json
import math
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--length", type=int, default=10_000_000)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    delta = torch.rand(a.length) - 0.5
    basis = torch.empty(a.length)
    bound = 1.0 / math.sqrt(a.length)
    best = float("inf")
    for _ in range(a.repeat):
        start = time.perf_counter()
        for k in range(a.seeds):
            torch.manual_seed(k)
            torch.nn.init.trunc_normal_(basis, mean=0.0, std=1.0, a=-bound, b=bound)
            torch.dot(delta, basis).item()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"project_elements_per_s": round(a.length * a.seeds / best), "length": a.length,
                      "seeds": a.seeds, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
