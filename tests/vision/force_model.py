"""A second embedder for the "force's own model" tests, built from the pinned SFace with the
``onnx`` package (never downloaded): a 128×128 input resized to SFace's 112×112, and a fixed
random projection of SFace's 128 numbers to ``out_dim``. Different input size, alignment
template and output size from SFace, so every part of the model manifest is exercised."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ARCFACE_112 = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
]


def build_force_model(
    sface: Path, out: Path, *, input_size: int = 128, out_dim: int = 64, seed: int = 7
) -> str:
    """Write the derived model to ``out``; returns its SHA-256."""
    model = onnx.load(str(sface))
    g = model.graph
    (old_input,) = g.input
    (old_output,) = g.output
    sizes = numpy_helper.from_array(np.array([1, 3, 112, 112], np.int64), "force_sizes")
    proj = np.random.default_rng(seed).standard_normal((128, out_dim)).astype(np.float32)
    weights = numpy_helper.from_array((proj / np.sqrt(128)).astype(np.float32), "force_projection")
    g.initializer.extend([sizes, weights])
    resize = helper.make_node(
        "Resize", ["face", "", "", "force_sizes"], [old_input.name], mode="linear"
    )
    project = helper.make_node("MatMul", [old_output.name, "force_projection"], ["embedding"])
    nodes = [resize, *g.node, project]
    del g.node[:]
    g.node.extend(nodes)
    del g.input[:]
    g.input.append(
        helper.make_tensor_value_info("face", TensorProto.FLOAT, [1, 3, input_size, input_size])
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, out_dim]))
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    out.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_manifest(
    path: Path,
    onnx_file: Path,
    sha256: str,
    *,
    input_size: int = 128,
    embedding_size: int = 64,
    name: str = "force-test-model",
    extra: str = "",
) -> Path:
    """A model manifest for ``onnx_file``, with the ArcFace template scaled to the input."""
    scale = input_size / 112
    template = [[round(x * scale, 4), round(y * scale, 4)] for x, y in ARCFACE_112]
    path.write_text(
        f"""[embedder]
name = "{name}"
file = "{onnx_file.name}"
sha256 = "{sha256}"
licence = "test only: derived from SFace (Apache-2.0) inside the test"
input_size = {input_size}
colour_order = "rgb"
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
alignment_template = {template}
embedding_size = {embedding_size}
provenance = "built by tests/vision/force_model.py"
{extra}"""
    )
    return path
