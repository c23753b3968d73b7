"""Offline graph fixes that let the OpenCV Zoo int8 models run in onnxruntime.

As shipped, YuNet's block-quantised ``DequantizeLinear`` nodes fail in
onnxruntime and SFace lists its weights as graph inputs. Both are fixed by
folding every constant ``DequantizeLinear`` into an fp32 initialiser (fp32 is
also *faster* than int8 on the Pi's Cortex-A cores) and dropping graph inputs
that are unused or shadow initialisers. YuNet's input height and width are
made dynamic so the detector can run at any multiple of 32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def _dequantize(
    q: npt.NDArray[Any], scale: npt.NDArray[Any], zero: npt.NDArray[Any], axis: int, block: int
) -> npt.NDArray[np.float32]:
    x = q.astype(np.float32)
    s = scale.astype(np.float32)
    z = zero.astype(np.float32)
    if s.ndim == 0 or s.size == 1:
        return ((x - z.reshape(())) * s.reshape(())).astype(np.float32)
    axis %= x.ndim
    if block:
        # Blocked quantisation: one scale per `block` consecutive elements along `axis`.
        s = np.repeat(s, block, axis=axis)
        z = np.repeat(z, block, axis=axis)
        cut = [slice(None)] * x.ndim
        cut[axis] = slice(0, x.shape[axis])
        s, z = s[tuple(cut)], z[tuple(cut)]
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return ((x - z) * s).astype(np.float32)


def fold_dequantize_and_prune(model: Any, dynamic_hw: bool = False) -> Any:
    """Return ``model`` (an ``onnx.ModelProto``) fixed for onnxruntime, modified in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    folded = {}
    kept_nodes = []
    for node in graph.node:
        const_inputs = [n for n in node.input if n]
        if node.op_type == "DequantizeLinear" and all(n in inits for n in const_inputs):
            q = numpy_helper.to_array(inits[node.input[0]])
            scale = numpy_helper.to_array(inits[node.input[1]])
            if len(node.input) > 2 and node.input[2]:
                zero = numpy_helper.to_array(inits[node.input[2]])
            else:
                zero = np.zeros_like(scale)
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            value = _dequantize(
                q, scale, zero, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
            )
            folded[node.output[0]] = numpy_helper.from_array(value, node.output[0])
        else:
            kept_nodes.append(node)
    del graph.node[:]
    graph.node.extend(kept_nodes)

    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    initialisers = [i for i in graph.initializer if i.name in used]
    initialisers += [t for name, t in folded.items() if name in used]
    del graph.initializer[:]
    graph.initializer.extend(initialisers)

    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    # Stale intermediate shapes would contradict dynamic sizes and make onnxruntime warn.
    del graph.value_info[:]

    if dynamic_hw:
        dims = graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param = "height"
        dims[3].dim_param = "width"
        for out in graph.output:
            out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    return model
