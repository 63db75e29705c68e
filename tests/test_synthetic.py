"""The synthetic Carvana generator: Kaggle layout and formats, determinism, masks that fit."""

from __future__ import annotations

import ast
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import carvana.synthetic
from carvana import ids, rle
from carvana.synthetic import SyntheticConfig, car_specs, generate, main, render_car, synthetic_ids

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


# sha256 of every file of two generated sets, recorded before synthetic.py became a package
# (at 0f6cafe). Any change of output fails here: geometry, random draw order, face order (it
# decides depth ties), shading, the studio, JPEG/GIF/CSV writing. The JPEGs also depend on
# Pillow's libjpeg build; regenerate these only for a deliberate change of output.
_SHA256_SMALL = """\
c5daf8ff9e4b11ab4b14d4f2127384bdcf5c3c9583b3b58bca413731ed4f2cd5  kaggle/metadata.csv
6d98ae4dd300161958f4f406f67ad11a5fa3c09f8ba6998f4e9207766517b56c  kaggle/sample_submission.csv
c85dc5af09145686ad3e1c9d9412fd2f27764ad13710daee30533bc0ba9944e8  kaggle/test/cd747fb838e9_01.jpg
da16628c8f0c8a3f818e8a489a80c21800549b6a1f85eb3cedfeed20d2fe4c2f  kaggle/test/cd747fb838e9_02.jpg
dee912accde676f3f7c63dc1426683024dcf292aa46393b83864c9031d96f6b0  kaggle/test/cd747fb838e9_03.jpg
4e217b56aa31e82b5d76aaad4daef97c9f4383b63e449e47998ee8fd8a8911cf  kaggle/test/cd747fb838e9_04.jpg
728ba1cb8f32617a062b450aa513fd3231cdc935a5c142c4ce4c513aa6e6f5bd  kaggle/test/cd747fb838e9_05.jpg
ea9c3a8531d39cf2bb6a0bf0efd89977652693960088f66d0910bf8a47f83d03  kaggle/test/cd747fb838e9_06.jpg
e98cb166106bf0f8d4cadfe6f0d866e8820048d031c677db8a499075061c8190  kaggle/test/cd747fb838e9_07.jpg
ba19a16427a78711a85ea2538670acf1119860d2e3a76baa268f15a336c60524  kaggle/test/cd747fb838e9_08.jpg
002832c21e8061fd209efdd7600bea6568d0d892ec921fddca9a965bb31f15d0  kaggle/test/cd747fb838e9_09.jpg
908b136ce14eedb18f91ee51bc4b65daba2d7c52455995630d58e96d3c12e7ef  kaggle/test/cd747fb838e9_10.jpg
1440453aca3c0676536e8608de0e96b19677cf480a546df449f3027c7c89b3f1  kaggle/test/cd747fb838e9_11.jpg
2e7217197eed75262079f68b4e87abc6293282ad30172a4b3ef9cfa37fc59f56  kaggle/test/cd747fb838e9_12.jpg
b90ec1e2aa9d9bb108792635b5fc06a69a0f45b69396034466a50bb143d24695  kaggle/test/cd747fb838e9_13.jpg
26950fd9c207a76a1aa31450ae3082e5803b27e65ac58502871d299162b757b5  kaggle/test/cd747fb838e9_14.jpg
560edce2fe1a99d1bde7c42abd16e914b3cbafaad6368163c4bb173072772484  kaggle/test/cd747fb838e9_15.jpg
a21fcebc16234307f2346f852ec92092674507241389586337a420346cd70c81  kaggle/test/cd747fb838e9_16.jpg
cfcc58f6bff14e001eb5eccbe91d79f2daaf1ca7e62c2de556ed7ab95cfd6b75  kaggle/train/6732c5bd3868_01.jpg
201d0504e6165a68bcf92a9f5776a682f727c1d73f3d108dc65713fdf4146fbe  kaggle/train/6732c5bd3868_02.jpg
e25c0b50f15acd18ed1391527fa07f46c87edf4c29f8efa58cb70bfb71a566da  kaggle/train/6732c5bd3868_03.jpg
fb390e4222cc7f87b88f84361fdfb7f2e8dd4d4788c3c1833cca316c7bc8a0ce  kaggle/train/6732c5bd3868_04.jpg
11c2224160849038f2450095e6619865d486b5686472a5d0a477bdf9b33e40da  kaggle/train/6732c5bd3868_05.jpg
5866e055e0ae6de5edb7718b447ac4cf41a159bba0da36299032156f19adecf4  kaggle/train/6732c5bd3868_06.jpg
7eb12958b077f54d185ea7d4db63795b2d6755becaccc84af7ff894a3ded8745  kaggle/train/6732c5bd3868_07.jpg
6fd28dcd4f1ab667fd895a4c2ebb640141b7a752908939f52e37dc75358b3438  kaggle/train/6732c5bd3868_08.jpg
243e588b3774df4899d4aa0f6a2ca28e8061b1cc5c694eadd137a6ea1fa472a9  kaggle/train/6732c5bd3868_09.jpg
0bd7957b83884007fd2404f3bd393fba61a053c37700472208980801a3ab252b  kaggle/train/6732c5bd3868_10.jpg
7150edd91d5827a8fb9b223df611b0e03b20c88e8d58bdbcc2e5ab0359b0d6e9  kaggle/train/6732c5bd3868_11.jpg
0bb89a3e723172d5e99d359554e53d3389387fefda6bfdfba39e99f77270c8e0  kaggle/train/6732c5bd3868_12.jpg
0bb79d443ce81bfc525dcd2bf0dd82ea57eadaa253ad98edced5d9a6fdffdc52  kaggle/train/6732c5bd3868_13.jpg
416a02fd598ce5e1ded0521b714ddf22e325d49f94e5aa01fdf133d87afe3826  kaggle/train/6732c5bd3868_14.jpg
87d68d9669dcbebc580cdf6f00a1d0296315f6e6df137645c07950209adb17a9  kaggle/train/6732c5bd3868_15.jpg
16eee3bfbc53500e02dbe0ee26653dc48c9ae27333244ab8812152a514f417a5  kaggle/train/6732c5bd3868_16.jpg
087b9537afb9790fb6d3012399777b182d6f84d1dd4f6204ca50f2ed32dbcba1  kaggle/train/e4546f5b6888_01.jpg
6d98392be199af8c9ad1ecd772bf743b0f05f7db598eeb8383ef62a6f388b9f2  kaggle/train/e4546f5b6888_02.jpg
e96b860dd6b8b682d661d9217273192439179d0fd848c1cfbd04c433c2ad8252  kaggle/train/e4546f5b6888_03.jpg
21817e09bbf2386a1b65182fc404544cbfa66e54263790848b67f3e76ed53b7c  kaggle/train/e4546f5b6888_04.jpg
d73d82c3e03cc9e359c76b264229f7efba5da27f5621b3e0c825d2adbc5582f6  kaggle/train/e4546f5b6888_05.jpg
0eb81e51a04fdb661cf39064715638cf0abc6b6ad83c706383820db092a2a8ae  kaggle/train/e4546f5b6888_06.jpg
b770f5d8ab2ed3a253d1fcaf9c56a6c4fe83ba349d5864be1d83f03936bab343  kaggle/train/e4546f5b6888_07.jpg
ef95703bb294058115cccb288c869699e5fa07f5519a13ca7b08e5d469ed2373  kaggle/train/e4546f5b6888_08.jpg
8c4ba2285d08e4bbd01ebb839094435017a515bc2250278a72df110db26ea818  kaggle/train/e4546f5b6888_09.jpg
e183ee9fb2eed6d22dce4b02485b02bb527c0ffd98393737f4029bc878b72ab7  kaggle/train/e4546f5b6888_10.jpg
46f8b66eadbd09aa2de2b4da486f302db9bb7fe444a628f9fea94cda219ab031  kaggle/train/e4546f5b6888_11.jpg
13158f6c56709c7cc21af61713ab31213fc0f3c7e06ea04010c7efec90ed3ace  kaggle/train/e4546f5b6888_12.jpg
5cb20ee036bd95683b31bb53f5e8de18c2ea7b815bebc5ef0093aef07bd81802  kaggle/train/e4546f5b6888_13.jpg
216ef89614608567f1416d2fc1d6ce6d8f44dfcdecbb6673f7a89fe8ff45d72b  kaggle/train/e4546f5b6888_14.jpg
c2f5c585ce4eba1eabb332b9325eaaa8c89936602f013b78d0c8e6d2b0bd1d71  kaggle/train/e4546f5b6888_15.jpg
581c7858b5f5829bd61726b21a8c247e0f9805924789c82ea982461ef477d50b  kaggle/train/e4546f5b6888_16.jpg
16cc4a5095b572e18d64edd5429de6fd50ab525924cb7a7befff90ad3308adf7  kaggle/train_masks.csv
c0f31f74ed500c1bb1517e77604ca480def94487f50f7c85194622720a21a755  kaggle/train_masks/6732c5bd3868_01_mask.gif
6f23c9395ef2259005595946c4d96a41e33da4a2089b97fd5284cef4d14aeca5  kaggle/train_masks/6732c5bd3868_02_mask.gif
982c4a64771a87211ff2b35f7726299986e783fad2bdd75ee15028b183e05543  kaggle/train_masks/6732c5bd3868_03_mask.gif
d33619f0a7b7d6ffd1114ad4fb1aa7adb82fbe91fc21957559372ebdac54041a  kaggle/train_masks/6732c5bd3868_04_mask.gif
60788171658541c21ee97a4f41af0c016522a541ed49a656f568f60ed048bb31  kaggle/train_masks/6732c5bd3868_05_mask.gif
ef2519eb307690f4a5ff490f78bd4b92293203a39f0f1b0b49050c57d3fec71c  kaggle/train_masks/6732c5bd3868_06_mask.gif
9d0215c6cc7240f76af3b7a24f060ddeabf5b19550bf0ee1116025a2319a5c6e  kaggle/train_masks/6732c5bd3868_07_mask.gif
485f78bd77c9be181705b1e8525ff75ac72f65fe9cf49b9f1ca2d5a76f24682e  kaggle/train_masks/6732c5bd3868_08_mask.gif
64d11685860b8d22679a213acefed37cabb9094695b1b2463450a99f9379ba31  kaggle/train_masks/6732c5bd3868_09_mask.gif
a882fe00877a1fbd8a0ec5fe5d1842c72c854cf6d39006d4518456be2403f453  kaggle/train_masks/6732c5bd3868_10_mask.gif
105f0f590db5e0acb724ddfb2e3801379ba87ca4ab998f0e4c7778b20dc03648  kaggle/train_masks/6732c5bd3868_11_mask.gif
d80fe2d0f655047e717c5f1c38c9471a7def52d46e94e927f83ddba18c8b6d02  kaggle/train_masks/6732c5bd3868_12_mask.gif
6c0d903227ff29d6738c8601e02130e5c8c2c7a998b62e52b478d07c981d974a  kaggle/train_masks/6732c5bd3868_13_mask.gif
4e78b18bcbde10c8d7b9c536b45db630efdec9bd8ed371cb75585d592e7182b9  kaggle/train_masks/6732c5bd3868_14_mask.gif
60201fc6973c1a32c2b8115b733fb2c9ab0347b9e62f400bf5b4c330fb35394d  kaggle/train_masks/6732c5bd3868_15_mask.gif
77aaeb38e4b024c3f9a41e5afcc50257d1249fa54572e78f10573bfeabaa7692  kaggle/train_masks/6732c5bd3868_16_mask.gif
6faac0486ee4ed8583c421a4668c527ab128c6175726b7cda8764026807b10f4  kaggle/train_masks/e4546f5b6888_01_mask.gif
9ca967ee150f216c9407ab68adad03ff11b22570807db3a2c9083faf5fdab9c9  kaggle/train_masks/e4546f5b6888_02_mask.gif
a6219e4676b01a190baf98ad38156c64633becd53a2fb5c7d6d9b9922850b749  kaggle/train_masks/e4546f5b6888_03_mask.gif
7d5bcd6e1efb144ee7abd5503b90dce101712715da8e64ceaff58b4c156c92e4  kaggle/train_masks/e4546f5b6888_04_mask.gif
89ea19453aec2224de5496d61c2091e5e85ed3a98827bf8f6b3adaa0dae37690  kaggle/train_masks/e4546f5b6888_05_mask.gif
f5c26fedf22b3d56a5c37564af864c4f4f8a9ea18b0a498b86eef4ea7c1f3c17  kaggle/train_masks/e4546f5b6888_06_mask.gif
157b7a9d588dd03fa36d49c9196efee946c69d4aba86c33ca8426cf26926b4b0  kaggle/train_masks/e4546f5b6888_07_mask.gif
42979e6e550fcc7b440ba6ebdbebe7822d8b0e5fcdb11299b530af7a92d6ff56  kaggle/train_masks/e4546f5b6888_08_mask.gif
ca5b77f973fa0bd5fd0d9c32f0b56005dfcc88c3da272cbe96d27b2e82aefd80  kaggle/train_masks/e4546f5b6888_09_mask.gif
7f20a097dbaff21c5b20454d715c6d2f6692f617f5236d26b88a61b4454527de  kaggle/train_masks/e4546f5b6888_10_mask.gif
fedc65f2bf1bccf66584ee3feae61ae440eff5ff2a7829a08d057efcf52f1683  kaggle/train_masks/e4546f5b6888_11_mask.gif
9d69a83eba84f8f696b21d9e489ba518d44defd000249f78880c4358f1cbb69e  kaggle/train_masks/e4546f5b6888_12_mask.gif
d20e309d5b0920ede5fa1f7b623e5b0ef4cbea9dcdab9d563069692094fa1a2d  kaggle/train_masks/e4546f5b6888_13_mask.gif
1b06dd8ec5dbf2b64caf3d5b1808f71babd15982e150d3e8a272622933013692  kaggle/train_masks/e4546f5b6888_14_mask.gif
0ff10bf1c0405dcb66bc52e9015052684c5d48eec088eab78f43d52c1d375ca9  kaggle/train_masks/e4546f5b6888_15_mask.gif
d3fd436dd38c5c59c70e2a0bc39bd4618ccd517ca173858de6d487f50a043c1b  kaggle/train_masks/e4546f5b6888_16_mask.gif
00091534845e45570749ca8922d285ccb403ccad3b1b8f89a9641e929a0b4349  truth/test_masks.csv
"""

_SHA256_DEFAULT = """\
cb5b327b99068e0b4f53b88fdf31ed79d5d35f4b155d39c3735a88ccfa5f7f31  kaggle/metadata.csv
6d98ae4dd300161958f4f406f67ad11a5fa3c09f8ba6998f4e9207766517b56c  kaggle/sample_submission.csv
94381f0d69064676f71fe064b772dcefbf0d9cbd760b056c254c8b1ae86891c0  kaggle/test/cd747fb838e9_01.jpg
c8813cdac55c95c8c225725f3cc4208efa9295c03e30bc3386deb421bce8c45b  kaggle/test/cd747fb838e9_02.jpg
f5fe3f9238fdd31ed97bc844b0249c7a1ccc6909df9fa8cd58f2ecc38e07aaf6  kaggle/test/cd747fb838e9_03.jpg
5178628ee06def71d73e59914d5a44a6caeb1b691b344cd02f74342246c0968e  kaggle/test/cd747fb838e9_04.jpg
50b6c8c38f05adebd48c5038d320ed826de79c30ba8b48404d04dae963c7d5a5  kaggle/test/cd747fb838e9_05.jpg
2405fa7aa1fdd5ad89fa0aad9d4e323ea7665644f3e79fcc0975fcf074412241  kaggle/test/cd747fb838e9_06.jpg
b73d5585b45b2efee25f41509a502dbccf237768fc515a0b1fc64a013d4716d7  kaggle/test/cd747fb838e9_07.jpg
ad1dfb094adb84c22c70220be2c23cbff719c8fbc71d0e9a3430ea7972d47452  kaggle/test/cd747fb838e9_08.jpg
1cd9a3acc42548f0174a8fdba106ca6bf30bad189736ff5757434a9915df07f0  kaggle/test/cd747fb838e9_09.jpg
ad8d28bb505f0edd71e57a2db9f1f6f10aaf6d8e4cf5660e443ecbfbd1de7fd2  kaggle/test/cd747fb838e9_10.jpg
9022aeb99f64145287b0ae61073423e9912fba59bbeaf977ed2a5748c89c2989  kaggle/test/cd747fb838e9_11.jpg
fd95c83c9ab1ce45ad99cff105a46ee1d2bb9d1da942e2be0bc27cc86b89d2ae  kaggle/test/cd747fb838e9_12.jpg
8af0ac6a86032bfcad6f0e989224d88524959100afb8d9b393d04998cf9dc2f6  kaggle/test/cd747fb838e9_13.jpg
bcf0b2422975aba8187dfeafd2aa64edd5473ad5472b5b76fe87d2853d949e2e  kaggle/test/cd747fb838e9_14.jpg
3c505786f114bf360a10db2950076353bd4a917489e783b82dd5ec4edadd4663  kaggle/test/cd747fb838e9_15.jpg
a967e978c622d53a3f08982083b67168a4ff8f72e8ab3130d620b00eeb03111c  kaggle/test/cd747fb838e9_16.jpg
0f62b0f73a32ca79999aeee73ad46dd0dcc886dc3eb6d3e27768f934071b8d5a  kaggle/train/6732c5bd3868_01.jpg
99707e0764ecd5eef7bdf3ce2b7b429d5c6a69c08791fc4e7f9a6c5c59eee3b1  kaggle/train/6732c5bd3868_02.jpg
6ed858d059984362d938a86055e4a924d67dbe15928993934520f6ea0c2465d7  kaggle/train/6732c5bd3868_03.jpg
0a678761bfc5d1083c6632456e48a305cd680043469c916616a44ac1c9d3391b  kaggle/train/6732c5bd3868_04.jpg
a825af78cb9a55a179aa051483cefede4ba7c1c3ea949b3f2e201a3a14da9c1a  kaggle/train/6732c5bd3868_05.jpg
e4a70bb8b1237abb20de1da30a25efe26f8ed90ebf73b12392802d7ed93e8eb0  kaggle/train/6732c5bd3868_06.jpg
18e06a2beaa0629a3546b03e485775b4aaf8a281a0e64b1cc4929fabaf93b9ef  kaggle/train/6732c5bd3868_07.jpg
6796d626482bdc7b7ba599149ec944d539750f0d0abcf92008e1e365a26f0778  kaggle/train/6732c5bd3868_08.jpg
a9319025fb80b425ab4c17438b957599d3cf654b171f7ad4db3f078d32d7312e  kaggle/train/6732c5bd3868_09.jpg
cc6e85aefeb85d78e359397b11fa557a7ab7fcc6a0f1508567f21bb9968ccfb3  kaggle/train/6732c5bd3868_10.jpg
7f1f98dd3d0c07eea75ada074feab3184a20b47169957b7c7d7bcf1b3e35577f  kaggle/train/6732c5bd3868_11.jpg
d6a9439246e5f0f5e35b8d6e506231d64477f5c410b74d704a0decc97f5d503b  kaggle/train/6732c5bd3868_12.jpg
e61fe703512e9af700d03d75ef64207263c877b835ff053ffde608dcf1452faa  kaggle/train/6732c5bd3868_13.jpg
bcb385f90b2d345dcb30815a80847ffc047365183dcd054bc80f4f3cc9159a75  kaggle/train/6732c5bd3868_14.jpg
31eb324a68cb5835be350c6b75420e627a618bf2567e755f3c1ca4ffccd06e61  kaggle/train/6732c5bd3868_15.jpg
0a3b6537a62eeddb49716da54ce384e76765eefdd00061b0d901b4754e4d539f  kaggle/train/6732c5bd3868_16.jpg
e5d0bdf454736e27dc92a4b1900ba916fea5d04d607240bd4a78a0dd56140281  kaggle/train_masks.csv
4087f899e333e04951271fdb796832bc7928612b152d75edd3860aaad2994c4f  kaggle/train_masks/6732c5bd3868_01_mask.gif
f460fd2790e70f19a722bdb23737add362ecb0e156cb8ccbffae5e51d764dd01  kaggle/train_masks/6732c5bd3868_02_mask.gif
7a54e362664141b12bcc8a24bcc9581a07daedbc4cd3ceb84703cbddd985de28  kaggle/train_masks/6732c5bd3868_03_mask.gif
599b7ac3ce16de8bcb3e477a7fcd5d82ba0b3c052b1cc326263b6ebe9bf7528a  kaggle/train_masks/6732c5bd3868_04_mask.gif
979c9fbf0e7df6cfc4032712e31da7d4a1aca28ae91bb892baa3262ab75ad4ac  kaggle/train_masks/6732c5bd3868_05_mask.gif
94c85372a5dd5ed9d1cab4b88ea022feeb65ccc1ee76727ab1d18ce4244376f7  kaggle/train_masks/6732c5bd3868_06_mask.gif
5b1b2e74cbf3aa6126adb8a3818fff1274651566035f303388d3d329bee35df3  kaggle/train_masks/6732c5bd3868_07_mask.gif
7087f078a629e69f4c74da131c53902045e0844ce8e7b54ad6c8f20edd6dcaad  kaggle/train_masks/6732c5bd3868_08_mask.gif
b4db107a92b080f8e5a9b58becba774f4ae85b281dab2a806b79da70ad49ee8e  kaggle/train_masks/6732c5bd3868_09_mask.gif
7c385dfd85aa3a189bd47ff1d70803c2a47866b044ba6804e14b33a093038644  kaggle/train_masks/6732c5bd3868_10_mask.gif
34e73f5c7b2d0fede1ab7d3b66e7ece35ec0ddf8ef089912aa55c39519f9ab30  kaggle/train_masks/6732c5bd3868_11_mask.gif
85fb55c35a0dc6cb36874615624532d4311b592507ea3e2ae47849bee8de4a0f  kaggle/train_masks/6732c5bd3868_12_mask.gif
b00723924f71bad5d0cd74e23d65d0425a3c4a9704b00feb1a4e1d79e31a4e46  kaggle/train_masks/6732c5bd3868_13_mask.gif
43a09949f7d20aca068425e14b1601679d4714799d84b91764a2e5a42032a074  kaggle/train_masks/6732c5bd3868_14_mask.gif
097dffb6adcb1a07bdb01a50af3d6d11486f9f09073310a8276d2c2f123da3c7  kaggle/train_masks/6732c5bd3868_15_mask.gif
e26e70b6886d08a1fc9c10bffe9c7e2bdf171a7ac21996f526cdc696a7962f77  kaggle/train_masks/6732c5bd3868_16_mask.gif
d3c04f2521a3d8b7ef1ca2ac29e96298afdbd3bfb2190f7959b6dd22bb9e8b30  truth/test_masks.csv
"""

GOLDEN = {
    "192x128": (
        SyntheticConfig(seed=5, train_cars=2, test_cars=1, width=192, height=128),
        _SHA256_SMALL,
    ),
    "480x320": (SyntheticConfig(seed=5, train_cars=1, test_cars=1), _SHA256_DEFAULT),
}


def sha256_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by path relative to it."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_output_byte_identical(name: str, tmp_path: Path) -> None:
    """The same seed writes the same bytes as before the package split."""
    cfg, listing = GOLDEN[name]
    expected = {path: digest for digest, path in (line.split() for line in listing.splitlines())}
    generate(tmp_path / "kaggle", tmp_path / "truth", cfg, progress=False)
    got = sha256_tree(tmp_path)
    changed = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    assert not changed, f"{len(changed)} of {len(expected)} files changed, e.g. {changed[:4]}"


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
