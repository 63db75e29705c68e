"""The synthetic Carvana generator: Kaggle layout and formats, determinism, masks that fit."""

from __future__ import annotations

import ast
import csv
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import carvana.synthetic
from carvana import ids, rle
from carvana.synthetic import (
    SyntheticConfig,
    car_specs,
    generate,
    main,
    render_car,
    studio,
    synthetic_ids,
)
from carvana.synthetic.config import N_ANGLES, TEST, TRAIN
from carvana.synthetic.dataset import RenderTask, render_image

W, H = 96, 64
CFG = SyntheticConfig(seed=11, train_cars=2, test_cars=1, width=W, height=H)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def largest_share(mask: np.ndarray) -> float:
    """Share of the mask's pixels in its largest 8-connected component."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return stats[1:, cv2.CC_STAT_AREA].max() / mask.sum() if n > 1 else 0.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root / "kaggle", root / "truth", CFG, progress=False)
    return root


def test_layout_and_formats(data: Path) -> None:
    kaggle = data / "kaggle"
    assert sorted(p.name for p in kaggle.iterdir()) == [
        "metadata.csv",
        "sample_submission.csv",
        "test",
        "train",
        "train_masks",
        "train_masks.csv",
    ]
    assert [p.name for p in (data / "truth").iterdir()] == ["test_masks.csv"]
    train_ids, test_ids = synthetic_ids(CFG)
    assert len(train_ids) == 2 * 16 and len(test_ids) == 16
    assert not set(train_ids) & set(test_ids)
    assert sorted(p.stem for p in (kaggle / "train").iterdir()) == train_ids
    assert sorted(p.stem for p in (kaggle / "test").iterdir()) == test_ids
    assert sorted(p.name for p in (kaggle / "train_masks").iterdir()) == [
        f"{i}_mask.gif" for i in train_ids
    ]
    for i in train_ids + test_ids:
        assert ids.ID_RE.fullmatch(i)

    for folder, some in (("train", train_ids[:3]), ("test", test_ids[:3])):
        for i in some:
            with Image.open(kaggle / folder / f"{i}.jpg") as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (W, H)
    header, rows = read_csv(kaggle / "train_masks.csv")
    assert header == ["img", "rle_mask"]
    assert [r[0] for r in rows] == [f"{i}.jpg" for i in train_ids]
    for name, code in rows:
        with Image.open(kaggle / "train_masks" / name.replace(".jpg", "_mask.gif")) as im:
            assert im.format == "GIF" and im.mode == "P" and im.size == (W, H)
            gif = np.asarray(im)
        assert set(np.unique(gif).tolist()) <= {0, 1}
        np.testing.assert_array_equal(rle.decode(code, (H, W)), gif)

    header, rows = read_csv(kaggle / "sample_submission.csv")
    assert header == ["img", "rle_mask"]
    assert rows == [[f"{i}.jpg", "1 1"] for i in test_ids]

    header, rows = read_csv(data / "truth" / "test_masks.csv")
    assert header == ["img", "rle_mask"]
    assert [r[0] for r in rows] == [f"{i}.jpg" for i in test_ids]
    for _, code in rows:
        mask = rle.decode(code, (H, W))
        assert 0.08 < mask.mean() < 0.4
        assert largest_share(mask) > 0.9

    header, rows = read_csv(kaggle / "metadata.csv")
    assert header == ["id", "year", "make", "model", "trim1", "trim2"]
    assert sorted(r[0] for r in rows) == sorted({ids.car_of(i) for i in train_ids + test_ids})
    assert all(2000 < int(r[1]) < 2030 and r[2] and r[3] for r in rows)


def test_deterministic(data: Path, tmp_path: Path) -> None:
    generate(tmp_path / "kaggle", tmp_path / "truth", CFG, progress=False)
    assert all_files(tmp_path) == all_files(data)
    other = SyntheticConfig(seed=12, train_cars=1, test_cars=1, width=W, height=H)
    a_train, _ = synthetic_ids(other)
    assert not set(a_train) & set(synthetic_ids(CFG)[0])
    car = car_specs(CFG)[0][2]
    im1, _ = render_car(car, 3, W, H, np.random.default_rng(0))
    car2 = car_specs(other)[0][2]
    im2, _ = render_car(car2, 3, W, H, np.random.default_rng(0))
    assert np.abs(im1.astype(int) - im2.astype(int)).mean() > 1.0
    # a car does not depend on how many cars there are
    more = SyntheticConfig(seed=11, train_cars=3, test_cars=2, width=W, height=H)
    assert car_specs(more)[0][2] == car
    assert set(synthetic_ids(CFG)[0]) <= set(synthetic_ids(more)[0])


def test_masks_fit_images(data: Path) -> None:
    kaggle = data / "kaggle"
    train_ids, _ = synthetic_ids(CFG)
    for car in sorted({ids.car_of(i) for i in train_ids}):
        widths = {}
        for angle in range(1, 17):
            i = f"{car}_{angle:02d}"
            image = np.asarray(Image.open(kaggle / "train" / f"{i}.jpg")).astype(np.float32)
            mask = np.asarray(Image.open(kaggle / "train_masks" / f"{i}_mask.gif")).astype(bool)
            assert 0.08 < mask.mean() < 0.4, (i, mask.mean())
            inside, outside = image[mask].mean(axis=0), image[~mask].mean(axis=0)
            assert np.abs(inside - outside).max() > 3.0, i
            # the image changes where the mask does: edges lie on the mask boundary
            grey = image.mean(axis=2)
            grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
            m8 = mask.astype(np.uint8)
            edge = (
                cv2.dilate(m8, np.ones((3, 3), np.uint8)) - cv2.erode(m8, np.ones((3, 3), np.uint8))
            ) > 0
            assert grad[edge].mean() > 1.5 * grad[~edge].mean(), i
            assert largest_share(mask) > 0.9, i
            cols = np.flatnonzero(mask.any(axis=0))
            widths[angle] = cols[-1] - cols[0]
        assert min(widths[5], widths[13]) > max(widths[1], widths[9]), widths


def test_render_sizes() -> None:
    car = car_specs(CFG)[1][2]
    for w, h in ((64, 48), (200, 90), (150, 200)):
        image, mask = render_car(car, 5, w, h, np.random.default_rng(1))
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        assert mask.shape == (h, w) and set(np.unique(mask).tolist()) <= {0, 1}
        assert 0.03 < mask.mean() < 0.6
    with pytest.raises(ValueError):
        render_car(car, 17, 96, 64, np.random.default_rng(1))


def test_cli_and_threads(tmp_path: Path) -> None:
    cfg = SyntheticConfig(seed=4, train_cars=1, test_cars=1, width=64, height=48)
    argv = [
        "--out",
        str(tmp_path / "cli" / "kaggle"),
        "--truth",
        str(tmp_path / "cli" / "truth"),
        "--seed",
        "4",
        "--train-cars",
        "1",
        "--test-cars",
        "1",
        "--width",
        "64",
        "--height",
        "48",
        "--threads",
        "2",
        "--quiet",
    ]
    assert main(argv) == 0
    kaggle = tmp_path / "cli" / "kaggle"
    for name in (
        "train",
        "train_masks",
        "test",
        "train_masks.csv",
        "sample_submission.csv",
        "metadata.csv",
    ):
        assert (kaggle / name).exists(), name
    assert len(list((kaggle / "train").glob("*.jpg"))) == 16
    generate(
        tmp_path / "one" / "kaggle", tmp_path / "one" / "truth", cfg, threads=1, progress=False
    )
    assert all_files(tmp_path / "cli") == all_files(tmp_path / "one")
    assert (
        main(
            [
                "--out",
                str(tmp_path / "x"),
                "--truth",
                str(tmp_path / "y"),
                "--width",
                "10",
                "--quiet",
            ]
        )
        == 2
    )


# --- golden output: what this project controls (issue 19) -------------------------------------
#
# Until issue 19 this test hashed every generated file, and on a fresh install all 80 JPEGs
# "changed". Pillow was not the cause (10.4, 11.3, 12.3 and 13.0 encode one array to the same
# JPEG bytes); opencv-python-headless was: cv2.putText draws the studio wall's lettering, 5.1
# anti-aliases its glyphs differently from 5.0 (up to 53 levels on 1.6-3 % of the pixels) and
# 4.x draws thin Hershey strokes instead of filled glyphs. With opencv 5.0.0.93 this code still
# writes all 80 old JPEG digests, and under 5.1 every GIF and CSV digest held: the project's
# rendering is unchanged, and the digests below were recorded from it.
#
# What they pin is the project's own pipeline, not a font rasteriser's or an encoder's output:
# - the rendered arrays (each image and mask before encoding), with cv2.putText's glyphs
#   replaced by a stand-in drawn with numpy (stand_in_glyphs). Everything else is pinned: car
#   geometry, random draw order, face order (it decides depth ties), shading, the studio
#   (the lettering's layout, scaling and blending included), grain. These digests came out the
#   same under opencv 4.12, 4.14, 5.0 and 5.1 with numpy 2.2.6 and 2.4.6;
# - the CSVs, written by the project itself (stdlib csv): the digests of before, unchanged;
# - what generate() writes is checked against what it rendered: GIF masks exactly, JPEGs within
#   the error of the quality setting, the real lettering by what it must look like.
# Re-record only for a deliberate change of output: golden_listing(cfg, root) is an entry,
# with root holding generate()'s output for cfg.
_SHA256_SMALL = """\
d1f052940608c2cc623cd5ae4bd1f84bb2af19e183d6d3c8f7e671ea55f63345  image/6732c5bd3868_01
affba0f41dca2b92aba6b66f7966133e62551a84a2b37b8f8ff34f28e9a785db  image/6732c5bd3868_02
96e26961ce3bae41a55f5dbadad45e0978df8d9fe61cf4b6657fcc8c6d6f3bcf  image/6732c5bd3868_03
a7a1f43eb691abda174ec28b05fdfcd764128d0fd0963dfcf1d4ad8e6d1cb54c  image/6732c5bd3868_04
e84f514f0fdae9e5a89d654d0fb299e5240e8dd482bd017a660fb57d989f1781  image/6732c5bd3868_05
d8f61232028ffde633e46ebea3ea696ce34192c128c4d38dfd0638910e79f655  image/6732c5bd3868_06
a787e23e6210d0a6367bafa6c8730d4b2ccccee0571a7d6bb5697a800bd2c3b7  image/6732c5bd3868_07
45e7bfa306f83e420174fd3e873470fa81d1fee113e8ed99c6be8a6dfb87fbdc  image/6732c5bd3868_08
b9b44fffff64a6210ecaeefe32c81b79c47bca211dc1ce1586dbf4271f9bbfb1  image/6732c5bd3868_09
d1578a665ca327a22f28fdecedcc90b44601803e02d31433e24210ad173b1d1e  image/6732c5bd3868_10
6a0b53e281b1ff5dcc36bca231b9473dbc30b0a5c3c040e8321ae9fe04f6494c  image/6732c5bd3868_11
fa9ec40777918e7fb14683e969e9984778076bcd01b71ae6378c79bd65161fcf  image/6732c5bd3868_12
a6d61af2e23d13d7a16f83f81aac13fb1ef5f6dafe4c111d81bfddf3e621823f  image/6732c5bd3868_13
0591aedcad8a920b9e554a2fd4e2d658ca38d4f8395a316f55ceafc662c44635  image/6732c5bd3868_14
9a110b9149929bb276184eea3376c8fe77274ffbe77d76dc173077f8268594fd  image/6732c5bd3868_15
75b4fdd9f44c4fcacacb65ba5d7c2ed538966d27a99c3bea676851e990e59eea  image/6732c5bd3868_16
ddec2808b21f99771240a32d883861337ef901a59cbbbc7c351e2a07e5a66aa1  image/cd747fb838e9_01
5211e04e13b52b1d9894b75a0673a8e71be3601201179c51b02427d30ff52e5a  image/cd747fb838e9_02
6cbc99503a3fc0791bc9e4715ae5c91f353998b938e618510479a52a027419ee  image/cd747fb838e9_03
d9dd99e97bf868497f889b86cac9bbb4035ab377c4046b39cd711f29b73bd6cb  image/cd747fb838e9_04
86b3a011dd74e03468a0d6fa7cbfabb4fdc10de1a37e36bfa635a4f9243ab3f0  image/cd747fb838e9_05
1784b23a83c4f2fbc85670a41161508b2fa61369252a264ce74b161487fedf47  image/cd747fb838e9_06
8daa071b55c8fe8b04d207cfc87759b8540ac3a71b10d2fe5f14a67e9682230d  image/cd747fb838e9_07
7fe4cd623592c0d3264a2e99c38b6528a84c2ac62e65dedaaf493df787b481a8  image/cd747fb838e9_08
90d90ba20ba7f0a4e17be272de7823f696502dab2562d8d615484b21a94f76d8  image/cd747fb838e9_09
e1694c5846527846f7099ff27935be0f3a2dbf135c73aee0d97ffb64a2d8bbe5  image/cd747fb838e9_10
7812febc58825f0d26fdb7dfeecd601f593f40304609a2baacf68898067e692c  image/cd747fb838e9_11
5cb5373f549d91de89279e281166e3465e89d5fd2cafbd61a910066d11c1e4b8  image/cd747fb838e9_12
e0b783a31ab5a6c18f5615d16e8439cc789134296b777f5beed3d310ee037b38  image/cd747fb838e9_13
746150ae20383d945cc4b136b95aa44f27a643ad42a0ca7567aee8c5352c290d  image/cd747fb838e9_14
da01d144b78bd47cba6775738086f605cf9d72d65fbdc30e23fef44fa3a2fe0f  image/cd747fb838e9_15
478ecb45f8a774fb44e5d777e43e76b24120415136c05d08902c216b03bd1d29  image/cd747fb838e9_16
25fbfd6025e8362ac7f71400c04260975f25da4c74bd3974f77adab402bf964d  image/e4546f5b6888_01
875dabb5e801975761d1aa6f1e98511b2aa2a951e81e9bf36e9d5a0642e08c33  image/e4546f5b6888_02
8c9500c32f6d7e51ce6770eee0e92a6f39ed5f55d80ccc2d1a331eeca21aee8f  image/e4546f5b6888_03
18416b938d31f288bb3a12e6509f3ca1d0cf59b7c204c03614e96deb0f8476b9  image/e4546f5b6888_04
ea124cc5264a15343b882f83bcaddaeda2636f4ef9be9123af29ab8e160f76c3  image/e4546f5b6888_05
4bff785689bf200ca67c405487d7d57d67fdfc002746adc09f4114fc1fd3104f  image/e4546f5b6888_06
59e3babe1d2425db26ad6986afa46443f0f9af8a0d7e01c0fd8db833a79a19f2  image/e4546f5b6888_07
85e86703bcc4e35a512e69bbafb0ffc050be10a0f75b6cf4961e0fbe7e401d4e  image/e4546f5b6888_08
baebaf79e3e9801566347f04a50f37026e81eab850218827c5e0bdc6e71ce457  image/e4546f5b6888_09
4de8b52c9ee0be3d758b91b960f6dae2e3b9763b4b850c9fa0d1bcec1da17d55  image/e4546f5b6888_10
33f16458a5cb43d820ae916ff75c32e259ae79b8d2199222054bf0e397d4c90f  image/e4546f5b6888_11
5dfb284717fc7a62c823826752e85c26f3082318f9e3bc6ee0ca09634ba64665  image/e4546f5b6888_12
bce2de3be8bee7b814a09ab253987e3567aef4b69446e86f5409ae8382fdb8c9  image/e4546f5b6888_13
e5f34c07cd8192c9f8be7f12065d60dacef47e7e07f0b97e2cfc5403ceb73088  image/e4546f5b6888_14
8c1ac4ae84a3990b16e908f706029b4943a08e4125c58983b0e89fa115c51a8c  image/e4546f5b6888_15
1faf1761300690418ab72aae4cf8dbee6ce860c8d71cba4d1d96476ebfc492eb  image/e4546f5b6888_16
c5daf8ff9e4b11ab4b14d4f2127384bdcf5c3c9583b3b58bca413731ed4f2cd5  kaggle/metadata.csv
6d98ae4dd300161958f4f406f67ad11a5fa3c09f8ba6998f4e9207766517b56c  kaggle/sample_submission.csv
16cc4a5095b572e18d64edd5429de6fd50ab525924cb7a7befff90ad3308adf7  kaggle/train_masks.csv
94c533fd8df43bbc9013e5888561ea3934bbceb6f4275b2be5ced234eeaa7c84  mask/6732c5bd3868_01
320e06851845852ed278d7edfb95188dca71c94cfffda7c741cb59edde4a3802  mask/6732c5bd3868_02
086c19b5f26e4e5e688cd241c2af1042a2ffd3e42ffba45673706b31fa6a3772  mask/6732c5bd3868_03
78897acb2a5f84a40a70b0d4c1e6abc7ff2ff2f70cf7d28fbffbfdc0d6c8e711  mask/6732c5bd3868_04
9eaefbf61bc4e0e0a1a8d7b4f4c368ba477f7cf2c1fb3c7c4579911e75da4dc6  mask/6732c5bd3868_05
1c49cdf316589c8f89b1033ca7cb065969850e74810d20e87dcaf9ce69d31792  mask/6732c5bd3868_06
8bdd90f41edb3dd61b2bcf52100ba106c3498188616e6df4145ab62922976bc9  mask/6732c5bd3868_07
47a66d813ea925038adc38097bd67d50960d1f4318efc00e83188afc0f4210c9  mask/6732c5bd3868_08
582a2a86ed3f2cc3ae7929f358bffbe1b9445e42164e67ea2170c27f3286efc7  mask/6732c5bd3868_09
95567229db6bf3ad2024f43df4a29aa4a12b916c73e0d4bf11585934c4331396  mask/6732c5bd3868_10
9dc2edebc2a1cb15d587da2fcf9f18ba2ffc4a6428eff0ce1352d8614c99a5c3  mask/6732c5bd3868_11
71410fe306abede9e394f02c0d898448c672e523ecb1606e4bf3e8a9e058e993  mask/6732c5bd3868_12
27dca5ab7001adc0e7781e01aaff13d58dbba146cb5f5d1f1073320adb0576c9  mask/6732c5bd3868_13
613eed0777eb4e7609274ab5e45cef4315e6dd2bb7f0d3b0e3e99d832ecd264a  mask/6732c5bd3868_14
d02a1b079224ddeedac25e7816f690b7a016596ae64619bdcab2f9614639f185  mask/6732c5bd3868_15
d7b19d01a59bfda7516ccd8865a858466d9c8d5d9d81dda0bb77c896b92bc788  mask/6732c5bd3868_16
8fc4e8b1a5f704df37e4c4cd07b09ac2f5b5519a96ff328217aba5a466ebbef1  mask/cd747fb838e9_01
c14ec15b3462a8ac6fe610a1e6e493e8e4b88a04d2493a470f236b6f779ed922  mask/cd747fb838e9_02
290f320e4b5e7eb95b6a387142f57c99aa5b27301a03616e2ef827ebd1b0b505  mask/cd747fb838e9_03
14aa3571b94690613badf12bc43f67915fd637f8c0c93b5398827c01b98c5b64  mask/cd747fb838e9_04
92f83fa54cdde05c03bfd61f9951596b383850d813961dbeef8c1dc9dfea1500  mask/cd747fb838e9_05
497abdc7ab075db7138fc0fb496841cf5fc64f73db20c43428722c3a29ffc6c6  mask/cd747fb838e9_06
5c5c9c8f569e07c6c0e7ccb57842bbdc71473b8171cd059f9da828e955a08cb7  mask/cd747fb838e9_07
fe78a6b3bd422410e79f5307c97a153c14502712e55c98f68ecd7f207408fedc  mask/cd747fb838e9_08
78a956d3f541777ad419fd92955d3e4640161067ae88d7e2848aeeb21292b539  mask/cd747fb838e9_09
846593c722a96dbbd2b8f4c4eeeea10d0891380dd4835317b3602317da31bd8b  mask/cd747fb838e9_10
ec8e61e78c88ced20d0a933a7078149994c8b4e15a70e9ece2dc1016e99c32fc  mask/cd747fb838e9_11
847cb9e90e3f7a3aa404df48b32abd9ffd8ed3a8f03156649281a90f470f1aa5  mask/cd747fb838e9_12
4588fa5d2f00fcab99b701c3427727771e439e112d1364dc869952c99d5400f5  mask/cd747fb838e9_13
3f13d742c68edb4dc70551daa842a465378fa4fa0980073f9ccbad06926da906  mask/cd747fb838e9_14
083827474a6b3fee204ba0bae37cd06bc95d94cdc1fb028c281b20036eeaa045  mask/cd747fb838e9_15
886fc9eb871aa7bbd39401ff85fa6382c1884e727968faf68428955c57062eb5  mask/cd747fb838e9_16
7e20d6703985ed96eb5830b699cd346c88d53eb25c83010dbf6f0ecba69d5c38  mask/e4546f5b6888_01
4605a3526dca238193a5c2d5eca7cd54bbcdba9451312e20a28f9574dc87fd3c  mask/e4546f5b6888_02
42a16393f6e8282f26100a073d150af90dc2ac635ea77026f49dbd8cf9c0d1e0  mask/e4546f5b6888_03
4182fe9d943b4431542172986050b592e747361ece20327d118fc8ca1341afe2  mask/e4546f5b6888_04
e7b373bdb036f50b75866a0d268dfcfd451d70dececa711236be191e7e2a396a  mask/e4546f5b6888_05
cec413bbd96dda2a8a4d07c45fb9c666e28eacf007d8011b863092a8da9e618d  mask/e4546f5b6888_06
6c8c24ff814bfb31d0dfb7a411a422cc479263950461827d922e70e5ba1a045e  mask/e4546f5b6888_07
2e8cd2eaa59302929c9903f410133d1e30d29b70fbdd8d7ecfdc184de0d7db71  mask/e4546f5b6888_08
cb7abd2f71a566faee461057c4aea79da4740ecd25131a35effed5dc54a473f8  mask/e4546f5b6888_09
e0342ebd92a9e5b548123ba43d3a6cf34e1385d0d5cac72d2a7b46fd381c4a2c  mask/e4546f5b6888_10
e4a8fe14d0dbddca7d6f8fc4ee5cba589e7510b46c052efd74111205061c0653  mask/e4546f5b6888_11
a3a06f5ea751eeea739b27513a0868c2cb97a0c6b4360b9c0f4f5284b0c61531  mask/e4546f5b6888_12
b0414ea59686a6a2f469d7b24a8de939fa580556ef2fe2c4f13cb640ac7d072e  mask/e4546f5b6888_13
7e0f61562e6160da53070cf6a9f6166af269179d04bde513401f0f6e0170656a  mask/e4546f5b6888_14
6764ccd1932d9b2d3ed4e603ac1a9d0e14ea4b39013a770b1c92f0bd79ef72f3  mask/e4546f5b6888_15
3cbac374d4b1550d78c1c0820ccfc7ae308b17f802335466f430fb9a505e7490  mask/e4546f5b6888_16
00091534845e45570749ca8922d285ccb403ccad3b1b8f89a9641e929a0b4349  truth/test_masks.csv
"""

_SHA256_DEFAULT = """\
cf03cc01f99e531592949d0233e8f5ef8238ef5c3676444de56212ba8f11674c  image/6732c5bd3868_01
0c27c42d24387761a67ad4d36791193d9579fe895c7c80d21feda79abb5336d5  image/6732c5bd3868_02
e1cd3a9e6fccd1c1d3f84141128532f3eafb310e2b171d2a1cfc41563e4f363e  image/6732c5bd3868_03
1f470c83fe1b82dd80b4960d6319041f4343ece38323ff302f0805f0a6e09097  image/6732c5bd3868_04
8aa5dd6f3406b989805113d2cd6f4d0bfe09346bf5b227c6a3ad9ac1db1fd563  image/6732c5bd3868_05
3b6ffee2e528e0a1becfc7159dc8628c36cae0759dbb95122669a60dff0c37a2  image/6732c5bd3868_06
03ea5f22d7b76c149af6b98599b30b02cd3d436b68b22b2b0fd057c31bff5122  image/6732c5bd3868_07
a85e1bbd3b5aac2852604bd90c8e77023463b6248941709731b745bef2e7a459  image/6732c5bd3868_08
5401abd0dbf0dc6f0646478b4f659b7269c5f08300582f09811f4d2d675024b1  image/6732c5bd3868_09
272bd3223b1b99372676b0d36fa435ef4ad289b37603aa7aa892206432a7a03e  image/6732c5bd3868_10
15c8f4c8e2d4d0e345ff28111250cedee9a3e124991bcae9b226aebe983afa38  image/6732c5bd3868_11
ca55a81249e4f95fd747b04ed9a8a9335816c1034f013350b7503b3ba5032739  image/6732c5bd3868_12
eb3a8dc046e9be1897f588aef30c0c9496a923f05953a961e0abb8ecd08886d7  image/6732c5bd3868_13
68ba138cdb306c60fc613971fd170eb76d06d39e23c715d16be97116a4eef3f5  image/6732c5bd3868_14
f499246e914ffbe09fe19e13841a96a41579a4fe1a50f64618c4a847e50011b4  image/6732c5bd3868_15
766fd3f4bc18876c472900201eb535f98c37381feb6ede5e4bba21c06f0fcfda  image/6732c5bd3868_16
207af604bf44f8fc80f6528f3de300bf925d9da137b13ba13b6eff88ee127da7  image/cd747fb838e9_01
719c1886afb4226035e6bccfda9bb5c87ac690c0e8d464586fcac12e49041bce  image/cd747fb838e9_02
dc9b857c4e2c890c457ff3341759b4595a25c152340cb22b2e4bf7d96543123e  image/cd747fb838e9_03
7805f4b88eae9639ca20f64e7e98704ab8a9782d5f8b49f06f5cf1136a3eb8b3  image/cd747fb838e9_04
a273bc5d9e9682769b1397ad2c729e63d735b8fd8031fa299e24b558d422b58a  image/cd747fb838e9_05
55009d2b0ea2c29af551b7fbef6843f924f1cf6db4f52a25f3998ae134f6d4db  image/cd747fb838e9_06
539ff479cd1358d6ae95d2897846b286dca196625377bf480dc828cc16c5e81e  image/cd747fb838e9_07
71440eeb0f388a64ba9ab81bbe80f45d491d079afdb1dc34995afbc9d10413f2  image/cd747fb838e9_08
35d95b49f6db0f1cd2c3cf4f4422c90cbcd495b4c78efe911f3a4c32201c4316  image/cd747fb838e9_09
6a7d2c29a7385188b22a523b57b5b85619e839fcad6639de26b1a103af898a31  image/cd747fb838e9_10
196a351320727bd38b54c91dae98875dba3af56c79ae556ee66b29c930aa4dd8  image/cd747fb838e9_11
ff60bedfffba7266555c96c3400fab2355a8cc9f940cd44e353adede30570421  image/cd747fb838e9_12
393c80b02a84302f755ee4accb7c477edd62db9071f59bb42b02bcc01dff817d  image/cd747fb838e9_13
cc9ce9dfae12728e494b4444905ea08439267504e12d9aed4206821ba1304619  image/cd747fb838e9_14
f4536c78330147c78ed33c340479ae52eab1edd444415e84773f3d77ec05acbe  image/cd747fb838e9_15
6c4e23ce01dc38d0b36bfa3e4d7c295fd0aaebeba48448f1ffe8a7d46878f2af  image/cd747fb838e9_16
cb5b327b99068e0b4f53b88fdf31ed79d5d35f4b155d39c3735a88ccfa5f7f31  kaggle/metadata.csv
6d98ae4dd300161958f4f406f67ad11a5fa3c09f8ba6998f4e9207766517b56c  kaggle/sample_submission.csv
e5d0bdf454736e27dc92a4b1900ba916fea5d04d607240bd4a78a0dd56140281  kaggle/train_masks.csv
147a818979656da19c2f782e13cfb2f8e514c482a59eb85dd5a6a9fc0e84b3d4  mask/6732c5bd3868_01
ad96811f48054c6801fd1de82ee8a7733bbf6f6f7679d569d3959bfe3d00ad89  mask/6732c5bd3868_02
cd4cebdb212f97796661a59bc7e53f424a67d0225781aba2ea3a2707996dca44  mask/6732c5bd3868_03
4c98841c0c5e021d0224a2afc8f0da2e94ec445932b0a20dc50f02d8eb7c4cd5  mask/6732c5bd3868_04
e21baf27cfa2818cb409d4df3faadd57ecf58fffe6898e42fd69a045f61aa2c0  mask/6732c5bd3868_05
91ef0a4baf368b6c657a1dfc8634bf0aaf1cfd879cee5b9cba9278ae034273e6  mask/6732c5bd3868_06
15f8f6b5355a91c2f39ebdaee02f73f86686fe3bea77e6d2b9c36e4b0b3f749c  mask/6732c5bd3868_07
b3ce71e5d86054e1896a2e3dbc53efbf8f41881d494443f8340fbe26b07ebc74  mask/6732c5bd3868_08
42d9e2097982822de27a56b0fda73dac3658f50996ca46bc488887b63ca10068  mask/6732c5bd3868_09
962f37741da774b3c3bab39a04d0c29e695ec5b80c2663d81c59e36359a950ed  mask/6732c5bd3868_10
150e33542323238eed0cb20105b29dc2bb06ef3bf54c993beb2e0fd1ce5732af  mask/6732c5bd3868_11
bde89692f6fda0f5927ee5d97af07fa904431f4b2cba76f2b28d866b8591ec72  mask/6732c5bd3868_12
0b1ec4f935575910af1812f64c07fb8c121f629c9130d94cefa68bab20246214  mask/6732c5bd3868_13
b68d52c99687c80a16e5a3cf06b78e35eb5a1168a085d2a7cbdf3915fb2ab630  mask/6732c5bd3868_14
8a075f8b95eb409b33e9ede7856632371a2a71e51a250b44bf28c56b6eb8c7db  mask/6732c5bd3868_15
9b582010737ec167f6fa45bc0a60642621716d5ca230a0603e702c83ac83bbbb  mask/6732c5bd3868_16
82971a1696e3cedb71036d223f87ba8997560f484614841021153b997c33f4fa  mask/cd747fb838e9_01
7ef9d816a2afccec6724b03911a75413fadcb0897986d8959bb8ad8c143a5b01  mask/cd747fb838e9_02
0419cb7caa9d5dc1a8f80486e03e63c89488fa76d937a239c8db892342b4a7d3  mask/cd747fb838e9_03
dc900051eba9e22b6e6383fc6e302c537eac9142bf5ce70ad16dce76d801beca  mask/cd747fb838e9_04
ff5f197fa21c0f45c4767be85b1d28bec3afb551fa15c01927b0f28b72ed5dcd  mask/cd747fb838e9_05
299504ccb901a5aa37eedbbeca8f7860f4a8b3af6b95dcf9693ea42449776283  mask/cd747fb838e9_06
e82b94c8331a7069ef62265112382c1081e2d7503b049d92e72ef8df76cde358  mask/cd747fb838e9_07
71caabc1562594afe45096ef729b7b25051bb566d9213f213a6265661d4685aa  mask/cd747fb838e9_08
f94e70415b285ce698a50f3f5bb964013b0650ed1d29744a8393c6fb7bfeafa0  mask/cd747fb838e9_09
5e386f309f3b7c82bf2d911a88c4623e4f09c95da330298f49abfb67fac68e14  mask/cd747fb838e9_10
1d14421ec04b29d78bdaa3d94893c796bd923ec33e8eeb5a77819381172baa2d  mask/cd747fb838e9_11
49f07c6d7aa1c2a2531ffa01bc5b008ff404c53c1a2813f5b153e7d4c37ee763  mask/cd747fb838e9_12
77ff01c39b211b37cadbe1eb0e729905eb3f4e0afb65461e9064d26801ca7d5d  mask/cd747fb838e9_13
528dbff8d23f4fc67f3d89febb0292fedd810ecaae0f428b6b6906a7984554b1  mask/cd747fb838e9_14
28715b549dd29a6bafdc77110acda22193f4ad8821a8e6741f0810c69af35495  mask/cd747fb838e9_15
d56e983b73d7aa7369d83da707a977f4dbf9e8641312173b8232b0eef5c5966c  mask/cd747fb838e9_16
d3c04f2521a3d8b7ef1ca2ac29e96298afdbd3bfb2190f7959b6dd22bb9e8b30  truth/test_masks.csv
"""

GOLDEN = {
    "192x128": (
        SyntheticConfig(seed=5, train_cars=2, test_cars=1, width=192, height=128),
        _SHA256_SMALL,
    ),
    "480x320": (SyntheticConfig(seed=5, train_cars=1, test_cars=1), _SHA256_DEFAULT),
}
CSVS = (
    "kaggle/metadata.csv",
    "kaggle/sample_submission.csv",
    "kaggle/train_masks.csv",
    "truth/test_masks.csv",
)

# A JPEG at quality 92 decodes to within 40.2-42.9 dB PSNR and 1.36-1.77 mean absolute error
# (levels) of the rendered pixels, over all 80 golden images (Pillow 13; 10.4, 11.3 and 12.3
# write the same bytes). The bounds leave ~2 dB and ~0.2 levels for another libjpeg's rounding.
# They still tell images apart: a neighbouring image's pixels are at most 21.1 dB and at least
# 10.9 levels away (checked below), and files written at quality 75 (34.3-39.0 dB, 1.92-3.17
# levels) fail them too.
JPEG_MIN_PSNR = 38.0
JPEG_MAX_MAE = 2.0


def _stand_in_glyph(img: np.ndarray, text: str, org: tuple[int, int], *_: object) -> np.ndarray:
    """cv2.putText's place in studio.lettering: one block glyph per letter, drawn with numpy."""
    x, y = org
    k = ord(text) % 5
    img[y - 120 : y, x : x + 60 + 10 * k] = 255
    img[y - 90 + 10 * k : y - 30, x + 15 : x + 45 + 10 * k] = 0
    return img


@contextmanager
def stand_in_glyphs() -> Iterator[None]:
    """Render with _stand_in_glyph for cv2.putText (the lettering's cache cleared around)."""
    real = cv2.putText
    studio.lettering.cache_clear()
    cv2.putText = _stand_in_glyph
    try:
        yield
    finally:
        cv2.putText = real
        studio.lettering.cache_clear()


def rendered(cfg: SyntheticConfig) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """image id -> (split, image, mask), rendered as generate() renders them, nothing written."""
    out = {}
    for split, index, car in car_specs(cfg):
        for angle in range(1, N_ANGLES + 1):
            image_id, image, mask = render_image(RenderTask("", split, index, angle, car, cfg))
            out[image_id] = split, image, mask
    return out


def array_digest(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def render_digests(cfg: SyntheticConfig) -> dict[str, str]:
    """image/<id> and mask/<id> -> digest, rendered with the stand-in glyphs."""
    with stand_in_glyphs():
        arrays = rendered(cfg)
    out = {}
    for image_id, (_, image, mask) in arrays.items():
        out[f"image/{image_id}"] = array_digest(image)
        out[f"mask/{image_id}"] = array_digest(mask)
    return out


def golden_listing(cfg: SyntheticConfig, root: Path) -> str:
    """A GOLDEN entry: the rendered arrays' digests and those of the CSVs generated in root."""
    digests = render_digests(cfg)
    digests |= {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in CSVS}
    return "".join(f"{digests[k]}  {k}\n" for k in sorted(digests))


def _expected(name: str) -> tuple[SyntheticConfig, dict[str, str]]:
    cfg, listing = GOLDEN[name]
    return cfg, {path: digest for digest, path in (line.split() for line in listing.splitlines())}


def _changed(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    return sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))


def jpeg_error(decoded: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB, mean absolute error in levels) of a decoded JPEG against the pixels."""
    diff = decoded.astype(np.float64) - image.astype(np.float64)
    return 10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-12)), float(np.abs(diff).mean())


def jpeg_holds(decoded: np.ndarray, image: np.ndarray) -> bool:
    psnr, mae = jpeg_error(decoded, image)
    return psnr >= JPEG_MIN_PSNR and mae <= JPEG_MAX_MAE


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_rendering_matches_golden(name: str) -> None:
    """The same seed renders the same arrays as before (font rasteriser aside, see above)."""
    cfg, expected = _expected(name)
    expected = {k: v for k, v in expected.items() if k not in CSVS}
    changed = _changed(expected, render_digests(cfg))
    assert not changed, f"{len(changed)} of {len(expected)} arrays changed, e.g. {changed[:4]}"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_written_files_hold_the_rendering(name: str, tmp_path: Path) -> None:
    """generate() writes the CSVs of before, each mask exactly and each image as a JPEG of the
    quality setting (decoded and compared, not hashed: the encoder's bytes are Pillow's)."""
    cfg, expected = _expected(name)
    generate(tmp_path / "kaggle", tmp_path / "truth", cfg, progress=False)
    arrays = rendered(cfg)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    folder = {TRAIN: "train", TEST: "test"}
    assert files == sorted(
        [
            *CSVS,
            *(f"kaggle/{folder[s]}/{i}.jpg" for i, (s, _, _) in arrays.items()),
            *(f"kaggle/train_masks/{i}_mask.gif" for i, (s, _, _) in arrays.items() if s == TRAIN),
        ]
    )
    got = {rel: hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() for rel in CSVS}
    assert not _changed({k: expected[k] for k in CSVS}, got)

    decoded = {}
    for image_id, (split, image, mask) in arrays.items():
        with Image.open(tmp_path / "kaggle" / folder[split] / f"{image_id}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            decoded[image_id] = np.asarray(im)
        psnr, mae = jpeg_error(decoded[image_id], image)
        assert psnr >= JPEG_MIN_PSNR and mae <= JPEG_MAX_MAE, (image_id, psnr, mae)
        if split == TRAIN:
            with Image.open(tmp_path / "kaggle/train_masks" / f"{image_id}_mask.gif") as im:
                assert im.format == "GIF" and im.mode == "P"
                assert im.getpalette()[:6] == [0, 0, 0, 255, 255, 255]
                gif = np.asarray(im)
            assert set(np.unique(gif).tolist()) <= {0, 1}
            np.testing.assert_array_equal(gif, mask, err_msg=image_id)
    # the bounds tell images apart: each file against its neighbour's pixels fails them
    ids_ = list(arrays)
    for a, b in zip(ids_, ids_[1:] + ids_[:1], strict=True):
        assert not jpeg_holds(decoded[a], arrays[b][1]), (
            a,
            b,
            jpeg_error(decoded[a], arrays[b][1]),
        )


@pytest.mark.parametrize(("width", "height"), [(96, 64), (480, 320), (1918, 1280)])
def test_wall_lettering(width: int, height: int) -> None:
    """The real glyphs (cv2.putText's, not pinned by digest): seven dark letters filling their
    box on the wall and nothing outside it. opencv 4.x's thin Hershey strokes cover 3 % of the
    box (5.0 and 5.1: 29 %), a different studio: hence opencv-python-headless>=5 (pyproject)."""
    alpha = studio.lettering(width, height)
    x0, x1 = round(0.065 * width), round(0.935 * width)
    y0, y1 = round(0.195 * height), round(0.372 * height)
    box = alpha[y0:y1, x0:x1]
    outside = alpha.copy()
    outside[y0:y1, x0:x1] = 0
    assert alpha.dtype == np.float32 and not outside.any()
    assert 0.2 < box.mean() < 0.4 and box.max() > 0.99, box.mean()
    columns = (box > 0.02).any(axis=0).astype(int)
    assert np.count_nonzero(np.diff(columns, prepend=0) == 1) == len("CARVANA")


def test_module_entry_point() -> None:
    """``python -m carvana.synthetic`` is the ``carvana-synthetic`` command."""
    proc = subprocess.run(
        [sys.executable, "-m", "carvana.synthetic", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("usage: carvana-synthetic")


def test_small_parts() -> None:
    """Every module of the package is at most 500 lines and every function at most 80."""
    for path in sorted(Path(carvana.synthetic.__file__).parent.glob("*.py")):
        text = path.read_text()
        assert text.count("\n") <= 500, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                assert size <= 80, f"{path.name}:{node.name} is {size} lines"
