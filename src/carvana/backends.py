"""The backend layer: every forward pass of a trained model, in PyTorch, ONNX Runtime or
OpenVINO, in float32 or bfloat16 (DESIGN section 7, issue 16).

A :class:`Runner` turns a float32 NCHW batch in [0, 1] into float32 logits (N, 1, H, W);
:func:`probabilities` makes sigmoid maps of them, the mirror in a second call of the batch's
size.
``torch_runner`` runs a live model, ``graph_runner`` an exported ONNX graph, ``model_runner``
either from a live model (exporting one graph per input shape on first use).

The EfficientNet's TF-"SAME" padding is computed in Python from the input shape, so a traced
graph is right only at the height and width it was exported at: graphs keep H and W fixed,
and a graph given another shape is a :class:`BackendError`, never a silent wrong answer.

Runners are safe to call from several threads (the OpenVINO and per-shape caches hold a
lock), but the threads share the same cores: one call at a time is the fast way.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from carvana.device import native_cpu_bf16
from carvana.io import atomic_path

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
#: The pip package that brings each runtime (``onnx`` is needed to export a live model).
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "onnx": "onnx"}
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "logits"


class BackendError(RuntimeError):
    """A runtime that is not installed, or a graph that cannot run the input it was given."""


@dataclass(frozen=True)
class BackendSpec:
    """Which runtime runs the forward passes, at which precision, on how many threads
    (None: ``torch.get_num_threads()``)."""

    backend: str = "torch"
    precision: str = "fp32"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, "
                             f"not {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                             f"not {self.precision!r}")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, not {self.threads!r}")


class Runner(Protocol):
    """One model's forward pass on one runtime."""

    spec: BackendSpec  # the resolved spec: what actually runs

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, 1, H, W) float32 logits."""
        ...


def _require(package: str, why: str) -> None:
    """BackendError naming the pip package when ``package`` is not importable."""
    if importlib.util.find_spec(package) is None:
        raise BackendError(f"{why} needs the Python package {PACKAGES[package]!r}, which is not "
                           f"installed: `pip install {PACKAGES[package]}`, or choose "
                           "`predict: backend: torch`")


def resolve(spec: BackendSpec) -> BackendSpec:
    """The spec that will actually run here: bf16 falls back to fp32 (with a warning) under
    ONNX Runtime (no bf16 CPU kernels) and on a CPU without native bf16 (AMX / AVX512-BF16);
    a runtime that is not installed is a BackendError naming its pip package."""
    if spec.backend != "torch":
        _require(spec.backend, f"backend {spec.backend!r}")
    if spec.precision == "bf16" and spec.backend == "onnxruntime":
        log.warning("predict: precision bf16 is not available with onnxruntime (it has no "
                    "bfloat16 CPU kernels); running fp32. Use backend openvino or torch for "
                    "bf16")
        return replace(spec, precision="fp32")
    if spec.precision == "bf16" and not native_cpu_bf16():
        log.warning("predict: precision bf16 asked for, but this CPU has no native bfloat16 "
                    "(AMX / AVX512-BF16): it would be emulated and slower; running fp32. Set "
                    "`predict: precision: fp32` here")
        return replace(spec, precision="fp32")
    return spec


def _threads(spec: BackendSpec) -> int:
    return spec.threads or torch.get_num_threads()


def _as_input(x: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 (N, C, H, W) array, or ValueError."""
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


# --- PyTorch -------------------------------------------------------------------------------


class TorchRunner:
    """A live model: eval, channels_last, ``inference_mode``; bf16 is CPU autocast, and on CUDA
    float16 autocast (``cuda_fp16``) as the DAG always ran."""

    def __init__(self, model: torch.nn.Module, spec: BackendSpec, device: torch.device, *,
                 cuda_fp16: bool = True) -> None:
        self.spec = resolve(spec)
        if self.spec.backend != "torch":
            raise ValueError(f"torch_runner runs backend torch, not {self.spec.backend!r}: use "
                             "model_runner or graph_runner")
        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)  # torch has one pool per process
        self.device = device
        self.model = model.to(device).eval()
        self.model.to(memory_format=torch.channels_last)  # in place, idempotent
        self.cuda_fp16 = cuda_fp16

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16, enabled=self.cuda_fp16)
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.spec.precision == "bf16")

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, 1, H, W) float32 logits."""
        with torch.inference_mode(), self._autocast():
            t = torch.from_numpy(_as_input(x)).to(self.device, non_blocking=True)
            out = self.model(t.contiguous(memory_format=torch.channels_last)).float()
        return np.ascontiguousarray(out.cpu().numpy())


def torch_runner(model: torch.nn.Module, spec: BackendSpec, device: torch.device, *,
                 cuda_fp16: bool = True) -> TorchRunner:
    """A live model on ``device`` (switched to eval and channels_last in place)."""
    return TorchRunner(model, spec, device, cuda_fp16=cuda_fp16)


# --- ONNX export ---------------------------------------------------------------------------


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def export_onnx(model: torch.nn.Module, *, shape: tuple[int, int, int, int],
                path: str | Path) -> None:
    """Write ``model`` as an ONNX graph (opset 17, legacy TorchScript exporter): input "image"
    float32 NCHW in [0, 1], output "logits" (N, 1, H, W); the batch axis is dynamic, H and W
    are fixed at ``shape``'s. Written atomically; the same model gives the same bytes."""
    _require("onnx", "exporting a model to ONNX")
    if len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W), got {shape}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    example = torch.zeros(*shape, dtype=torch.float32, device=device)
    with (atomic_path(path) as tmp, _eval_mode(model), torch.inference_mode(False),
          torch.no_grad(), warnings.catch_warnings()):
        # the tracer's shape-to-constant warnings are the point (H, W fixed); the legacy
        # exporter's deprecation notice is known (DESIGN section 7)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            model, (example,), str(tmp), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True)


# --- exported graphs -----------------------------------------------------------------------


def _check_shape(path: Path, graph: tuple[Any, ...], x: np.ndarray) -> None:
    """BackendError unless ``x`` (N, C, H, W) fits the graph's fixed (C, H, W)."""
    fixed = tuple(int(d) if isinstance(d, int) and d > 0 else None for d in graph)
    if len(fixed) != x.ndim or any(g is not None and g != s
                                   for g, s in zip(fixed[1:], x.shape[1:], strict=True)):
        want = ", ".join("N" if d is None else str(d) for d in fixed)
        raise BackendError(
            f"{path}: the graph takes ({want}) inputs, got {tuple(x.shape)}. Its height and "
            "width are fixed at export (the EfficientNet's SAME padding is traced): export it "
            "at the shape you run, or use carvana.backends.model_runner (one graph per shape)")


class OrtRunner:
    """An ONNX graph on ONNX Runtime's CPU provider (fp32 only; sessions are thread-safe)."""

    def __init__(self, path: Path, spec: BackendSpec) -> None:
        import onnxruntime as ort

        self.spec, self.path = spec, path
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(spec)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: the optimiser's notes are not news
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own exception types for unusable graphs
            raise BackendError(f"{path}: ONNX Runtime cannot load this graph ({err}); "
                               "re-export it with carvana.backends.export_onnx") from err
        graph_input = self.session.get_inputs()[0]
        self.input_name, self.input_shape = graph_input.name, tuple(graph_input.shape)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, 1, H, W) float32 logits."""
        _check_shape(self.path, self.input_shape, x)
        out = self.session.run(None, {self.input_name: _as_input(x)})[0]
        return np.ascontiguousarray(out, dtype=np.float32)


class OpenVinoRunner:
    """An ONNX graph compiled by OpenVINO for the CPU, f32 or bf16 (AMX), latency hint."""

    def __init__(self, path: Path, spec: BackendSpec) -> None:
        import openvino as ov

        self.spec, self.path = spec, path
        config = {"INFERENCE_PRECISION_HINT": "bf16" if spec.precision == "bf16" else "f32",
                  "INFERENCE_NUM_THREADS": _threads(spec), "PERFORMANCE_HINT": "LATENCY"}
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
            raise BackendError(f"{path}: OpenVINO cannot compile this graph ({err}); "
                               "re-export it with carvana.backends.export_onnx") from err
        partial = self.compiled.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in partial)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()  # one infer request: one call at a time

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, 1, H, W) float32 logits."""
        _check_shape(self.path, self.input_shape, x)
        with self.lock:
            self.request.infer({0: _as_input(x)})
            out = self.request.get_output_tensor(0).data
            return np.array(out, dtype=np.float32, copy=True)  # the request reuses its memory


def graph_runner(onnx_path: str | Path, spec: BackendSpec) -> OrtRunner | OpenVinoRunner:
    """An exported graph on ONNX Runtime or OpenVINO (``spec.backend``), CPU only."""
    path = Path(onnx_path)
    resolved = resolve(spec)
    if resolved.backend == "torch":
        raise ValueError("graph_runner runs backend onnxruntime or openvino, not torch: use "
                         "torch_runner for a live model")
    if not path.is_file():
        raise BackendError(f"{path}: no such ONNX graph; export it with "
                           "carvana.backends.export_onnx")
    return OrtRunner(path, resolved) if resolved.backend == "onnxruntime" else (
        OpenVinoRunner(path, resolved))


def fingerprint(model: torch.nn.Module) -> str:
    """16 hex digits of a sha256 of what the exported graph depends on: the exporter (torch
    version, opset), the model's structure (its repr and ``config``: layer settings without
    weights, such as an up-sampling mode) and every state tensor's name, shape and values."""
    digest = hashlib.sha256(f"{torch.__version__} opset {OPSET}".encode())
    digest.update(repr(model).encode())
    digest.update(repr(getattr(model, "config", None)).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class GraphCache:
    """A live model run through ONNX graphs: one exported and compiled per (C, H, W) seen."""

    def __init__(self, model: torch.nn.Module, spec: BackendSpec,
                 cache_dir: str | Path | None) -> None:
        self.spec, self.model = spec, model
        self._tmp = None if cache_dir else tempfile.TemporaryDirectory(prefix="carvana-onnx-")
        self.dir = Path(cache_dir) if cache_dir else Path(self._tmp.name)
        self.name = fingerprint(model)
        self.graphs: dict[tuple[int, ...], OrtRunner | OpenVinoRunner] = {}
        self.lock = threading.Lock()

    def runner_for(self, chw: tuple[int, ...]) -> OrtRunner | OpenVinoRunner:
        """The compiled graph for inputs of shape (N, *chw), exported on first use."""
        with self.lock:
            if chw not in self.graphs:
                path = self.dir / f"{self.name}_{'x'.join(map(str, chw))}.onnx"
                if not path.is_file():  # a cache_dir keeps graphs of the same weights
                    export_onnx(self.model, shape=(1, *chw), path=path)
                self.graphs[chw] = graph_runner(path, self.spec)
                log.info("%s: compiled %s for inputs (N, %s)", self.spec.backend, path.name,
                         ", ".join(map(str, chw)))
            return self.graphs[chw]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, 1, H, W) float32 logits."""
        if x.ndim != 4:
            raise ValueError(f"expected an (N, C, H, W) batch, got shape {x.shape}")
        return self.runner_for(tuple(int(s) for s in x.shape[1:])).logits(x)


def model_runner(model: torch.nn.Module, spec: BackendSpec, *, device: torch.device,
                 cache_dir: str | Path | None = None, cuda_fp16: bool = True) -> Runner:
    """Any backend from a live model: torch runs it on ``device``; onnxruntime and openvino
    export it at each new input shape (into a temporary folder, or ``cache_dir``, where graphs
    are named by the weights' fingerprint and shape and reused) and run on the CPU. On a CUDA
    device torch runs whatever the spec says: the graph runtimes here are CPU builds."""
    if device.type == "cuda" and spec.backend != "torch":
        log.info("backend %s runs on the CPU only; on %s torch runs (CUDA fp16 autocast)",
                 spec.backend, device)
        spec = replace(spec, backend="torch")
    resolved = resolve(spec)
    if resolved.backend == "torch":
        return torch_runner(model, resolved, device, cuda_fp16=cuda_fp16)
    _require("onnx", f"backend {resolved.backend!r} on a live model (it is exported first)")
    return GraphCache(model, resolved, cache_dir)


def probabilities(runner: Runner, x: np.ndarray, *, tta_hflip: bool) -> np.ndarray:
    """Sigmoid probabilities (N, H, W) float32; with ``tta_hflip`` the mirror's map, flipped
    back, is averaged in. The mirror goes through its own call, so a batch's peak memory is the
    batch's, not twice it (what ``carvana.resources`` plans for)."""
    x = _as_input(x)
    prob = torch.sigmoid(torch.from_numpy(_logits(runner, x)))
    if tta_hflip:
        mirror = np.ascontiguousarray(x[..., ::-1])
        prob = 0.5 * (prob + torch.sigmoid(torch.from_numpy(_logits(runner, mirror))).flip(-1))
    return prob[:, 0].numpy()


def _logits(runner: Runner, x: np.ndarray) -> np.ndarray:
    """``runner.logits(x)``, checked to be (N, 1, H, W)."""
    logits = runner.logits(x)
    if logits.shape != (len(x), 1, *x.shape[2:]):
        raise BackendError(f"{type(runner).__name__} returned logits of shape "
                           f"{tuple(logits.shape)} for inputs {x.shape}: expected "
                           f"({len(x)}, 1, {x.shape[2]}, {x.shape[3]})")
    return logits
