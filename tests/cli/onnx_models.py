#!/usr/bin/env python3
"""ONNX models for tests/cli/cli_onnx_test.sh, built with onnx.helper, a small IDX data set, and
each model's logits on it from an independent float64 reference written here with numpy (direct
convolution loops, not bitsim's im2col), plus, when PyTorch is installed, a CNN exported by
torch.onnx.export with PyTorch's own outputs.

usage: onnx_models.py OUT_DIR
writes OUT_DIR/data/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, OUT_DIR/<model>.onnx and
OUT_DIR/<model>.expected.csv (example, logit_0, ...)."""
import gzip
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
rng = np.random.default_rng(7)
side, n_test = 16, 48


def write_idx(images, labels, prefix):
    with gzip.open(f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), side, side) + images.tobytes())
    with gzip.open(f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)) + labels.tobytes())


os.makedirs(f"{out}/data", exist_ok=True)
test_images = rng.integers(0, 256, (n_test, side, side), dtype=np.uint8)
test_labels = rng.integers(0, 10, n_test, dtype=np.uint8)
write_idx(test_images, test_labels, f"{out}/data/t10k")
write_idx(rng.integers(0, 256, (64, side, side), dtype=np.uint8), rng.integers(0, 10, 64, dtype=np.uint8), f"{out}/data/train")
x = test_images.astype(np.float32)[:, None] / np.float32(255)  # what bitsim reads: pixels / 255


# --- the float64 reference ----------------------------------------------------------------------
def conv(a, w, b, stride, pad, groups):
    n, c, h, wd = a.shape
    m, cg, k, _ = w.shape
    a = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((n, m, ho, wo))
    mg = m // groups
    for o in range(m):
        g = o // mg
        for i in range(ho):
            for j in range(wo):
                win = a[:, g * cg:(g + 1) * cg, i * stride:i * stride + k, j * stride:j * stride + k]
                y[:, o, i, j] = np.einsum("nckl,ckl->n", win, w[o])
        if b is not None:
            y[:, o] += b[o]
    return y


def pool(a, k, s, op, pad=0):
    if pad:  # max pooling's padding is no input: -inf never wins
        a = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    n, c, h, w = a.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = op(a[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return y


def batchnorm(a, gamma, beta, mean, var, eps):
    sh = (1, -1, 1, 1)
    return (a - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * gamma.reshape(sh) + beta.reshape(sh)


relu = lambda a: np.maximum(a, 0)


def init(name, shape, scale=0.5):
    v = (rng.standard_normal(shape) * scale).astype(np.float32)
    return v, numpy_helper.from_array(v, name)


def save(model, name, logits):
    onnx.checker.check_model(model)
    onnx.save(model, f"{out}/{name}.onnx")
    with open(f"{out}/{name}.expected.csv", "w") as f:
        f.write("example," + ",".join(f"logit_{c}" for c in range(logits.shape[1])) + "\n")
        for e, row in enumerate(logits):
            f.write(f"{e}," + ",".join(repr(float(v)) for v in row) + "\n")


# --- model 1: every operator, a grouped and a depthwise convolution, a projection shortcut --------
# c1 (conv 1->8, bias) -> bn1 -> relu ----------------------------+
#   -> dw (depthwise 8, stride 2) -> clip 0..6 -> pw (conv 8->16) |
#   proj (conv 8->16, 1x1, stride 2, reads relu's output) <-------+
# add(pw, proj) -> relu -> maxpool 3 stride 2 pad 1 -> grouped conv (16->16, 4 groups) -> hardtanh clip -> avgpool 2
# stride 1 -> flatten -> gemm (transB) -> relu -> matmul + add (bias) -> softmax
inits = []
w1, t = init("w1", (8, 1, 3, 3)); inits.append(t)
b1, t = init("b1", (8,), 0.1); inits.append(t)
gamma, t = init("gamma", (8,), 0.2); gamma += 1; inits.append(numpy_helper.from_array(gamma, "gamma"))
beta, t = init("beta", (8,), 0.1); inits.append(t)
mean, t = init("mean", (8,), 0.1); inits.append(t)
var = (rng.random(8) + 0.5).astype(np.float32); inits.append(numpy_helper.from_array(var, "var"))
wdw, t = init("wdw", (8, 1, 3, 3)); inits.append(t)
wpw, t = init("wpw", (16, 8, 1, 1), 0.3); inits.append(t)
bpw, t = init("bpw", (16,), 0.1); inits.append(t)
wpr, t = init("wpr", (16, 8, 1, 1), 0.3); inits.append(t)
bpr, t = init("bpr", (16,), 0.1); inits.append(t)
wg, t = init("wg", (16, 4, 3, 3), 0.2); inits.append(t)
wfc, t = init("wfc", (32, 16 * 3 * 3), 0.1); inits.append(t)
bfc, t = init("bfc", (32,), 0.1); inits.append(t)
wout, t = init("wout", (32, 10), 0.2); inits.append(t)
bout, t = init("bout", (10,), 0.1); inits.append(t)
inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
          [("zero", 0), ("six", 6), ("minus_one", -1), ("one", 1)]]
nodes = [
    helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn1"], name="bn1", epsilon=1e-3),
    helper.make_node("Relu", ["bn1"], ["r1"], name="r1"),
    helper.make_node("Conv", ["r1", "wdw"], ["dw"], name="dw", group=8, strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Clip", ["dw", "zero", "six"], ["dw6"], name="relu6"),
    helper.make_node("Conv", ["dw6", "wpw", "bpw"], ["pw"], name="pw"),
    helper.make_node("Conv", ["r1", "wpr", "bpr"], ["proj"], name="proj", strides=[2, 2]),
    helper.make_node("Add", ["pw", "proj"], ["sum"], name="add"),
    helper.make_node("Relu", ["sum"], ["r2"], name="r2"),
    helper.make_node("MaxPool", ["r2"], ["mp"], name="mp", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Conv", ["mp", "wg"], ["gc"], name="grouped", group=4, pads=[1, 1, 1, 1]),
    helper.make_node("Clip", ["gc", "minus_one", "one"], ["ht"], name="hardtanh"),
    helper.make_node("AveragePool", ["ht"], ["ap"], name="ap", kernel_shape=[2, 2], strides=[1, 1]),
    helper.make_node("Flatten", ["ap"], ["flat"], name="flat"),
    helper.make_node("Gemm", ["flat", "wfc", "bfc"], ["fc"], name="fc", transB=1),
    helper.make_node("Relu", ["fc"], ["r3"], name="r3"),
    helper.make_node("MatMul", ["r3", "wout"], ["mm"], name="out"),
    helper.make_node("Add", ["mm", "bout"], ["logits"], name="bias"),
    helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
]
graph = helper.make_graph(nodes, "every_op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, side, side])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx_models.py")
a = x.astype(np.float64)
r1 = relu(batchnorm(conv(a, w1, b1, 1, 1, 1), gamma, beta, mean, var, 1e-3))
pw = conv(np.clip(conv(r1, wdw, None, 2, 1, 8), 0, 6), wpw, bpw, 1, 0, 1)
mp = pool(relu(pw + conv(r1, wpr, bpr, 2, 0, 1)), 3, 2, np.max, pad=1)
ap = pool(np.clip(conv(mp, wg, None, 1, 1, 4), -1, 1), 2, 1, np.mean)
fc = relu(ap.reshape(n_test, -1) @ wfc.T.astype(np.float64) + bfc)
save(model, "every_op", fc @ wout + bout)  # the logits: bitsim's outputs stop before the softmax

# --- model 2: opset 17, global average pooling, a reshape, Gemm with B as K x N (through an Identity)
inits = []
w1, t = init("w1", (6, 1, 5, 5), 0.3); inits.append(t)
w2, t = init("w2", (6, 10), 0.5); inits.append(t)
b2, t = init("b2", (10,), 0.1); inits.append(t)
inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "shape"))
nodes = [
    helper.make_node("Conv", ["x", "w1"], ["c"], name="conv", kernel_shape=[5, 5], strides=[2, 2]),
    helper.make_node("Relu", ["c"], ["r"], name="relu"),
    helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
    helper.make_node("Reshape", ["g", "shape"], ["f"], name="reshape"),
    helper.make_node("Identity", ["w2"], ["w2_shared"], name="share"),  # how PyTorch shares initializers
    helper.make_node("Gemm", ["f", "w2_shared", "b2"], ["y"], name="fc"),
]
graph = helper.make_graph(nodes, "gap", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, side, side])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnx_models.py")
g = relu(conv(a, w1, None, 2, 0, 1)).mean(axis=(2, 3))
save(model, "gap", g @ w2 + b2)

# --- models bitsim must refuse ------------------------------------------------------------------
sig = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="squash")], "sigmoid",
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, side, side])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, side, side])])
onnx.save(helper.make_model(sig, opset_imports=[helper.make_opsetid("", 13)]), f"{out}/sigmoid.onnx")
old = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
onnx.save(old, f"{out}/opset9.onnx")
wide = helper.make_graph(nodes, "gap3", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
onnx.save(helper.make_model(wide, opset_imports=[helper.make_opsetid("", 17)]), f"{out}/rgb.onnx")
avg = helper.make_graph([helper.make_node("AveragePool", ["x"], ["y"], name="smooth", kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                        "avgpad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, side, side])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, side, side])])
onnx.save(helper.make_model(avg, opset_imports=[helper.make_opsetid("", 13)]), f"{out}/avgpad.onnx")
with open(f"{out}/garbage.onnx", "wb") as f:
    f.write(b"\x0a\xff\xff\xff\xff\x0f not a protobuf")

# --- a PyTorch CNN exported by torch.onnx.export, with PyTorch's own outputs ---------------------
try:
    import torch
except ImportError:
    sys.exit(0)
torch.manual_seed(3)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU6(),
    torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
    torch.nn.Conv2d(8, 16, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, stride=2, padding=1),
    torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
with torch.no_grad():  # BatchNorm statistics that are not the identity
    for m in net:
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.8, 1.2), m.bias.uniform_(-0.1, 0.1)
net.eval()
inp = torch.from_numpy(x)
torch.onnx.export(net, inp[:1], f"{out}/torch_cnn.onnx", opset_version=13, input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
with torch.no_grad():
    save(onnx.load(f"{out}/torch_cnn.onnx"), "torch_cnn", net(inp).double().numpy())
