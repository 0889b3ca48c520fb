#!/usr/bin/env python3
"""PyTorch's fp32 LeNet-5 training step, the peer of bench_nn's steps: the layers of
experiments/lenet5/fp32.toml, batch 64, Adam (lr 0.002), cross-entropy, on random 28x28 inputs.

Usage: peer_pytorch.py THREADS [STEPS]. Prints the median step time in ms over STEPS timed steps
(after 20 warm-up steps) as one line: `pytorch_fp32_step_ms THREADS MS`.
"""
import statistics
import sys
import time

import torch
from torch import nn

threads = int(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
torch.set_num_threads(threads)
torch.manual_seed(1)

model = nn.Sequential(
    nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
    nn.Linear(120, 84), nn.ReLU(),
    nn.Linear(84, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=0.002)
loss_fn = nn.CrossEntropyLoss()
x = torch.rand(64, 1, 28, 28)
y = torch.randint(0, 10, (64,))


def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


for _ in range(20):
    step()
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(f"pytorch_fp32_step_ms {threads} {statistics.median(times) * 1e3:.3f}")
