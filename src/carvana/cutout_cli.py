"""``carvana-cutout``: cut the car out of photos with a trained chain, from the shell.

    carvana-cutout "IMG 2031 (1).jpg" -o out/          # out/IMG 2031 (1).png and ..._mask.png
    carvana-cutout photos/ -o out/ --models bundle/     # a folder, with an exported bundle
    cat car.jpg | carvana-cutout - > car.png            # stdin to stdout

Files and folders (their JPEG and PNG photos, not recursive) are read in the order given. Any
file name works; each output keeps the photo's stem. Two photos that would write one output
file stop the run before anything is written. A photo that cannot be read is named on stderr,
the others are still written, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from carvana.backends import BACKENDS, PRECISIONS
from carvana.io import DataError, atomic_path
from carvana.photos import PHOTO_SUFFIXES, decode_photo, output_stems, read_photo
from carvana.segmenter import Segmenter

log = logging.getLogger("carvana-cutout")
EXIT_PARTIAL, EXIT_USAGE = 1, 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="carvana-cutout", description="Cut the car out of photos with a trained chain.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="photos or folders of photos (JPEG, PNG); '-' reads stdin and "
                             "writes the PNG to stdout")
    parser.add_argument("-o", "--out", type=Path, help="output folder (required for files)")
    parser.add_argument("--models", default="results",
                        help="a workflow's results folder or an exported bundle (default: results)")
    parser.add_argument("--source", help="the model or 'ensemble' to run (default: the chain's)")
    parser.add_argument("--backend", choices=BACKENDS, help="default: the chain's")
    parser.add_argument("--precision", choices=PRECISIONS, help="default: the chain's")
    parser.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    parser.add_argument("--mask-only", action="store_true", help="write only <stem>_mask.png")
    parser.add_argument("--bg", type=_colour, metavar="R,G,B",
                        help="put the car on this colour (an RGB PNG) instead of transparency")
    return parser.parse_args(argv)


def _colour(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give three numbers 0-255, e.g. 255,255,255")
    return values  # type: ignore[return-value]


def expand(paths: Sequence[str]) -> list[Path]:
    """Files as given, folders as their JPEG/PNG photos (sorted, hidden files skipped)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            photos = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in PHOTO_SUFFIXES)
            if not photos:
                raise DataError(f"{path}: no JPEG or PNG photos in this folder")
            found.extend(photos)
        else:
            found.append(path)
    return found


def render(segmenter: Segmenter, photo: np.ndarray, *, mask_only: bool,
           bg: tuple[int, int, int] | None) -> dict[str, Image.Image]:
    """The output images of one photo: ``""`` (the cut-out) and ``"_mask"`` by suffix."""
    mask = segmenter.mask(photo)
    out = {"_mask": Image.fromarray(mask, "L")}
    if mask_only:
        return out
    if bg is None:
        out[""] = Image.fromarray(np.dstack([photo, mask]), "RGBA")
    else:
        alpha = (mask[..., None] > 0)
        out[""] = Image.fromarray(np.where(alpha, photo, np.uint8(bg)).astype(np.uint8), "RGB")
    return out


def _save(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=4)


def cut_files(segmenter: Segmenter, stems: dict[str, str], args: argparse.Namespace) -> int:
    """Cut out every photo into ``args.out``; returns the number that could not be read."""
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    bar = tqdm(stems.items(), desc="cut-outs", unit="photo", disable=len(stems) < 2,
               file=sys.stderr)
    for stem, path in bar:
        try:
            photo = read_photo(path)
        except DataError as err:
            print(f"carvana-cutout: {err}", file=sys.stderr)
            failed += 1
            continue
        for suffix, image in render(segmenter, photo, mask_only=args.mask_only,
                                    bg=args.bg).items():
            _save(image, args.out / f"{stem}{suffix}.png")
    return failed


def cut_stdin(segmenter: Segmenter, args: argparse.Namespace) -> None:
    """One photo from stdin, its cut-out (or mask with --mask-only) as PNG on stdout."""
    photo = decode_photo(sys.stdin.buffer.read(), name="<stdin>", max_pixels=None)
    images = render(segmenter, photo, mask_only=args.mask_only, bg=args.bg)
    buffer = io.BytesIO()
    images["_mask" if args.mask_only else ""].save(buffer, format="PNG", compress_level=4)
    sys.stdout.buffer.write(buffer.getvalue())
    sys.stdout.buffer.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 when every photo was cut out, 1 when some could not be read,
    2 for a usage error (nothing written)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="carvana-cutout: %(message)s")
    stdin = args.paths == ["-"]
    try:
        if "-" in args.paths and not stdin:
            raise DataError("'-' (stdin) cannot be mixed with files")
        if not stdin and args.out is None:
            raise DataError("give an output folder: -o OUT")
        stems = {} if stdin else output_stems(expand(args.paths))
        segmenter = Segmenter.load(args.models, args.source, backend=args.backend,
                                   precision=args.precision, threads=args.threads)
        if stdin:
            cut_stdin(segmenter, args)
            return 0
    except (DataError, ValueError, ImportError, RuntimeError) as err:
        print(f"carvana-cutout: {err}", file=sys.stderr)
        return EXIT_USAGE
    failed = cut_files(segmenter, stems, args)
    if failed:
        print(f"carvana-cutout: {failed} of {len(stems)} photos could not be read (named above); "
              f"the other {len(stems) - failed} are in {args.out}", file=sys.stderr)
        return EXIT_PARTIAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
