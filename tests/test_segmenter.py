"""The one chain (carvana.segmenter) on tiny models: the chain as data, a results folder, an
exported bundle moved elsewhere, corrupt bundles, and the carvana-cutout command."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from carvana.bundle import MANIFEST, read_bundle
from carvana.chain import Chain, ChainModel
from carvana.checkpoint import save_checkpoint
from carvana.cutout_cli import main as cutout_main
from carvana.export import export_bundle
from carvana.io import DataError
from carvana.models import create_model
from carvana.segmenter import Segmenter

PARAMS = {"initial_filters": 4, "depth": 2, "up_convs": 2}
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one thread (see conftest)."""


def _chain(**override) -> Chain:
    models = {
        "low": ChainModel(name="low", input="lowres", in_channels=3, size=(32, 48),
                          weights="models/low/weights.pt"),
        "tiles": ChainModel(name="tiles", input="tiles", in_channels=4, tile=48,
                            depth_from="low", weights="models/tiles/weights.pt"),
    }
    base = {"source": "ensemble", "size": (96, 64), "models": models, "threshold": 0.5,
            "tta_hflip": True, "tile": 48, "members": {"low": 0.5, "tiles": 0.5},
            "bbox": {"model": "low", "threshold": 0.5, "margin": 2},
            "thresholds": {"low": 0.4}}
    return Chain(**{**base, **override})


def make_results(root: Path, bias: float | None = None, **override) -> Path:
    """A results folder: two tiny models (a low-res U-Net feeding a 4-channel tile model) and
    chain.json. ``bias``: every logit is ``bias`` (a model that answers the same everywhere)."""
    torch.manual_seed(0)
    chain = _chain(**override)
    for name, entry in chain.models.items():
        model = create_model("unet", in_channels=entry.in_channels, **PARAMS)
        if bias is not None:
            torch.nn.init.zeros_(model.head.conv.weight)
            torch.nn.init.constant_(model.head.conv.bias, bias)
        meta = {"name": name, "arch": "unet", "in_channels": entry.in_channels,
                "params": PARAMS, "input": entry.input, "params_hash": f"hash-{name}"}
        meta |= {"size": list(entry.size)} if entry.size else {"tile": entry.tile,
                                                               "depth_from": "low"}
        (root / "models" / name).mkdir(parents=True, exist_ok=True)
        save_checkpoint(root / entry.weights, model.state_dict(), meta)
    (root / "chain.json").write_text(json.dumps(chain.to_json()))
    return root


def photo(width: int = 101, height: int = 67) -> np.ndarray:
    """A bright blob on a darker ground, any size."""
    yy, xx = np.mgrid[0:height, 0:width]
    blob = ((xx - width / 2) / (width / 3)) ** 2 + ((yy - height / 2) / (height / 4)) ** 2 < 1
    return np.stack([np.where(blob, 220, 40), np.where(blob, 90, 60), xx * 255 // width],
                    2).astype(np.uint8)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("results"))


# --- the chain as data ------------------------------------------------------------------------

def test_chain_round_trips_through_json_and_narrows_to_a_source() -> None:
    chain = _chain()
    back = Chain.from_json(json.loads(json.dumps(chain.to_json())), "here")
    assert back == chain
    assert chain.needed() == ["low", "tiles"] and chain.sources() == ["low", "tiles", "ensemble"]
    low = chain.for_source("low")
    assert low.needed() == ["low"] and list(low.models) == ["low"] and low.threshold == 0.4
    assert chain.for_source("tiles").threshold == 0.5  # no threshold of its own: the chain's
    with pytest.raises(ValueError, match=r"source 'nope' is not in this chain.*'ensemble'"):
        chain.for_source("nope")


def test_a_chain_that_lacks_a_model_or_is_not_a_chain_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"needs model\(s\) \['low'\]"):
        _chain(models={"tiles": _chain().models["tiles"]}, members={"tiles": 1.0})
    with pytest.raises(DataError, match=r"x\.json: not a carvana-chain/1 chain"):
        Chain.from_json({"format": "other"}, "x.json")
    broken = _chain().to_json()
    del broken["models"]["low"]["input"]
    with pytest.raises(DataError, match=r"x\.json: not a valid chain"):
        Chain.from_json(broken, "x.json")


# --- the segmenter on a results folder --------------------------------------------------------

def test_masks_and_cutouts_have_each_photos_size(results: Path) -> None:
    seg = Segmenter.load(results, backend="torch")
    assert seg.describe()["models"] == ["low", "tiles"] and seg.describe()["backend"] == "torch"
    for width, height in [(101, 67), (150, 77), (64, 99), (96, 64)]:
        image = photo(width, height)
        levels = seg.probabilities(image)
        assert levels.dtype == np.uint8 and levels.shape == (height, width)
        mask = seg.mask(image)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask > 0, levels.astype(np.float32) / 255 >= 0.5)
        rgba = seg.cutout(image)
        assert rgba.shape == (height, width, 4)
        assert np.array_equal(rgba[..., :3], image) and np.array_equal(rgba[..., 3], mask)


def test_known_answers_all_car_and_no_car(tmp_path: Path, caplog) -> None:
    """Models that answer +30 (all car) or -30 (no car, and no box) everywhere."""
    image = photo()
    car = Segmenter.load(make_results(tmp_path / "car", bias=30.0))
    assert (car.mask(image) == 255).all()
    assert (Segmenter.load(tmp_path / "car", "low").probabilities(image) == 255).all()
    # the tile model sees only the box's band; the box (the whole frame) is taller, so its rows
    # outside the band take the depth channel's low-res map (1.0), not 0, and a warning says so
    assert (car.probabilities(image) == 255).all()
    assert any("taller than the 48-row tile band" in r.getMessage() for r in caplog.records)
    none = Segmenter.load(make_results(tmp_path / "none", bias=-30.0))
    assert (none.mask(image) == 0).all() and none.fallbacks == 1
    assert any("finds no car" in r.getMessage() for r in caplog.records)


def test_a_single_model_source_runs_only_its_models(results: Path) -> None:
    low = Segmenter.load(results, "low")
    assert low.describe()["models"] == ["low"] and list(low.runners) == ["low"]
    assert low.chain.threshold == 0.4
    with pytest.raises(ValueError, match="source 'zoo'"):
        Segmenter.load(results, "zoo")


def test_bad_inputs_are_errors_that_say_what_was_given(results: Path, tmp_path: Path) -> None:
    seg = Segmenter.load(results)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB image, got float32"):
        seg.mask(photo().astype(np.float32))
    with pytest.raises(ValueError, match="too small"):
        seg.mask(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"neither a results folder .* nor an exported bundle"):
        Segmenter.load(tmp_path)


# --- export: a bundle that runs anywhere ------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "ensemble"
    export_bundle(results=results, out_dir=out)
    return out


def test_bundle_holds_graphs_weights_and_a_manifest(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["format"] == "carvana-bundle/1" and manifest["package_version"]
    assert sorted(manifest["files"]) == ["low.onnx", "low.pt", "tiles.onnx", "tiles.pt"]
    chain = manifest["chain"]
    assert chain["models"]["low"]["params_hash"] == "hash-low"
    assert chain["members"] == {"low": 0.5, "tiles": 0.5} and chain["tta_hflip"] is True
    assert chain["size"] == [96, 64] and chain["tile"] == 48


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_a_moved_bundle_gives_the_masks_of_the_deleted_results_folder(
        results: Path, tmp_path: Path, backend: str) -> None:
    if backend == "onnxruntime" and not HAS_ORT:
        pytest.skip("onnxruntime is not installed")
    own = tmp_path / "results"
    shutil.copytree(results, own)
    export_bundle(results=own, out_dir=own / "export" / "ensemble")
    reference = Segmenter.load(own, backend="torch")
    images = [photo(*size) for size in [(101, 67), (64, 99)]]
    want = [(reference.probabilities(i), reference.mask(i)) for i in images]
    moved = tmp_path / "elsewhere" / "my bundle"
    shutil.move(own / "export" / "ensemble", moved)
    shutil.rmtree(own)  # no results folder, no config: the bundle alone
    seg = Segmenter.load(moved, backend=backend)
    for image, (levels, mask) in zip(images, want, strict=True):
        assert np.abs(seg.probabilities(image).astype(int) - levels.astype(int)).max() <= 1
        assert np.mean(seg.mask(image) == mask) >= 0.999
        if backend == "torch":
            assert np.array_equal(seg.mask(image), mask)  # the same weights, the same masks


def test_a_corrupt_missing_or_foreign_bundle_file_is_named(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "tiles.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "tiles.onnx").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"tiles\.onnx: does not match its sha256"):
        read_bundle(copy)
    (copy / "tiles.onnx").unlink()
    with pytest.raises(DataError, match=r"tiles\.onnx: missing from the bundle"):
        read_bundle(copy)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"]["../escape.pt"] = manifest["files"]["low.pt"]
    shutil.copy(bundle / "tiles.onnx", copy / "tiles.onnx")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"'\.\./escape\.pt' is not a plain file"):
        read_bundle(copy)
    (copy / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json: cannot read JSON"):
        read_bundle(copy)


def test_a_failed_export_leaves_nothing(results: Path, tmp_path: Path, monkeypatch) -> None:
    import carvana.export as export

    def broken(*args, **kwargs):
        raise RuntimeError("graph differs")

    monkeypatch.setattr(export, "check_graph", broken)
    with pytest.raises(RuntimeError, match="graph differs"):
        export_bundle(results=results, out_dir=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# --- carvana-cutout ---------------------------------------------------------------------------

NAMES = ["IMG 2031 (1).jpg", "voiture \u00e9t\u00e9.png", "car.v2.final.JPEG"]


def _write_photos(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, name in enumerate(NAMES):
        image = photo(90 + 7 * k, 60 + 5 * k)
        fmt = "PNG" if name.lower().endswith(".png") else "JPEG"
        Image.fromarray(image).save(folder / name, format=fmt, quality=95)
        written[Path(name).stem] = np.asarray(Image.open(folder / name).convert("RGB"))
    return written


def test_cli_cuts_out_any_file_name_keeping_the_stem(results: Path, tmp_path: Path) -> None:
    photos = _write_photos(tmp_path / "in")
    out = tmp_path / "out"
    assert cutout_main([str(tmp_path / "in"), "-o", str(out), "--models", str(results)]) == 0
    seg = Segmenter.load(results)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}{x}.png" for s in photos for x in ("", "_mask"))
    for stem, image in photos.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert np.array_equal(mask, seg.mask(image))
        rgba = Image.open(out / f"{stem}.png")
        assert rgba.mode == "RGBA" and np.array_equal(np.asarray(rgba)[..., 3], mask)


def test_cli_mask_only_and_background(results: Path, tmp_path: Path) -> None:
    photos = _write_photos(tmp_path / "in")
    one = str(tmp_path / "in" / NAMES[0])
    assert cutout_main([one, "-o", str(tmp_path / "m"), "--models", str(results),
                        "--mask-only"]) == 0
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["IMG 2031 (1)_mask.png"]
    assert cutout_main([one, "-o", str(tmp_path / "b"), "--models", str(results),
                        "--bg", "0,255,0"]) == 0
    rgb = np.asarray(Image.open(tmp_path / "b" / "IMG 2031 (1).png"))
    mask = np.asarray(Image.open(tmp_path / "b" / "IMG 2031 (1)_mask.png")) > 0
    assert rgb.shape[2] == 3 and (rgb[~mask] == [0, 255, 0]).all()
    assert np.array_equal(rgb[mask], photos["IMG 2031 (1)"][mask])


def test_cli_names_an_unreadable_photo_and_writes_the_rest(results: Path, tmp_path: Path,
                                                           capsys) -> None:
    _write_photos(tmp_path / "in")
    (tmp_path / "in" / "broken (copy).jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    assert cutout_main([str(tmp_path / "in"), "-o", str(out), "--models", str(results)]) == 1
    err = capsys.readouterr().err
    assert "broken (copy).jpg" in err and "1 of 4 photos could not be read" in err
    assert len(list(out.glob("*_mask.png"))) == 3


def test_cli_refuses_two_photos_with_one_output_before_writing(results: Path, tmp_path: Path,
                                                               capsys) -> None:
    folder = tmp_path / "in"
    _write_photos(folder)
    Image.fromarray(photo()).save(folder / "IMG 2031 (1).png")
    out = tmp_path / "out"
    assert cutout_main([str(folder), "-o", str(out), "--models", str(results)]) == 2
    err = capsys.readouterr().err
    assert "IMG 2031 (1).jpg" in err and "IMG 2031 (1).png" in err and "would both write" in err
    assert not out.exists()


def test_cli_reads_stdin_and_writes_stdout(results: Path, tmp_path: Path) -> None:
    _write_photos(tmp_path / "in")
    data = (tmp_path / "in" / NAMES[0]).read_bytes()
    proc = subprocess.run([sys.executable, "-m", "carvana.cutout_cli", "-", "--models",
                           str(results), "--mask-only"], input=data, capture_output=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "stdout.png"
    out.write_bytes(proc.stdout)
    seg = Segmenter.load(results)
    image = np.asarray(Image.open(tmp_path / "in" / NAMES[0]).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(out)), seg.mask(image))
    bad = subprocess.run([sys.executable, "-m", "carvana.cutout_cli", "-", "--models",
                          str(results)], input=b"not an image", capture_output=True, check=False)
    assert bad.returncode == 2 and b"<stdin>: not a readable JPEG or PNG" in bad.stderr
    assert bad.stdout == b""


def test_cli_without_models_says_how_to_make_them(tmp_path: Path, capsys) -> None:
    _write_photos(tmp_path / "in")
    assert cutout_main([str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--models",
                        str(tmp_path / "nothing")]) == 2
    assert "snakemake --cores all submission" in capsys.readouterr().err


def test_describe_says_what_runs_not_what_was_asked(results: Path) -> None:
    if not HAS_ORT:
        pytest.skip("onnxruntime is not installed")
    seg = Segmenter.load(results, backend="onnxruntime", precision="bf16")
    assert seg.describe()["backend"] == "onnxruntime"
    assert seg.describe()["precision"] == "fp32"  # onnxruntime has no bf16 CPU path
