"""A Kaggle-layout folder built from real train photos: some cars moved to ``test/``, their
masks kept aside as truth, so a run on real photos ends with its own score.

    carvana-subset ../shared/carvana-sample /tmp/carvana-real --test-cars 2 [--width 480]

writes ``OUT/kaggle/`` (train/, train_masks/, test/, sample_submission.csv, train_masks.csv)
and ``OUT/truth/test_masks.csv`` (``img,rle_mask`` of the test cars). Cars are split whole,
never by image: the 16 views of one car are near-duplicates.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from carvana import rle
from carvana.ids import car_of, id_from_filename
from carvana.io import DataError, read_image, read_mask, write_frame, write_jpeg, write_mask_gif


@dataclass(frozen=True)
class SubsetSpec:
    """Which cars go where, and at what size (``width`` None keeps the photos' own size);
    ``views`` of each car's photos, spread evenly over its angles (None: all of them)."""

    test_cars: int = 2
    train_cars: int | None = None  # None: every car not in test
    width: int | None = None
    jpeg_quality: int = 95
    views: int | None = None
    test: tuple[str, ...] = ()  # these cars to test (else the last ``test_cars`` in id order)


def _cars(source: Path) -> dict[str, list[str]]:
    """car -> its image ids, from ``source/train/*.jpg``, sorted."""
    ids = sorted(id_from_filename(p.name, ".jpg") for p in (source / "train").glob("*.jpg"))
    if not ids:
        raise DataError(f"{source}/train: no .jpg photos: not a Kaggle train folder")
    cars: dict[str, list[str]] = {}
    for image_id in ids:
        cars.setdefault(car_of(image_id), []).append(image_id)
    return cars


def spread(ids: list[str], views: int | None) -> list[str]:
    """``views`` of a car's ids, evenly spaced in order (2 of 16: ``_01`` and ``_09``, the
    front and the rear); all of them for None or more views than there are."""
    if views is None or views >= len(ids):
        return list(ids)
    if views < 1:
        raise ValueError(f"views must be at least 1, got {views}")
    return [ids[k * len(ids) // views] for k in range(views)]


def _resized(image: np.ndarray, mask: np.ndarray, width: int | None
             ) -> tuple[np.ndarray, np.ndarray]:
    if width is None or width == image.shape[1]:
        return image, mask
    height = round(image.shape[0] * width / image.shape[1])
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    mask = (cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
            >= 0.5).astype(np.uint8)
    return image, mask


def make_subset(source: str | Path, out: str | Path, spec: SubsetSpec) -> dict[str, list[str]]:
    """Write the Kaggle folder and the truth CSV; return {'train': cars, 'test': cars}.

    The test cars are ``spec.test`` when given, else the last ``spec.test_cars`` in id order.
    """
    source, out = Path(source), Path(out)
    cars = _cars(source)
    names = sorted(cars)
    unknown = sorted(set(spec.test) - set(names))
    if unknown:
        raise ValueError(f"test cars {unknown} are not in {source} (its cars: {names})")
    if spec.test:
        names = [n for n in names if n not in spec.test] + list(spec.test)
    count = len(spec.test) or spec.test_cars
    if count < 1 or count >= len(names):
        raise ValueError(f"test_cars must be 1..{len(names) - 1} for the {len(names)} cars "
                         f"in {source}")
    if spec.train_cars is not None and not 1 <= spec.train_cars <= len(names) - count:
        raise ValueError(f"train_cars must be 1..{len(names) - count}: {source} has "
                         f"{len(names) - count} cars besides the {count} to test")
    test = names[-count:]
    train = names[:-count][: spec.train_cars]
    kaggle = out / "kaggle"
    for sub in ("train", "train_masks", "test"):
        (kaggle / sub).mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for split, chosen in (("train", train), ("test", test)):
        for image_id in (i for car in chosen for i in spread(cars[car], spec.views)):
            image = read_image(source / "train" / f"{image_id}.jpg")
            mask = read_mask(source / "train_masks" / f"{image_id}_mask.gif")
            image, mask = _resized(image, mask, spec.width)
            write_jpeg(kaggle / split / f"{image_id}.jpg", image, quality=spec.jpeg_quality)
            if split == "train":
                write_mask_gif(kaggle / "train_masks" / f"{image_id}_mask.gif", mask)
            rows[split].append((f"{image_id}.jpg", rle.encode(mask)))
    write_frame(pd.DataFrame(rows["train"], columns=["img", "rle_mask"]),
                kaggle / "train_masks.csv")
    sample = pd.DataFrame({"img": [img for img, _ in rows["test"]], "rle_mask": "1 1"})
    write_frame(sample, kaggle / "sample_submission.csv")
    (out / "truth").mkdir(parents=True, exist_ok=True)
    write_frame(pd.DataFrame(rows["test"], columns=["img", "rle_mask"]),
                out / "truth" / "test_masks.csv")
    return {"train": train, "test": test}


def main(argv: list[str] | None = None) -> None:
    """Command line: carvana-subset SOURCE OUT [--test-cars N] [--train-cars N] [--width W]
    [--views V]."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a Kaggle-layout folder with train/ and train_masks/")
    parser.add_argument("out", help="where to write kaggle/ and truth/")
    parser.add_argument("--test-cars", type=int, default=2)
    parser.add_argument("--test-car", action="append", default=[], metavar="CAR",
                        help="this car to test (repeat for more; overrides --test-cars)")
    parser.add_argument("--train-cars", type=int, default=None)
    parser.add_argument("--width", type=int, default=None, help="resize to this width")
    parser.add_argument("--views", type=int, default=None,
                        help="this many photos of each car, spread over its angles")
    args = parser.parse_args(argv)
    split = make_subset(args.source, args.out, SubsetSpec(
        test_cars=args.test_cars, train_cars=args.train_cars, width=args.width,
        views=args.views, test=tuple(args.test_car)))
    print(f"train cars {', '.join(split['train'])}; test cars {', '.join(split['test'])}; "
          f"data_dir={Path(args.out) / 'kaggle'} truth={Path(args.out) / 'truth/test_masks.csv'}")


if __name__ == "__main__":
    main()
