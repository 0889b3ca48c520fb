#!/usr/bin/env python3
"""Exports torchvision's ResNet-18 (python3-torchvision 0.14, its own code, random weights: no
pretrained file is downloaded) to ONNX twice, with torch.onnx.export (opset 13):

- resnet18_fmnist.onnx: the network as torchvision builds it for 10 classes, its first
  convolution taking 1 channel, for Fashion-MNIST's 28 x 28 images (stem stride 2, the padded 3x3
  stride-2 max pool, four stages with projection shortcuts, global average pooling), BatchNorm
  statistics drawn at random so that they are not the identity; and torch_resnet18_logits.csv,
  PyTorch's own logits for the first 1,000 test images, for bitsim's to be compared with.
- resnet18_224.onnx (not kept in the tree: 45 MB): the ImageNet network at 3 x 224 x 224, for
  `bitsim cost network --onnx` beside experiments/topologies/resnet18.csv.

usage: /usr/bin/python3 export_torchvision_resnet18.py [OUT_DIR]"""
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torchvision

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(5)

with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb") as f:
    raw = f.read()
n, rows, cols = struct.unpack(">III", raw[4:16])
images = torch.from_numpy(np.frombuffer(raw[16:], np.uint8).reshape(n, 1, rows, cols)[:1000].astype(np.float32) / np.float32(255))


def randomize_batchnorm(net):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.1, 0.1)


net = torchvision.models.resnet18(num_classes=10)
net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
randomize_batchnorm(net)
net.eval()
torch.onnx.export(net, images[:1], f"{out}/resnet18_fmnist.onnx", opset_version=13, input_names=["image"],
                  output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
with torch.no_grad():
    logits = net(images).double().numpy()
with open(f"{out}/torch_resnet18_logits.csv", "w") as f:
    f.write("example," + ",".join(f"logit_{c}" for c in range(10)) + "\n")
    for e, row in enumerate(logits):
        f.write(f"{e}," + ",".join(repr(float(v)) for v in row) + "\n")

imagenet = torchvision.models.resnet18()
imagenet.eval()
torch.onnx.export(imagenet, torch.zeros(1, 3, 224, 224), f"{out}/resnet18_224.onnx", opset_version=13)
print(f"torchvision {torchvision.__version__}: wrote resnet18_fmnist.onnx, torch_resnet18_logits.csv, resnet18_224.onnx in {out}")
