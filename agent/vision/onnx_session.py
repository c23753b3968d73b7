"""onnxruntime sessions with explicit thread counts.

Every model in the agent is opened here so thread use is decided in one place:
``threads`` is the intra-op thread count of one session (0 = one per core).
Spinning worker threads are disabled: on a 4-core Pi the detector and the
embedder run side by side, and spinning threads would steal each other's cores.
"""

from __future__ import annotations

import os
from typing import Any

import onnxruntime as ort

from agent.errors import ModelError
from agent.vision.model_store import PinnedModel


def cpu_count() -> int:
    """Cores this process may use (respects CPU affinity, e.g. a systemd CPUAffinity=)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """``None`` or 0 means all usable cores."""
    return cpu_count() if not threads else max(1, int(threads))


def open_session(model: PinnedModel, threads: int = 1) -> Any:
    """Open ``model`` on the CPU with ``threads`` intra-op threads; ModelError if it won't load."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = resolve_threads(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model.path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"models: {model.role} {model.path} does not load: {first}") from exc
