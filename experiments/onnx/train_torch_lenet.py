#!/usr/bin/env python3
"""Trains a LeNet-5 with BatchNorm in PyTorch on Fashion-MNIST, exports it with torch.onnx.export
(opset 13) to lenet5_bn.onnx, and writes PyTorch's own test accuracy and per-example predictions
(torch_predictions.csv) for bitsim's inference of the exported file to be compared with.

usage: /usr/bin/python3 train_torch_lenet.py [OUT_DIR]   (needs python3-torch; about a minute)"""
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
data = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist, as bitsim reads it


def idx(name):
    with gzip.open(f"{data}/{name}", "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw[16:], np.uint8).reshape(n, 1, rows, cols).astype(np.float32) / np.float32(255)
    return np.frombuffer(raw[8:], np.uint8).astype(np.int64)


xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
torch.manual_seed(1)
torch.set_num_threads(2)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.BatchNorm2d(6), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(6, 16, 5), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
    torch.nn.Linear(84, 10))
epochs, batch = 3, 64
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ((len(xtr) + batch - 1) // batch))
t0 = time.time()
for epoch in range(epochs):
    net.train()
    order = torch.randperm(len(xtr))
    for i in range(0, len(xtr), batch):
        sel = order[i:i + batch]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(xtr[sel])), torch.from_numpy(ytr[sel])).backward()
        opt.step()
        sched.step()
net.eval()
with torch.no_grad():
    logits = torch.cat([net(torch.from_numpy(xte[i:i + 1000])) for i in range(0, len(xte), 1000)])
pred = logits.argmax(1).numpy()
acc = float((pred == yte).mean())
torch.onnx.export(net, torch.from_numpy(xte[:1]), f"{out}/lenet5_bn.onnx", opset_version=13, input_names=["image"],
                  output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
with open(f"{out}/torch_predictions.csv", "w") as f:
    f.write("example,label,prediction\n")
    for e, (l, p) in enumerate(zip(yte, pred)):
        f.write(f"{e},{l},{p}\n")
with open(f"{out}/torch.json", "w") as f:
    json.dump({"torch": torch.__version__, "epochs": epochs, "batch": batch, "optimizer": "adam 2e-3, cosine per step",
               "test_accuracy": acc, "train_seconds": round(time.time() - t0, 1)}, f, indent=2)
print(f"PyTorch {torch.__version__}: test accuracy {acc:.4f}; wrote {out}/lenet5_bn.onnx")
