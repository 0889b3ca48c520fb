#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_onnx (tests/fuzz/corpus/onnx/): small ONNX models, each under the
fuzzer's 4 KiB inputs, that reach every operator nn/onnx.cpp converts and several it refuses.
usage: /usr/bin/python3 make_onnx_seeds.py OUT_DIR"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
rng = np.random.default_rng(1)


def t(name, shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def c(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.array(value, dtype), name)


def model(name, nodes, inits, in_shape, out_shape, opset=13):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), f"{out}/{name}.onnx")


n = helper.make_node
model("convs", [
    n("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    n("BatchNormalization", ["a", "g", "b", "m", "v"], ["bn"]),
    n("Relu", ["bn"], ["r"]),
    n("Conv", ["r", "wd"], ["d"], group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
    n("Clip", ["d", "zero", "six"], ["d6"]),
    n("Conv", ["r", "wp"], ["p"], strides=[2, 2]),
    n("Add", ["d6", "p"], ["s"]),
    n("MaxPool", ["s"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
    n("AveragePool", ["mp"], ["ap"], kernel_shape=[1, 1]),
    n("Flatten", ["ap"], ["f"]),
    n("Gemm", ["f", "wf", "bf"], ["h"], transB=1),
    n("Clip", ["h", "m1", "one"], ["ht"]),
    n("MatMul", ["ht", "wo"], ["mm"]),
    n("Add", ["mm", "bo"], ["z"]),
    n("Softmax", ["z"], ["y"], axis=1),
], [t("w1", (2, 1, 3, 3)), t("b1", (2,)), t("g", (2,)), t("b", (2,)), t("m", (2,)), c("v", [1, 2]),
    t("wd", (2, 1, 3, 3)), c("zero", 0), c("six", 6), t("wp", (2, 2, 1, 1)), t("wf", (3, 2 * 2 * 2)), t("bf", (3,)),
    c("m1", -1), c("one", 1), t("wo", (3, 2)), t("bo", (2,))], [1, 1, 8, 8], [1, 2])
model("gap", [
    n("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
    n("Relu", ["c"], ["r"]),
    n("GlobalAveragePool", ["r"], ["g"]),
    n("Reshape", ["g", "shape"], ["f"]),
    n("Dropout", ["f"], ["d"]),
    n("Identity", ["d"], ["i"]),
    n("Gemm", ["i", "wf"], ["y"]),
], [t("w", (2, 1, 3, 3)), c("shape", [-1, 2], np.int64), t("wf", (2, 3))], ["N", 1, 6, 6], ["N", 3], opset=17)
model("flat_input", [
    n("Constant", [], ["w"], value=t("wv", (4, 5))),
    n("MatMul", ["x", "w"], ["y"]),
], [], [1, 4], [1, 5], opset=11)
model("refused_op", [n("Sigmoid", ["x"], ["y"])], [], [1, 1, 4, 4], [1, 1, 4, 4])
model("refused_pads", [n("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [], [1, 1, 4, 4], [1, 1, 4, 4])
model("refused_opset", [n("Relu", ["x"], ["y"])], [], [1, 1, 4, 4], [1, 1, 4, 4], opset=9)
