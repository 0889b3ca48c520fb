#!/usr/bin/env python3
"""Writes the topology files of this folder from the networks' architecture tables, in SCALE-Sim's
formats (docs/topologies.md), and prints each network's MAC count computed here with Python
integers, apart from bitsim. Run from anywhere: python3 experiments/topologies/generate.py

Convolutions: SCALE-Sim has no padding column; it computes OFMAP = ceil((IFMAP - filter + stride)
/ stride) a side. Each row's IFMAP is the extent of the padded input that the filter windows
cover, (OFMAP - 1) x stride + filter, with OFMAP = floor((input + 2 padding - filter) / stride) + 1
as the network computes it: so SCALE-Sim's formula gives each layer its published output size.
For stride 1 that is input + 2 x padding; ResNet's 7x7/2 on 224 padded by 3 reads 229 rows. Fully connected layers are convolutions whose filter covers the whole input.
Depthwise layers are named ...DP... with Channels = C and Num Filter = 1 (SCALE-Sim's reading:
C single-channel convolutions of one filter each)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"
GEMM_HEADER = "Layer, M, N, K,"


class Conv:
    def __init__(self):
        self.rows = []

    def add(self, name, size, kernel, cin, cout, stride=1, pad=0, depthwise=False):
        """A layer on a size x size input; returns its output size."""
        out = (size + 2 * pad - kernel) // stride + 1
        ifmap = (out - 1) * stride + kernel
        self.rows.append((name, ifmap, ifmap, kernel, kernel, cin, 1 if depthwise else cout, stride, depthwise))
        return out

    def fc(self, name, size, cin, cout):
        self.rows.append((name, size, size, size, size, cin, cout, 1, False))
        return 1

    def macs(self):
        total = 0
        for name, ih, iw, fh, fw, c, f, s, dw in self.rows:
            oh, ow = -(-(ih - fh + s) // s), -(-(iw - fw + s) // s)  # SCALE-Sim's ceil
            total += oh * ow * fh * fw * c * f  # depthwise: C channels x one filter of fh x fw each
        return total

    def write(self, file):
        with open(os.path.join(HERE, file), "w") as f:
            f.write(CONV_HEADER + "\n")
            for name, ih, iw, fh, fw, c, n, s, dw in self.rows:
                assert ("DP" in name) == dw, name
                f.write(f"{name},{ih},{iw},{fh},{fw},{c},{n},{s},\n")


class Gemm:
    def __init__(self):
        self.rows = []

    def add(self, name, m, n, k):
        self.rows.append((name, m, n, k))

    def macs(self):
        return sum(m * n * k for _, m, n, k in self.rows)

    def write(self, file):
        with open(os.path.join(HERE, file), "w") as f:
            f.write(GEMM_HEADER + "\n")
            for name, m, n, k in self.rows:
                f.write(f"{name},{m},{n},{k},\n")


def alexnet():
    # Krizhevsky et al. 2012, fig. 2: the two-GPU network; conv2, conv4 and conv5 see only the
    # maps on their own GPU (groups of 2), written as one layer per group. Input 227 x 227 (the
    # figure's 224 does not give 55 x 55 at stride 4 without padding).
    t = Conv()
    s = t.add("Conv1", 227, 11, 3, 96, stride=4)             # 55
    s = (s - 3) // 2 + 1                                      # max pool 3/2: 27
    for g in (1, 2):
        t.add(f"Conv2_g{g}", s, 5, 48, 128, pad=2)            # 27
    s = (s - 3) // 2 + 1                                      # 13
    s = t.add("Conv3", s, 3, 256, 384, pad=1)                 # 13 (sees both groups)
    for g in (1, 2):
        t.add(f"Conv4_g{g}", s, 3, 192, 192, pad=1)
    for g in (1, 2):
        t.add(f"Conv5_g{g}", s, 3, 192, 128, pad=1)
    s = (s - 3) // 2 + 1                                      # 6
    t.fc("FC6", s, 256, 4096)
    t.fc("FC7", 1, 4096, 4096)
    t.fc("FC8", 1, 4096, 1000)
    return t


def vgg16():
    # Simonyan & Zisserman 2015, table 1, configuration D.
    t = Conv()
    s, cin = 224, 3
    for stage, (n, c) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
        for i in range(1, n + 1):
            s = t.add(f"Conv{stage}_{i}", s, 3, cin, c, pad=1)
            cin = c
        s //= 2  # max pool 2/2
    t.fc("FC6", s, 512, 4096)
    t.fc("FC7", 1, 4096, 4096)
    t.fc("FC8", 1, 4096, 1000)
    return t


def resnet(blocks, bottleneck):
    # He et al. 2016, table 1; the stride-2 of a stage is in its first convolution (the paper's
    # and the original Caffe models' placement; torchvision's "v1.5" moves it to the 3 x 3).
    t = Conv()
    s = t.add("Conv1", 224, 7, 3, 64, stride=2, pad=3)        # 112
    s = (s + 2 - 3) // 2 + 1                                   # max pool 3/2 pad 1: 56
    cin = 64
    for stage, (n, width) in enumerate(zip(blocks, [64, 128, 256, 512]), start=2):
        cout = width * 4 if bottleneck else width
        for b in range(n):
            stride = 2 if (b == 0 and stage > 2) else 1
            p = f"Conv{stage}_{b + 1}"
            if bottleneck:
                o = t.add(p + "a", s, 1, cin, width, stride=stride)
                t.add(p + "b", o, 3, width, width, pad=1)
                t.add(p + "c", o, 1, width, cout)
            else:
                o = t.add(p + "a", s, 3, cin, width, stride=stride, pad=1)
                t.add(p + "b", o, 3, width, width, pad=1)
            if b == 0 and (stride != 1 or cin != cout):
                t.add(p + "_proj", s, 1, cin, cout, stride=stride)  # projection shortcut (option B)
            s, cin = o, cout
    t.fc("FC", 1, cin, 1000)                                   # after the global average pool
    return t


def mobilenet_v2():
    # Sandler et al. 2018, table 2 (width 1.0, 224 x 224): bottlenecks of expansion t, output c,
    # n repeats, first stride s; each is 1x1 expand (t > 1), 3x3 depthwise, 1x1 project.
    t = Conv()
    s = t.add("Conv1", 224, 3, 3, 32, stride=2, pad=1)         # 112
    cin = 32
    idx = 0
    for exp, c, n, stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                              (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            idx += 1
            st = stride if i == 0 else 1
            hidden = cin * exp
            if exp != 1:
                t.add(f"B{idx}_expand", s, 1, cin, hidden)
            o = t.add(f"B{idx}_DP", s, 3, hidden, hidden, stride=st, pad=1, depthwise=True)
            t.add(f"B{idx}_project", o, 1, hidden, c)
            s, cin = o, c
    t.add("Conv_last", s, 1, cin, 1280)                        # 7 x 7
    t.fc("FC", 1, 1280, 1000)                                   # after the average pool
    return t


def encoder(t, prefix, seq, d, heads, ffn, fused_qkv=False):
    dh = d // heads
    if fused_qkv:
        t.add(f"{prefix}QKV", seq, 3 * d, d)
    else:
        for w in "QKV":
            t.add(f"{prefix}{w}", seq, d, d)
    for h in range(heads):
        t.add(f"{prefix}QKt_h{h}", seq, seq, dh)     # scores: Q_h K_h^T
    for h in range(heads):
        t.add(f"{prefix}AV_h{h}", seq, dh, seq)      # context: softmax(scores) V_h
    t.add(f"{prefix}Out", seq, d, d)
    t.add(f"{prefix}FFN1", seq, ffn, d)
    t.add(f"{prefix}FFN2", seq, d, ffn)


def bert_base(seq=128):
    # Devlin et al. 2019: L = 12, H = 768, A = 12, feed-forward 4H; one encoder layer.
    t = Gemm()
    encoder(t, "", seq, 768, 12, 3072)
    return t


def gpt2_small(seq=1024):
    # Radford et al. 2019: the 117M model (12 layers, d = 768, 12 heads), context 1024; one
    # decoder layer as GPT-2 computes it (fused c_attn, then c_proj, c_fc, c_proj), the causal
    # mask not exploited (as a dense array computes it).
    t = Gemm()
    encoder(t, "", seq, 768, 12, 3072, fused_qkv=True)
    return t


def vit_b16():
    # Dosovitskiy et al. 2021, table 1: ViT-Base, patch 16, 224 x 224 -> 196 patches + class token.
    t = Gemm()
    t.add("PatchEmbed", 196, 768, 16 * 16 * 3)  # the 16x16/16 convolution: non-overlapping, a GEMM
    encoder(t, "", 197, 768, 12, 3072)
    return t


NETWORKS = [
    ("alexnet.csv", alexnet), ("vgg16.csv", vgg16), ("resnet18.csv", lambda: resnet([2, 2, 2, 2], False)),
    ("resnet50.csv", lambda: resnet([3, 4, 6, 3], True)), ("mobilenet_v2.csv", mobilenet_v2),
    ("bert_base_layer_seq128.csv", bert_base), ("gpt2_small_layer_ctx1024.csv", gpt2_small),
    ("vit_b16_layer.csv", vit_b16),
]

if __name__ == "__main__":
    for file, make in NETWORKS:
        t = make()
        t.write(file)
        print(f"{file:32} {len(t.rows):4} layers {t.macs():>15,} MACs")
