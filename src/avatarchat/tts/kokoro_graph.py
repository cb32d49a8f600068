"""Kokoro's int8 graph rewritten so that onnxruntime runs its convolutions on the CPU's int8 matrix units.

The shipped model was quantized dynamically: each convolution is ``DynamicQuantizeLinear`` (activations to
uint8) -> ``ConvInteger`` (uint8 weights) -> ``Cast`` -> ``Mul`` (the two scales) [-> bias]. onnxruntime's
``ConvInteger`` has no fast kernel for uint8 x uint8 (no VNNI/AMX instruction takes two unsigned operands), so
on a Xeon with AVX-512 VNNI and AMX it ran at about fp32 speed and took ~63% of a synthesis. A profile showed
it (``SessionOptions.enable_profiling``). ``MatMulInteger`` with a uint8 input and int8 weights does have one
(~500 GOPS on one core here, against ~60-120 GFLOPS fp32), so every stride-1, ungrouped 1-D ``ConvInteger`` is
rewritten as an explicit im2col and a matrix product::

    x_q (1, C, T) uint8 -> Transpose (1, T, C) -> Pad with x's zero point -> k Slices (one per tap, shifted by
    the dilation) -> Concat (1, T', k*C) -> MatMulInteger with W (k*C, C_out) int8 -> Cast -> Mul (scales)
    [-> Add fp32 bias] -> Transpose (1, C_out, T')

The integer arithmetic is the same as before: the activations keep their dynamic uint8 quantization and zero
point, the weights are the shipped ones less their zero point (every one fits int8, checked), so the products
are exact; only the bias is added in fp32 instead of being rounded to the int32 grid first. onnxruntime then
fuses the product with its scales into ``MatMulIntegerToFloat``. Any convolution of another shape (strided,
grouped, asymmetric padding, a per-channel zero point) is left as it was.

Needs the ``onnx`` package (protobuf only; no model is downloaded): this module runs once per model file,
when ``kokoro_model`` builds its cached copy.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

#: Bumped whenever the rewrite changes, so a cached file made by an older rewrite is not reused.
VERSION = 1


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def matmul_convolutions(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns how many convolutions were rewritten."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    def const(name: str, value: np.ndarray) -> str:
        if name not in made:
            made.add(name)
            added.append(numpy_helper.from_array(value, name))
        return name

    replaced: dict[int, list[Any]] = {}
    dropped: set[int] = set()
    added: list[Any] = []
    made: set[str] = set()
    for conv in graph.node:
        if conv.op_type != "ConvInteger" or len(conv.input) != 4 or conv.input[1] not in inits \
                or conv.input[3] not in inits:
            continue
        attrs = _attributes(conv)
        weights, w_zero = array(conv.input[1]), array(conv.input[3])
        pads = list(attrs.get("pads", [0, 0]))
        if (weights.ndim != 3 or w_zero.ndim != 0 or attrs.get("group", 1) != 1
                or list(attrs.get("strides", [1])) != [1] or len(pads) != 2 or pads[0] != pads[1]
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        w = weights.astype(np.int32) - int(w_zero)
        if w.min() < -128 or w.max() > 127:
            continue
        # the chain after the convolution: [Add (int32 bias)] -> Cast -> Mul (x_scale * w_scale)
        chain, bias = [conv], None
        after = consumers[conv.output[0]]
        if len(after) == 1 and after[0].op_type == "Add":
            add = after[0]
            node = producer.get(next(i for i in add.input if i != conv.output[0]))
            while node is not None and node.op_type != "Div":  # Reshape <- Cast <- Floor <- Div(bias, scale)
                node = producer.get(node.input[0])
            if node is None or node.input[0] not in inits:
                continue
            bias = array(node.input[0]).astype(np.float32)
            chain.append(add)
            after = consumers[add.output[0]]
        if len(after) != 1 or after[0].op_type != "Cast":
            continue
        cast = after[0]
        after = consumers[cast.output[0]]
        if len(after) != 1 or after[0].op_type != "Mul":
            continue
        mul = after[0]
        chain += [cast, mul]
        scale = next(i for i in mul.input if i != cast.output[0])

        c_out, c_in, k = w.shape
        pad, dilation = pads[0], list(attrs.get("dilations", [1]))[0]
        base, x_zero = conv.name or conv.output[0], conv.input[2]
        # B[j * c_in + ci, co] = W[co, ci, j]: tap-major, as the Concat below lays the columns out
        cols_w = const(conv.input[1] + "_im2col_s8",
                       np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * c_in, c_out)).astype(np.int8))
        nodes = [helper.make_node("Transpose", [conv.input[0]], [base + "_xt"], perm=[0, 2, 1], name=base + "_xt")]
        current = base + "_xt"
        if pad:
            nodes.append(helper.make_node("Pad", [current, const(f"pads_t{pad}", np.array([0, pad, 0, 0, pad, 0],
                                                                                             np.int64)), x_zero],
                                          [base + "_xp"], mode="constant", name=base + "_xp"))
            current = base + "_xp"
        if k > 1:
            axis = const("axis_1", np.array([1], np.int64))
            taps = []
            for j in range(k):
                end = -dilation * (k - 1 - j)
                nodes.append(helper.make_node(
                    "Slice", [current, const(f"start_{j * dilation}", np.array([j * dilation], np.int64)),
                              const(f"end_{end}", np.array([end or np.iinfo(np.int64).max], np.int64)), axis],
                    [f"{base}_tap{j}"], name=f"{base}_tap{j}"))
                taps.append(f"{base}_tap{j}")
            nodes.append(helper.make_node("Concat", taps, [base + "_cols"], axis=2, name=base + "_cols"))
            current = base + "_cols"
        nodes += [helper.make_node("MatMulInteger", [current, cols_w, x_zero], [base + "_mm"], name=base + "_mm"),
                  helper.make_node("Cast", [base + "_mm"], [base + "_mmf"], to=TensorProto.FLOAT, name=base + "_mmf"),
                  helper.make_node("Mul", [base + "_mmf", scale], [base + "_scaled"], name=base + "_scaled")]
        out = base + "_scaled"
        if bias is not None:
            nodes.append(helper.make_node("Add", [out, const(conv.input[1] + "_bias_fp32", bias)], [base + "_biased"],
                                          name=base + "_biased"))
            out = base + "_biased"
        nodes.append(helper.make_node("Transpose", [out], [mul.output[0]], perm=[0, 2, 1], name=base + "_yt"))
        replaced[id(mul)] = nodes
        dropped |= {id(n) for n in chain}

    if not replaced:
        return 0
    nodes = []
    for n in graph.node:
        if id(n) in replaced:
            nodes += replaced[id(n)]
        elif id(n) not in dropped:
            nodes.append(n)
    outputs = {o.name for o in graph.output}
    while True:  # drop what fed only the old convolutions (their bias rounding, unused quantizations)
        used = {i for n in nodes for i in n.input} | outputs
        alive = [n for n in nodes if any(o in used for o in n.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    used = {i for n in nodes for i in n.input} | outputs
    kept = [i for i in [*graph.initializer, *added] if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(replaced)
