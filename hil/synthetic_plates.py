"""Synthetic UK number plates on vehicle-like shapes in real scenes, with ground truth.

SYNTHETIC: the plates are rendered here, not photographed. The UK plate font (Charles
Wright) is not available, so the characters come from OpenCV's built-in sans-serif font,
condensed to the plate's character cell; the layout follows the DVLA dimensions
(520 × 111 mm plate, 79 mm characters 50 mm wide, 11 mm apart, 33 mm between groups) on
a yellow (rear) or white (front) background. Each plate sits on a drawn vehicle (body,
windows, lights, wheels) pasted into a real street or object scene from
``../shared/data/scenes/no_faces``, with a perspective tilt, blur, noise, lighting and
JPEG compression. Figures measured on this set say how the pipeline copes with these
renderings; they are not a measure of accuracy on real plates.

Two uses:

* ``generate_plate_set(OUT, count=…)``: a labelled still set for ``lfr-agent eval plates``:
  ``NNNN.jpg`` with ``NNNN.txt`` holding the plate as written (one line), plus some images
  with no vehicle (empty ``.txt``).
* ``add_vehicles(scene_dir, vehicles)``: vehicles driving across the frames of a scene
  made by ``hil.synthetic_scene`` (the demo and the system tests), ground truth in
  ``plates.json``.

Everything is deterministic from the seed. Command line::

    python -m hil.synthetic_plates OUT_DIR [--count 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

PLATES_TRUTH = "plates.json"
#: The DVLA plate in millimetres.
PLATE_W_MM, PLATE_H_MM = 520.0, 111.0
CHAR_W_MM, CHAR_H_MM, CHAR_GAP_MM, GROUP_GAP_MM = 50.0, 79.0, 11.0, 33.0
YELLOW_BGR = (0, 204, 255)
WHITE_BGR = (240, 240, 240)
INK_BGR = (20, 20, 20)
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)

_AREA = "ABCDEFGHJKLMNOPRSTUVWXY"  # current format, first letter: no I, Q, Z
_LETTER = "ABCDEFGHJKLMNOPRSTUVWXYZ"  # no I, Q
_AGE = "ABCDEFGHJKLMNPRSTVWXY"  # prefix/suffix year letter: no I, O, Q, U, Z


def random_plate(rng: random.Random, layout: str | None = None) -> str:
    """A plate as written (with its space), in ``layout`` or a seeded one (mostly current)."""
    if layout is None:
        layout = rng.choices(("current", "prefix", "suffix", "dateless"), (80, 10, 5, 5))[0]
    if layout == "current":
        age = rng.choice([f"{y:02d}" for y in range(2, 26)] + [f"{y:02d}" for y in range(51, 76)])
        return (
            rng.choice(_AREA)
            + rng.choice(_LETTER)
            + age
            + " "
            + "".join(rng.choice(_LETTER) for _ in range(3))
        )
    number = str(rng.randint(1, 999))
    if layout == "prefix":
        return f"{rng.choice(_AGE)}{number} {''.join(rng.choice(_LETTER) for _ in range(3))}"
    if layout == "suffix":
        return f"{''.join(rng.choice(_LETTER) for _ in range(3))} {number}{rng.choice(_AGE)}"
    letters = "".join(rng.choice(_LETTER) for _ in range(rng.randint(1, 3)))
    digits = str(rng.randint(1, 9999 if len(letters) < 3 else 999))
    return f"{letters} {digits}" if rng.random() < 0.6 else f"{digits} {letters}"


def render_plate(text: str, *, yellow: bool, px_per_mm: float = 2.0, font: int = 0) -> Image:
    """The plate as a flat image (``px_per_mm`` pixels per millimetre), characters laid
    out in DVLA cells with the group gap at the space."""
    w, h = round(PLATE_W_MM * px_per_mm), round(PLATE_H_MM * px_per_mm)
    plate = np.full((h, w, 3), YELLOW_BGR if yellow else WHITE_BGR, np.uint8)
    groups = text.split()
    chars = sum(len(g) for g in groups)
    width_mm = chars * CHAR_W_MM + (chars - len(groups)) * CHAR_GAP_MM
    width_mm += (len(groups) - 1) * GROUP_GAP_MM
    x = (PLATE_W_MM - width_mm) / 2.0
    cw, ch = round(CHAR_W_MM * px_per_mm), round(CHAR_H_MM * px_per_mm)
    top = round((PLATE_H_MM - CHAR_H_MM) / 2.0 * px_per_mm)
    face = _FONTS[font % len(_FONTS)]
    for gi, group in enumerate(groups):
        for ci, c in enumerate(group):
            glyph = _glyph(c, face, cw, ch)
            left = round(x * px_per_mm)
            region = plate[top : top + ch, left : left + cw]
            region[glyph > 0] = (
                region[glyph > 0] * (1 - glyph[glyph > 0, None] / 255.0)
                + np.array(INK_BGR) * (glyph[glyph > 0, None] / 255.0)
            ).astype(np.uint8)
            x += CHAR_W_MM + (CHAR_GAP_MM if ci < len(group) - 1 else 0)
        if gi < len(groups) - 1:
            x += GROUP_GAP_MM
    return plate


def _glyph(c: str, face: int, w: int, h: int) -> npt.NDArray[np.uint8]:
    """One character as a coverage mask filling a ``w`` × ``h`` cell (condensed)."""
    scale = 4.0
    thickness = 12
    (tw, th), base = cv2.getTextSize(c, face, scale, thickness)
    canvas = np.zeros((th + base + 2 * thickness, tw + 2 * thickness), np.uint8)
    cv2.putText(canvas, c, (thickness, th + thickness), face, scale, 255, thickness, cv2.LINE_AA)
    ys, xs = np.nonzero(canvas)
    canvas = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    cell = np.zeros((h, w), np.uint8)
    gh, gw = canvas.shape
    # Narrow characters (1, I) keep their width; the rest fill the cell like the DVLA font.
    new_w = w if gw / gh > 0.35 else max(1, round(gw * h / gh))
    glyph = cv2.resize(canvas, (new_w, h), interpolation=cv2.INTER_AREA)
    cell[:, (w - new_w) // 2 : (w - new_w) // 2 + new_w] = glyph
    return cell


@dataclass(frozen=True)
class PlacedPlate:
    text: str
    quad: list[list[float]]  # the plate's corners in the frame, clockwise from top-left


def _body_colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.choice(
        [(40, 40, 40), (200, 200, 200), (30, 30, 140), (120, 60, 20), (90, 90, 90), (20, 90, 40)]
    )


def draw_vehicle(
    frame: Image,
    *,
    cx: float,
    bottom: float,
    width: float,
    plate_text: str,
    rear: bool,
    rng: random.Random,
    font: int = 0,
    tilt: float = 0.0,
    blur: float = 0.0,
) -> PlacedPlate:
    """Draw a vehicle seen from behind (``rear``: yellow plate, red lights) or the front
    (white plate, white lights), its plate carrying ``plate_text``; returns where the
    plate is. ``tilt`` (−1…1) skews the plate in perspective; ``blur`` is a Gaussian sigma
    in plate pixels."""
    h_img, w_img = frame.shape[:2]
    height = width * 0.75
    x0, x1 = cx - width / 2, cx + width / 2
    y1 = bottom
    y0 = bottom - height
    body = _body_colour(rng)
    shade = tuple(max(0, c - 35) for c in body)
    # wheels, body, roof and window
    for wx in (x0 + width * 0.17, x1 - width * 0.17):
        cv2.ellipse(
            frame,
            (int(wx), int(y1 - height * 0.02)),
            (int(width * 0.1), int(height * 0.09)),
            0,
            0,
            360,
            (15, 15, 15),
            -1,
        )
    cv2.rectangle(
        frame, (int(x0), int(y0 + height * 0.35)), (int(x1), int(y1 - height * 0.08)), body, -1
    )
    roof = np.array(
        [
            [x0 + width * 0.12, y0 + height * 0.36],
            [x0 + width * 0.22, y0],
            [x1 - width * 0.22, y0],
            [x1 - width * 0.12, y0 + height * 0.36],
        ],
        np.int32,
    )
    cv2.fillPoly(frame, [roof], shade)
    window = np.array(
        [
            [x0 + width * 0.18, y0 + height * 0.33],
            [x0 + width * 0.25, y0 + height * 0.05],
            [x1 - width * 0.25, y0 + height * 0.05],
            [x1 - width * 0.18, y0 + height * 0.33],
        ],
        np.int32,
    )
    cv2.fillPoly(frame, [window], (60, 50, 40) if rear else (90, 80, 70))
    light = (30, 30, 200) if rear else (235, 235, 235)
    for lx in (x0 + width * 0.04, x1 - width * 0.16):
        cv2.rectangle(
            frame,
            (int(lx), int(y0 + height * 0.42)),
            (int(lx + width * 0.12), int(y0 + height * 0.52)),
            light,
            -1,
        )
    cv2.rectangle(
        frame,
        (int(x0), int(y1 - height * 0.22)),
        (int(x1), int(y1 - height * 0.1)),
        (25, 25, 25),
        -1,
    )
    # the plate, in perspective
    pw = width * 0.42
    ph = pw * PLATE_H_MM / PLATE_W_MM
    pcx, pcy = cx, y0 + height * 0.64
    flat = render_plate(
        plate_text, yellow=rear, px_per_mm=max(1.0, pw / PLATE_W_MM * 1.5), font=font
    )
    fh, fw = flat.shape[:2]
    skew = tilt * ph * 0.35
    dst = np.array(
        [
            [pcx - pw / 2, pcy - ph / 2 + skew],
            [pcx + pw / 2, pcy - ph / 2 - skew],
            [pcx + pw / 2, pcy + ph / 2 - skew * 0.6],
            [pcx - pw / 2, pcy + ph / 2 + skew * 0.6],
        ],
        np.float32,
    )
    src = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(flat, m, (w_img, h_img), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((fh, fw), 255, np.uint8), m, (w_img, h_img))
    if blur > 0:
        warped = cv2.GaussianBlur(warped, (0, 0), blur)
        mask = cv2.GaussianBlur(mask, (0, 0), blur)
    a = (mask.astype(np.float32) / 255.0)[..., None]
    frame[:] = (frame * (1 - a) + warped * a).astype(np.uint8)
    return PlacedPlate(plate_text, dst.tolist())


def _backgrounds(root: Path) -> list[Path]:
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        raise FileNotFoundError(f"no scene images in {root}")
    return paths


def _background(path: Path, w: int, h: int) -> Image:
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"cannot read {path}")
    scale = max(w / img.shape[1], h / img.shape[0])
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    y = (img.shape[0] - h) // 2
    x = (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def _degrade(frame: Image, rng: random.Random, nprng: np.random.Generator) -> Image:
    gain = rng.uniform(0.65, 1.15)
    noise = nprng.normal(0.0, rng.uniform(1.5, 6.0), frame.shape)
    out = np.clip(frame.astype(np.float32) * gain + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # horizontal motion blur
        k = rng.choice((3, 5))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        out = np.asarray(cv2.filter2D(out, -1, kernel), np.uint8)
    return out


def default_scenes_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes" / "no_faces"


def generate_plate_set(
    out: Path,
    *,
    count: int = 200,
    seed: int = 0,
    negatives: int = 20,
    scenes_dir: Path | None = None,
    width: int = 1280,
    height: int = 720,
) -> list[str]:
    """Write ``count`` labelled images (one vehicle each) and ``negatives`` without a
    vehicle into ``out``; returns the plates in order."""
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    backgrounds = _backgrounds(scenes_dir or default_scenes_dir())
    out.mkdir(parents=True, exist_ok=True)
    plates: list[str] = []
    seen: set[str] = set()
    for i in range(count + negatives):
        frame = _background(rng.choice(backgrounds), width, height)
        text = ""
        if i < count:
            text = random_plate(rng)
            while text.replace(" ", "") in seen:
                text = random_plate(rng)
            seen.add(text.replace(" ", ""))
            vw = rng.uniform(180.0, 560.0)
            draw_vehicle(
                frame,
                cx=rng.uniform(vw / 2 + 10, width - vw / 2 - 10),
                bottom=rng.uniform(height * 0.75, height - 5),
                width=vw,
                plate_text=text,
                rear=rng.random() < 0.6,
                rng=rng,
                font=rng.randrange(len(_FONTS)),
                tilt=rng.uniform(-0.8, 0.8),
                blur=rng.uniform(0.0, 1.8),
            )
            plates.append(text)
        frame = _degrade(frame, rng, nprng)
        name = f"{i:04d}"
        cv2.imwrite(
            str(out / f"{name}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(75, 95)]
        )
        (out / f"{name}.txt").write_text(text + "\n" if text else "")
    (out / "README.txt").write_text(
        "SYNTHETIC number plates (hil/synthetic_plates.py): OpenCV's font on DVLA-sized\n"
        "yellow/white plates, drawn vehicles, real background scenes. Each NNNN.txt holds the\n"
        "plate of NNNN.jpg as written, or nothing for an image with no vehicle.\n"
    )
    return plates


@dataclass(frozen=True)
class VehicleSpec:
    """A vehicle driving across a scene: its plate, when it enters and how it moves."""

    plate: str
    enter_s: float = 0.5
    seconds: float = 3.0  # time to cross the frame
    rear: bool = True
    lane_y: float = 0.92  # bottom of the vehicle, as a share of the frame height
    width_px: float = 420.0
    left_to_right: bool = True


def add_vehicles(
    scene_dir: Path, vehicles: Sequence[VehicleSpec], *, fps: float, seed: int = 0
) -> dict[str, list[int]]:
    """Draw ``vehicles`` over the frames of a scene folder (``000001.jpg`` …) and write
    ``plates.json``: for each plate, the frames in which all of it is in view."""
    frames = sorted(scene_dir.glob("[0-9]*.jpg"))
    if not frames:
        raise FileNotFoundError(f"no frames in {scene_dir}")
    truth: dict[str, list[int]] = {v.plate: [] for v in vehicles}
    for n, path in enumerate(frames, start=1):
        read = cv2.imread(str(path))
        if read is None:
            raise FileNotFoundError(f"cannot read {path}")
        img = np.asarray(read, np.uint8)
        h, w = img.shape[:2]
        t = (n - 1) / fps
        drawn = False
        for k, v in enumerate(vehicles):
            u = (t - v.enter_s) / v.seconds
            if not 0.0 <= u <= 1.0:
                continue
            span = w + v.width_px
            x = -v.width_px / 2 + u * span
            cx = x if v.left_to_right else w - x
            placed = draw_vehicle(
                img,
                cx=cx,
                bottom=v.lane_y * h,
                width=v.width_px,
                plate_text=v.plate,
                rear=v.rear,
                rng=random.Random(seed * 1000 + k),
                tilt=0.2 * math.sin(u * math.pi),
            )
            xs = [p[0] for p in placed.quad]
            if min(xs) >= 0 and max(xs) <= w:
                truth[v.plate].append(n)
            drawn = True
        if drawn:
            cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    (scene_dir / PLATES_TRUTH).write_text(
        json.dumps(
            {"synthetic": True, "vehicles": [asdict(v) for v in vehicles], "in_view": truth},
            indent=1,
        )
        + "\n"
    )
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--negatives", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenes", type=Path, default=None, help="background scenes folder")
    args = ap.parse_args(argv)
    if args.count < 1 or args.negatives < 0:
        print("synthetic_plates: --count must be ≥ 1 and --negatives ≥ 0", file=sys.stderr)
        return 2
    plates = generate_plate_set(
        args.out,
        count=args.count,
        seed=args.seed,
        negatives=args.negatives,
        scenes_dir=args.scenes,
    )
    print(f"{len(plates)} synthetic plates and {args.negatives} empty scenes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
