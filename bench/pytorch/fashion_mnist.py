#!/usr/bin/env python3
"""PyTorch reference for `iogrid bench workloads` on a GPU: the same model, batch size, optimiser and data as
iogrid's trainer and batch inference, timed the same way, so the two rates can be compared in one run.

  fashion_mnist.py --mode train|infer --images FILE --labels FILE [--model mlp|cnn] [--layers 784,256,128,10]
                   [--batch 64] [--epochs 3] [--lr 0.05] [--device cuda:0] [--threads N]

FILE: the bench writes the images as raw u8 pixels (N x 784, row-major) and the labels as raw little-endian
int32. The data is moved to the device once, as iogrid's workers hold their shard; each step gathers a shuffled
batch there and scales it to [0, 1], as iogrid's model does.
- train: SGD with momentum 0.9 on softmax cross-entropy; one warm-up epoch (not counted), then --epochs epochs;
  the rate is the median epoch's samples/s (loss and hits summed on the device, read once per epoch).
- infer: the model in eval mode under no_grad, batches of --batch, predictions gathered on the device and read
  once per pass; one warm-up pass, then --epochs passes; the rate is the median pass's images/s.
Prints one JSON line: {"mode", "model", "device", "torch", "rate", "runs", "accuracy"}.
"""
import argparse
import json
import os
import statistics
import sys
import time


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["train", "infer"], required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--layers", default="784,256,128,10", help="the MLP's widths")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (train) or passes (infer), after one warm-up")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for PyTorch, its OpenMP and its BLAS library (0: their defaults)")
    return p.parse_args()


ARGS = arguments()
if ARGS.threads > 0:  # before the libraries load: OpenBLAS sizes its own thread pool from these
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the bench reads this line and skips the row, saying why
    print(json.dumps({"error": "PyTorch is not installed here (%s)" % e}))
    sys.exit(3)


def build(kind, layers):
    if kind == "mlp":
        mods = []
        for i in range(len(layers) - 1):
            mods.append(nn.Linear(layers[i], layers[i + 1]))
            if i + 2 < len(layers):
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)
    # iogrid::nn::small_cnn(): conv 16 and conv 32 (3x3, 'same'), ReLU, 2x2 max-pooling, then 1568-128-10.
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def load(images, labels, features):
    with open(images, "rb") as f:
        x = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    with open(labels, "rb") as f:
        y = torch.frombuffer(bytearray(f.read()), dtype=torch.int32)
    if x.numel() != y.numel() * features:
        raise SystemExit("fashion_mnist.py: %d pixels for %d labels of %d features" % (x.numel(), y.numel(), features))
    return x.view(-1, features), y.long()


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train(model, x, y, args, dev):
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    n, b = x.shape[0], args.batch
    steps = n // b
    rates, acc = [], 0.0
    for epoch in range(args.epochs + 1):  # epoch 0 warms up (cuBLAS/cuDNN heuristics, the allocator)
        perm = torch.randperm(n, device=dev)
        loss_sum = torch.zeros((), device=dev)
        hits = torch.zeros((), device=dev, dtype=torch.long)
        sync(dev)
        t0 = time.perf_counter()
        for s in range(steps):
            idx = perm[s * b:(s + 1) * b]
            xb = x[idx].float().div_(255.0)
            yb = y[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            hits += (out.argmax(1) == yb).sum()
        sync(dev)
        dt = time.perf_counter() - t0
        acc = hits.item() / (steps * b)
        if epoch > 0:
            rates.append(steps * b / dt)
    return rates, acc


@torch.no_grad()
def infer(model, x, y, args, dev):
    model.eval()
    n, b = x.shape[0], args.batch
    rates, acc = [], 0.0
    for rep in range(args.epochs + 1):  # pass 0 warms up
        preds = torch.empty(n, dtype=torch.long, device=dev)
        sync(dev)
        t0 = time.perf_counter()
        for at in range(0, n, b):
            xb = x[at:at + b].float().div_(255.0)
            preds[at:at + b] = model(xb).argmax(1)
        got = preds.cpu()
        dt = time.perf_counter() - t0
        acc = (got == y.cpu()).float().mean().item()
        if rep > 0:
            rates.append(n / dt)
    return rates, acc


def main():
    args = ARGS
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "PyTorch sees no CUDA device (torch %s)" % torch.__version__}))
        sys.exit(3)
    torch.manual_seed(args.seed)
    layers = [int(v) for v in args.layers.split(",")]
    x, y = load(args.images, args.labels, 784 if args.model == "cnn" else layers[0])
    x, y = x.to(dev), y.to(dev)
    model = build(args.model, layers).to(dev)
    rates, acc = (train if args.mode == "train" else infer)(model, x, y, args, dev)
    print(json.dumps({"mode": args.mode, "model": args.model, "device": str(dev), "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "rate": statistics.median(rates), "runs": rates, "accuracy": acc}))


if __name__ == "__main__":
    main()
