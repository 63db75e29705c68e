"""carvana.backends: every runtime and precision against PyTorch float32, on a tiny model and on
a real photo through an ImageNet Lite0 U-Net; fixed graph shapes; flips; a prediction job.

Bounds. float32 runtimes reorder sums only: max |logit difference| <= 1e-3, at most a handful
of sign changes (measured: <= 3e-4 tiny, <= 9e-5 Lite0; 0-2 signs). bf16 keeps 8 significant
bits (2**-9 relative per rounding). These models have random decoders whose heads were re-centred
to spread the logits (std 3), so each logit is a small difference of large activations and bf16
error shows far more than in a trained model (issue 16: 658 of 921,600 signs). Measured over 5
tiny batches and 4 real photos x 2 shapes, torch and OpenVINO bf16: mean |difference| <= 0.07
std of the float32 logits, max <= 1.1 std, 1.0-3.3 % of signs changed, every changed sign where
the float32 logit was within 0.75 std of 0. The bounds below are about twice those: they catch
a bf16 path that is broken or silently float32, not a 1 % change in accuracy, which is for
Dice against true masks on the whole chain.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from carvana import backends as bk
from carvana.backends import (
    BACKENDS,
    PRECISIONS,
    BackendError,
    BackendSpec,
    export_onnx,
    graph_runner,
    model_runner,
    probabilities,
    resolve,
    torch_runner,
)
from carvana.checkpoint import save_checkpoint
from carvana.device import native_cpu_bf16
from carvana.io import read_image, read_prob
from carvana.models import create_model

CPU = torch.device("cpu")
COMBOS = [(b, p) for b in BACKENDS for p in PRECISIONS]
REPO = Path(__file__).resolve().parents[1]


def needs(backend: str) -> None:
    """Skip, saying so, when ``backend``'s runtime (or onnx, to export) is not installed."""
    for package in ([backend, "onnx"] if backend != "torch" else []):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install {package}): {backend} untested")


def spread_head(model: torch.nn.Module, x: torch.Tensor, std: float = 3.0) -> None:
    """Rescale and centre the last convolution so that the logits of ``x`` have mean 0 and
    standard deviation ``std`` (random weights give logits all near one value)."""
    with torch.no_grad():
        head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        logits = model(x)
        scale = std / logits.std()
        head.weight.mul_(scale)
        head.bias.copy_(scale * (head.bias - logits.mean()))


def smooth_images(n: int, height: int, width: int, seed: int = 1) -> np.ndarray:
    """float32 (n, 3, H, W) in [0, 1]: smooth blobs with a little pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, height // 8, width // 8, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
    return (smooth + 0.03 * torch.randn(n, 3, height, width, generator=gen)).clamp(0, 1).numpy()


def tiny_unet() -> torch.nn.Module:
    """A seeded 3-level U-Net, batch-norm statistics from real activations, logits spread."""
    torch.manual_seed(0)
    model = create_model("unet", in_channels=3, initial_filters=4, depth=3, up_convs=2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        model.train()(torch.from_numpy(smooth_images(4, 64, 96, seed=2)))
    model.eval()
    spread_head(model, torch.from_numpy(smooth_images(2, 64, 96)))
    return model


def check_agreement(out: np.ndarray, ref: np.ndarray, precision: str) -> None:
    """The bounds of the module docstring, fp32 or bf16."""
    assert out.shape == ref.shape and out.dtype == np.float32
    diff, flips = np.abs(out - ref), (out > 0) != (ref > 0)
    std = float(ref.std())
    assert std > 1.0  # logits spread over both signs: the bounds mean something
    if precision == "fp32":
        assert diff.max() <= 1e-3, diff.max()
        assert flips.sum() <= 5, flips.sum()
        return
    assert diff.mean() <= 0.15 * std, (diff.mean(), std)
    assert diff.max() <= 2.5 * std, (diff.max(), std)
    assert flips.mean() <= 0.06, flips.mean()
    assert np.abs(ref[flips]).max(initial=0.0) <= 1.5 * std  # only decisions near the boundary
    assert diff.mean() > 1e-3 * std  # bf16 really ran: float32 runtimes differ ~1e-5 std


# --- specs and resolution -------------------------------------------------------------------


def test_bad_names_are_value_errors() -> None:
    with pytest.raises(ValueError, match="torch, onnxruntime, openvino.*'tensorrt'"):
        BackendSpec(backend="tensorrt")
    with pytest.raises(ValueError, match="fp32, bf16.*'fp16'"):
        BackendSpec(precision="fp16")
    for threads in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            BackendSpec(threads=threads)
    assert BackendSpec() == BackendSpec("torch", "fp32", None)


def test_resolve_falls_back_for_onnxruntime_bf16(caplog: pytest.LogCaptureFixture) -> None:
    needs("onnxruntime")
    with caplog.at_level(logging.WARNING, logger="carvana.backends"):
        got = resolve(BackendSpec("onnxruntime", "bf16", threads=2))
    assert got == BackendSpec("onnxruntime", "fp32", threads=2)
    assert "no bfloat16 CPU kernels" in caplog.text and "running fp32" in caplog.text
    caplog.clear()
    assert resolve(got) == got and not caplog.text  # resolving again: no second warning


def test_resolve_falls_back_without_native_bf16(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bk, "native_cpu_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="carvana.backends"):
        assert resolve(BackendSpec("torch", "bf16")) == BackendSpec("torch", "fp32")
    assert "no native bfloat16" in caplog.text
    monkeypatch.setattr(bk, "native_cpu_bf16", lambda: True)
    assert resolve(BackendSpec("torch", "bf16")) == BackendSpec("torch", "bf16")


def test_a_missing_runtime_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(BackendError, match=r"pip install openvino.*backend: torch"):
        resolve(BackendSpec("openvino"))
    assert resolve(BackendSpec("torch")) == BackendSpec()  # torch needs nothing more


# --- every backend against PyTorch float32 --------------------------------------------------


@pytest.mark.parametrize(("backend", "precision"), COMBOS)
def test_tiny_model_agrees_with_torch_fp32(backend: str, precision: str,
                                           one_torch_thread: None) -> None:
    needs(backend)
    model = tiny_unet()
    x = smooth_images(3, 64, 96, seed=10)
    ref = torch_runner(model, BackendSpec(), CPU).logits(x)
    runner = model_runner(model, BackendSpec(backend, precision), device=CPU)
    assert runner.spec.backend == backend
    check_agreement(runner.logits(x), ref, runner.spec.precision)


@pytest.mark.parametrize(("backend", "precision"), COMBOS)
def test_prior_residual_keeps_a_saturated_map(backend: str, precision: str,
                                              one_torch_thread: None) -> None:
    """A depth model with ``prior_residual`` and a silent head outputs its map's logit: every
    runtime and precision must give +-6.9 where the map is 0 or 1 (a bf16 ``1 - p`` rounded to
    0 before its log would give infinities) and keep every sign."""
    needs(backend)
    torch.manual_seed(0)
    model = create_model("efficientnet_unet", in_channels=4, encoder="lite0", pretrained=False,
                         prior_residual=True).eval()
    with torch.no_grad():
        model.head.conv.weight.zero_()
        model.head.conv.bias.zero_()
    prob = np.linspace(0, 1, 96, dtype=np.float32)[None, None, None].repeat(64, axis=2)
    prob[..., :8], prob[..., -8:] = 0.0, 1.0
    x = np.concatenate([smooth_images(2, 64, 96, seed=5), prob.repeat(2, axis=0)], axis=1)
    out = model_runner(model, BackendSpec(backend, precision), device=CPU).logits(x)
    expected = np.log((prob + 1e-3) / (1.001 - prob))
    assert out.shape == (2, 1, 64, 96) and np.isfinite(out).all()
    assert np.abs(out - expected).max() <= (1e-3 if precision == "fp32" else 0.1)
    assert np.array_equal(out[..., :8] < -6.8, np.ones_like(out[..., :8], bool))
    assert ((out > 0) == (expected > 0))[..., np.abs(expected[0, 0, 0]) > 0.1].all()


@pytest.fixture(scope="module")
def photo_inputs(sample_dir: Path) -> dict[str, np.ndarray]:
    """A real photo resized to 320x480 (as a low-res model sees it) and one 384x384 full-size
    crop across the car's edge (as a tile model's training crops), float32 (1, 3, H, W)."""
    image = read_image(sorted((sample_dir / "train").glob("*.jpg"))[0])
    small = cv2.resize(image, (480, 320), interpolation=cv2.INTER_AREA)
    crop = image[448:832, 767:1151]
    return {name: np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32) / 255
            for name, a in (("320x480", small), ("384x384", crop))}


@pytest.fixture(scope="module")
def lite0(photo_inputs: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory):
    """An EfficientNet-Lite0 U-Net (ImageNet encoder, random decoder, head spread on the
    photo), its float32 PyTorch logits of each input, and a graph folder shared by the tests."""
    torch.manual_seed(0)
    model = create_model("efficientnet_unet", in_channels=3, encoder="lite0", pretrained=True)
    model.eval()
    spread_head(model, torch.from_numpy(photo_inputs["320x480"]))
    reference = torch_runner(model, BackendSpec(), CPU)
    refs = {name: reference.logits(x) for name, x in photo_inputs.items()}
    return model, refs, tmp_path_factory.mktemp("lite0-graphs")


@pytest.mark.parametrize(("backend", "precision"), COMBOS)
def test_real_photo_agrees_with_torch_fp32(backend: str, precision: str, lite0,
                                           photo_inputs: dict[str, np.ndarray]) -> None:
    needs(backend)
    model, refs, graphs = lite0
    runner = model_runner(model, BackendSpec(backend, precision), device=CPU, cache_dir=graphs)
    if precision == "bf16" and backend != "onnxruntime" and native_cpu_bf16():
        assert runner.spec.precision == "bf16"
    for name, x in photo_inputs.items():
        check_agreement(runner.logits(x), refs[name], runner.spec.precision)


# --- shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_graph_refuses_another_shape(backend: str, tmp_path: Path,
                                       one_torch_thread: None) -> None:
    needs(backend)
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_unet(), shape=(1, 3, 64, 96), path=path)
    runner = graph_runner(path, BackendSpec(backend))
    assert runner.logits(smooth_images(2, 64, 96)).shape == (2, 1, 64, 96)  # any batch
    with pytest.raises(BackendError, match=re.escape("takes (N, 3, 64, 96) inputs, got "
                                                     "(1, 3, 64, 64)")):
        runner.logits(smooth_images(1, 64, 64))
    with pytest.raises(BackendError, match=r"\(N, 3, 64, 96\).*\(1, 4, 64, 96\)"):
        runner.logits(np.zeros((1, 4, 64, 96), np.float32))
    with pytest.raises(BackendError, match="no such ONNX graph"):
        graph_runner(tmp_path / "absent.onnx", BackendSpec(backend))


def test_model_runner_compiles_once_per_shape(tmp_path: Path, one_torch_thread: None) -> None:
    needs("openvino")
    model = tiny_unet()
    reference = torch_runner(model, BackendSpec(), CPU)
    runner = model_runner(model, BackendSpec("openvino"), device=CPU, cache_dir=tmp_path)
    for height, width in ((64, 96), (32, 64), (64, 96)):
        x = smooth_images(2, height, width, seed=height)
        check_agreement(runner.logits(x), reference.logits(x), "fp32")
    assert sorted(runner.graphs) == [(3, 32, 64), (3, 64, 96)]
    assert len(list(tmp_path.glob("*.onnx"))) == 2
    again = model_runner(model, BackendSpec("onnxruntime"), device=CPU, cache_dir=tmp_path)
    x = smooth_images(1, 32, 64)
    check_agreement(again.logits(x), reference.logits(x), "fp32")
    assert len(list(tmp_path.glob("*.onnx"))) == 2  # same weights: the cached graph reused


def test_fingerprint_names_weights_and_structure(one_torch_thread: None) -> None:
    """A cache_dir reuses a graph only for the same weights and the same layers."""
    model = tiny_unet()
    first = bk.fingerprint(model)
    model.to(memory_format=torch.channels_last)
    assert bk.fingerprint(model) == first  # the values, not their memory layout
    with torch.no_grad():
        next(model.parameters())[0].add_(1e-3)
    assert bk.fingerprint(model) != first

    def upsampler(mode: str) -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3), torch.nn.Upsample(scale_factor=2,
                                                                              mode=mode))

    assert bk.fingerprint(upsampler("nearest")) != bk.fingerprint(upsampler("bilinear"))


class EncoderMap(torch.nn.Module):
    """The EfficientNet encoder (where the TF-SAME padding is), its deepest features averaged
    to one channel: any input size, not only the U-Net's multiples of 32."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[-1].mean(1, keepdim=True)


def test_same_padding_trap_an_odd_shape_exported_at_that_shape(tmp_path: Path,
                                                              one_torch_thread: None) -> None:
    """A graph exported at 321x479 matches PyTorch there. The trap it avoids: a graph traced at
    64x96 with free H and W (what export_onnx never writes) is wrong at 65x97."""
    needs("onnxruntime")
    import onnxruntime as ort

    torch.manual_seed(0)
    unet = create_model("efficientnet_unet", in_channels=3, encoder="lite0", pretrained=True)
    encoder = EncoderMap(unet.encoder).eval()
    x = smooth_images(1, 321, 479, seed=3)
    with torch.inference_mode():
        ref = encoder(torch.from_numpy(x)).numpy()
    assert ref.shape == (1, 1, 11, 15)
    runner = model_runner(encoder, BackendSpec("onnxruntime"), device=CPU, cache_dir=tmp_path)
    assert np.abs(runner.logits(x) - ref).max() <= 1e-3

    free = tmp_path / "free_hw.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer says exactly this: shapes became constants
        torch.onnx.export(encoder, (torch.zeros(1, 3, 64, 96),), str(free), dynamo=False,
                          opset_version=17, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}})
    odd = smooth_images(1, 72, 104, seed=5)[:, :, :65, :97].copy()
    with torch.inference_mode():
        odd_ref = encoder(torch.from_numpy(odd)).numpy()
    out = ort.InferenceSession(str(free), providers=["CPUExecutionProvider"]).run(
        None, {"image": odd})[0]
    assert out.shape != odd_ref.shape or np.abs(out - odd_ref).max() > 1e-2


# --- flips, export -------------------------------------------------------------------------


class CountingRunner:
    """A runner that records the batches it is given."""

    def __init__(self, inner: bk.Runner) -> None:
        self.inner, self.spec, self.batches = inner, inner.spec, []

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x.shape)
        return self.inner.logits(x)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_tta_hflip_is_the_manual_average(backend: str, one_torch_thread: None) -> None:
    needs(backend)
    model = tiny_unet()
    runner = CountingRunner(model_runner(model, BackendSpec(backend), device=CPU))
    x = smooth_images(3, 64, 96, seed=4)
    got = probabilities(runner, x, tta_hflip=True)
    # the image, then its mirror: two calls of the batch's size (its memory, not twice it)
    assert runner.batches == [(3, 3, 64, 96), (3, 3, 64, 96)]
    t = torch.from_numpy(x)
    with torch.inference_mode():
        manual = 0.5 * (torch.sigmoid(model(t)) + torch.sigmoid(model(t.flip(-1))).flip(-1))
    assert got.shape == (3, 64, 96) and got.dtype == np.float32
    assert np.abs(got - manual[:, 0].numpy()).max() <= 1e-4
    plain = probabilities(runner, x, tta_hflip=False)
    assert runner.batches[-1] == (3, 3, 64, 96)
    assert np.abs(plain - torch.sigmoid(model(t)).detach()[:, 0].numpy()).max() <= 1e-4
    assert np.abs(got - plain).max() > 1e-3  # the mirror changed something


def test_export_is_atomic_byte_identical_with_fixed_height_and_width(tmp_path: Path) -> None:
    needs("onnxruntime")
    import onnx

    model = tiny_unet()
    export_onnx(model, shape=(1, 3, 64, 96), path=tmp_path / "a.onnx")
    export_onnx(model, shape=(2, 3, 64, 96), path=tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]  # no temp left
    graph = onnx.load(str(tmp_path / "a.onnx")).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output]}
    assert dims == {"image": ["batch", 3, 64, 96], "logits": ["batch", 1, 64, 96]}
    assert model.training is False
    model.train()
    export_onnx(model, shape=(1, 3, 64, 96), path=tmp_path / "c.onnx")
    assert model.training  # exported in eval mode, its mode restored
    assert (tmp_path / "c.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes()


# --- the DAG's prediction jobs -------------------------------------------------------------


def test_every_prediction_rule_passes_backend_and_precision() -> None:
    rules = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    blocks = re.split(r"\nrule ", rules)
    predicting = [b for b in blocks if re.search(r'scripts/predict_(lowres|tiles)\.py', b)]
    names = sorted(b.split(":")[0] for b in predicting)  # predict_lowres_fold: a `use rule`
    assert names == ["predict_lowres_test", "predict_lowres_train_all", "predict_tiles_test",
                     "predict_tiles_val"]
    for block in predicting:
        assert 'backend=config["predict"]["backend"]' in block, block.split(":")[0]
        assert 'precision=config["predict"]["precision"]' in block, block.split(":")[0]


def test_prediction_job_on_onnxruntime_matches_torch(tiny_data, tmp_path: Path,
                                                     one_torch_thread: None) -> None:
    """predict_lowres_stage, as the rule runs it, on torch and on onnxruntime: the same 8-bit
    probability maps within one level on >= 99.9 % of pixels."""
    needs("onnxruntime")
    from carvana.io import read_json
    from carvana.model_stages import predict_lowres_stage

    data = tiny_data[0]
    ids = sorted(p.stem for p in (data / "test").glob("*.jpg"))
    spec = {"arch": "unet", "size": 64, "params": {"initial_filters": 4, "depth": 3,
                                                   "up_convs": 2}}
    model = tiny_unet()
    save_checkpoint(tmp_path / "w.pt", model.state_dict(),
                    {"name": "u", **spec, "in_channels": 3, "input": "lowres"})
    levels = {}
    for backend in ("torch", "onnxruntime"):
        predict_lowres_stage(name="u", spec=spec, weights=str(tmp_path / "w.pt"),
                             data_dir=str(data), folder="test", ids=ids, batch_size=4,
                             tta_hflip=True, backend=backend, precision="fp32", device="cpu",
                             cpu_fallback=True, preds=str(tmp_path / backend),
                             timing=str(tmp_path / f"{backend}.json"))
        assert read_json(tmp_path / f"{backend}.json")["backend"] == backend
        levels[backend] = np.stack([np.rint(read_prob(tmp_path / backend / f"{i}.png") * 255)
                                    for i in ids])
    assert len(ids) >= 2 and levels["torch"].std() > 20  # maps spread over the 8-bit range
    step = np.abs(levels["torch"] - levels["onnxruntime"])
    assert (step <= 1).mean() >= 0.999, (step <= 1).mean()
    # the graph went beside the weights; a second job on the same weights reuses it
    graphs = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(graphs) == 1, graphs
    stamp = graphs[0].stat().st_mtime_ns
    predict_lowres_stage(name="u", spec=spec, weights=str(tmp_path / "w.pt"), data_dir=str(data),
                         folder="test", ids=ids[:1], batch_size=4, tta_hflip=True,
                         backend="onnxruntime", precision="bf16", device="cpu",
                         cpu_fallback=True, preds=str(tmp_path / "again"),
                         timing=str(tmp_path / "again.json"))
    assert graphs[0].stat().st_mtime_ns == stamp
    assert read_json(tmp_path / "again.json")["precision"] == "fp32"  # what ran, not what was asked
