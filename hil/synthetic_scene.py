"""Synthetic street scenes: face photos walking across a background, with ground truth.

A scene is a folder of JPEG frames (``000001.jpg`` ...), which
``agent.camera.replay_source.ReplaySource`` plays back like a camera, plus
``truth.json`` saying, for every frame, which identity is where (box and five
landmarks), whether that face is fully visible, occluded or cut by the frame
edge, and for every identity the first frame in which it is fully visible.

People walk across the frame in lanes, grow as they approach the camera, pass
behind a street pole (partial occlusion) and in front of or behind each other.
Each face photo is located once with the pinned face detector (the same model
file the agent runs) so the ground-truth box is the face itself, then blended
into the scene through a feathered ellipse. Everything is deterministic from
``SceneSpec.seed``.

Command line::

    python -m hil.synthetic_scene OUT_DIR --models-dir DIR [--people 4] [--seconds 6] ...
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import LfrError, UsageError

TRUTH_NAME = "truth.json"
TRUTH_FORMAT = 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

# A face counts as occluded once this share of its box is covered (edges of the
# feathered masks make tiny overlaps meaningless).
OCCLUDED_MIN_FRACTION = 0.02

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneSpec:
    """What to generate. ``identities`` empty means: pick ``people`` at random."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0
    seconds: float = 6.0
    people: int = 4
    identities: tuple[str, ...] = ()
    exclude_photos: tuple[str, ...] = ()  # "<identity>/<file>" never pasted (e.g. enrolment shots)
    background: str = ""  # file name inside backgrounds_root; empty = seeded choice
    occluder: bool = True
    stagger_s: float = 0.6  # time between one person entering and the next
    min_face_px: float = 70.0  # face box width when a person enters
    max_face_px: float = 150.0  # upper bound of the face box width as they approach
    seed: int = 0
    jpeg_quality: int = 90

    @property
    def frame_count(self) -> int:
        return max(1, round(self.seconds * self.fps))

    def check(self) -> None:
        problems = []
        if not (64 <= self.width <= 4096 and 64 <= self.height <= 4096):
            problems.append(
                f"size must be within 64..4096 per side, got {self.width}x{self.height}"
            )
        if not 1 <= self.fps <= 120:
            problems.append(f"fps must be within 1..120, got {self.fps}")
        if not 0 < self.seconds <= 600:
            problems.append(f"seconds must be within (0, 600], got {self.seconds}")
        if len(set(self.identities)) != len(self.identities):
            problems.append("identities must not repeat")
        if not self.identities and not 1 <= self.people <= 32:
            problems.append(f"people must be within 1..32, got {self.people}")
        if not 16 <= self.min_face_px <= self.max_face_px:
            problems.append(
                f"face sizes must satisfy 16 <= min_face_px <= max_face_px, "
                f"got {self.min_face_px}..{self.max_face_px}"
            )
        if not 0 <= self.stagger_s <= 60:
            problems.append(f"stagger_s must be within 0..60, got {self.stagger_s}")
        if not 30 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality must be within 30..100, got {self.jpeg_quality}")
        if problems:
            raise UsageError("scene: " + "; ".join(problems))


@dataclass(frozen=True)
class FaceTruth:
    """One face in one frame. ``box`` is [x0, y0, x1, y1] in frame pixels (may leave the frame)."""

    identity: str
    photo: str
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    state: str  # "visible", "occluded" or "clipped" (partly outside the frame)
    visible_fraction: float

    @property
    def fully_visible(self) -> bool:
        return self.state == "visible"


@dataclass(frozen=True)
class FrameTruth:
    index: int  # 0-based position in the clip
    file: str
    faces: tuple[FaceTruth, ...]


@dataclass(frozen=True)
class IdentityTruth:
    identity: str
    photo: str
    first_frame: int | None  # first frame where the face is in the picture at all
    first_full_frame: int | None  # first frame where it is fully visible


@dataclass(frozen=True)
class SceneTruth:
    """Ground truth of a generated clip; ``frames_dir`` holds the JPEG frames."""

    frames_dir: Path
    spec: SceneSpec
    background: str
    occluders: tuple[tuple[float, float, float, float], ...]
    identities: dict[str, IdentityTruth]
    frames: tuple[FrameTruth, ...]

    @property
    def fps(self) -> float:
        return self.spec.fps

    def to_json(self) -> dict[str, Any]:
        spec = asdict(self.spec)
        spec["identities"] = list(self.spec.identities)
        spec["exclude_photos"] = list(self.spec.exclude_photos)
        return {
            "format": TRUTH_FORMAT,
            "spec": spec,
            "background": self.background,
            "size": [self.spec.width, self.spec.height],
            "fps": self.spec.fps,
            "frame_count": len(self.frames),
            "occluders": [list(o) for o in self.occluders],
            "identities": {
                k: {
                    "photo": v.photo,
                    "first_frame": v.first_frame,
                    "first_full_frame": v.first_full_frame,
                }
                for k, v in self.identities.items()
            },
            "frames": [
                {
                    "index": fr.index,
                    "file": fr.file,
                    "faces": [
                        {
                            "identity": f.identity,
                            "photo": f.photo,
                            "box": [round(v, 1) for v in f.box],
                            "landmarks": [[round(x, 1), round(y, 1)] for x, y in f.landmarks],
                            "state": f.state,
                            "visible_fraction": round(f.visible_fraction, 3),
                        }
                        for f in fr.faces
                    ],
                }
                for fr in self.frames
            ],
        }


def load_truth(scene_dir: Path) -> SceneTruth:
    """Read ``truth.json`` of a generated scene back."""
    path = Path(scene_dir) / TRUTH_NAME
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != TRUTH_FORMAT:
            raise UsageError(f"scene: {path}: unknown truth format {doc.get('format')!r}")
        s = dict(doc["spec"])
        s["identities"] = tuple(s["identities"])
        s["exclude_photos"] = tuple(s["exclude_photos"])
        spec = SceneSpec(**s)
        frames = tuple(
            FrameTruth(
                index=int(fr["index"]),
                file=str(fr["file"]),
                faces=tuple(
                    FaceTruth(
                        identity=str(f["identity"]),
                        photo=str(f["photo"]),
                        box=(f["box"][0], f["box"][1], f["box"][2], f["box"][3]),
                        landmarks=tuple((float(x), float(y)) for x, y in f["landmarks"]),
                        state=str(f["state"]),
                        visible_fraction=float(f["visible_fraction"]),
                    )
                    for f in fr["faces"]
                ),
            )
            for fr in doc["frames"]
        )
        identities = {
            k: IdentityTruth(k, str(v["photo"]), v["first_frame"], v["first_full_frame"])
            for k, v in doc["identities"].items()
        }
        occluders = tuple((o[0], o[1], o[2], o[3]) for o in doc["occluders"])
    except OSError as exc:
        raise UsageError(f"scene: {path}: cannot read ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UsageError(f"scene: {path}: malformed ground truth ({exc})") from exc
    return SceneTruth(path.parent, spec, str(doc["background"]), occluders, identities, frames)


# ---------------------------------------------------------------------------
# Face photos


@dataclass
class _FacePatch:
    """A square crop around the face of one photo, plus the face geometry inside it."""

    identity: str
    photo: str
    image: Image  # the crop (BGR)
    face_box: Box  # in crop pixels
    landmarks: npt.NDArray[np.float32]  # 5x2 in crop pixels


@dataclass
class _FaceLocator:
    """Finds the main face of a photo with the pinned detector (OpenCV's YuNet runner)."""

    model_path: Path
    _detector: Any = field(default=None, init=False)

    def locate(self, image: Image) -> tuple[Box, npt.NDArray[np.float32]] | None:
        h, w = image.shape[:2]
        scale = min(1.0, 640.0 / max(h, w))
        small = cv2.resize(
            image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
        sh, sw = small.shape[:2]
        if self._detector is None:
            self._detector = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (sw, sh), 0.6, 0.3, 50
            )
        self._detector.setInputSize((sw, sh))
        _, faces = self._detector.detect(small)
        if faces is None or len(faces) == 0:
            return None
        cx, cy = sw / 2, sh / 2

        # The portrait's subject: large, confident and near the centre.
        def rank(f: npt.NDArray[np.float32]) -> float:
            d = math.hypot(float(f[0] + f[2] / 2 - cx), float(f[1] + f[3] / 2 - cy)) / max(sw, sh)
            return float(float(f[2] * f[3]) / (sw * sh) + 0.2 * float(f[14]) - d)

        best = max(faces, key=rank) / scale
        box = (float(best[0]), float(best[1]), float(best[0] + best[2]), float(best[1] + best[3]))
        return box, best[4:14].reshape(5, 2).astype(np.float32)


def _list_photos(faces_root: Path) -> dict[str, list[str]]:
    if not faces_root.is_dir():
        raise UsageError(f"scene: faces folder {faces_root} does not exist")
    out: dict[str, list[str]] = {}
    for d in sorted(p for p in faces_root.iterdir() if p.is_dir()):
        files = sorted(p.name for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            out[d.name] = files
    if not out:
        raise UsageError(f"scene: {faces_root} holds no <identity>/<image> photos")
    return out


def _make_patch(
    faces_root: Path, identity: str, photo: str, locator: _FaceLocator
) -> _FacePatch | None:
    path = faces_root / identity / photo
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    found = locator.locate(image)  # type: ignore[arg-type]
    if found is None:
        return None
    (x0, y0, x1, y1), lms = found
    side = 2.0 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ox, oy = round(cx - side / 2), round(cy - side / 2)
    n = round(side)
    pad = n
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    crop = padded[oy + pad : oy + pad + n, ox + pad : ox + pad + n]
    # Keep patches small: they are resized every frame and never need more than ~4x face size.
    limit = 320
    s = min(1.0, limit / n)
    if s < 1.0:
        crop = cv2.resize(crop, (limit, limit), interpolation=cv2.INTER_AREA)
    box = ((x0 - ox) * s, (y0 - oy) * s, (x1 - ox) * s, (y1 - oy) * s)
    lm = ((lms - np.array([ox, oy], np.float32)) * s).astype(np.float32)
    return _FacePatch(identity, f"{identity}/{photo}", np.ascontiguousarray(crop), box, lm)


def _ellipse_alpha(n: int, box: Box) -> npt.NDArray[np.float32]:
    """Feathered ellipse around the face (a little wider than the box, taller for hair/chin)."""
    mask = np.zeros((n, n), np.float32)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = 0.72 * (box[2] - box[0]), 0.80 * (box[3] - box[1])
    cv2.ellipse(mask, (round(cx), round(cy)), (round(ax), round(ay)), 0, 0, 360, 1.0, -1)
    k = max(3, int(0.18 * (box[2] - box[0])) | 1)
    return np.asarray(cv2.GaussianBlur(mask, (k, k), 0), dtype=np.float32)


# ---------------------------------------------------------------------------
# Scene composition


def _load_background(path: Path, width: int, height: int) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UsageError(f"scene: {path}: not a readable image")
    h, w = image.shape[:2]
    s = max(width / w, height / h)  # cover, then crop the centre
    rw, rh = math.ceil(w * s), math.ceil(h * s)
    big = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    x, y = (rw - width) // 2, (rh - height) // 2
    return np.ascontiguousarray(big[y : y + height, x : x + width])


@dataclass
class _Walker:
    patch: _FacePatch
    alpha: npt.NDArray[np.float32]
    t_in: float
    direction: int
    cross_s: float  # time to cross the whole frame width
    lane_y: float
    w0: float
    w1: float
    bob_phase: float

    def face_geometry(self, t: float, spec: SceneSpec) -> tuple[float, float, float] | None:
        """(face centre x, face centre y, face width) at time t, or None before entering."""
        if t < self.t_in:
            return None
        u = (t - self.t_in) / self.cross_s  # 0 at entry, 1 after crossing
        width = self.w0 + (self.w1 - self.w0) * min(1.0, u)
        margin = 1.2 * width
        span = spec.width + 2 * margin
        x = -margin + u * span
        if self.direction < 0:
            x = spec.width - x
        # Approaching people drift down the frame; a small bob stands for the gait.
        y = self.lane_y + 0.35 * (width - self.w0) * 1.5
        y += 0.06 * width * math.sin(2 * math.pi * 1.8 * (t - self.t_in) + self.bob_phase)
        return x, y, width


def _paste(frame: Image, walker: _Walker, cx: float, cy: float, width: float) -> Box:
    """Blend the walker's patch so its face box has ``width`` and centre (cx, cy).

    Returns the covered rectangle (of the ellipse) in frame pixels.
    """
    p = walker.patch
    fb = p.face_box
    s = width / (fb[2] - fb[0])
    n = p.image.shape[0]
    size = max(2, round(n * s))
    s = size / n
    fcx, fcy = (fb[0] + fb[2]) / 2 * s, (fb[1] + fb[3]) / 2 * s
    x0, y0 = round(cx - fcx), round(cy - fcy)
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + size), min(h, y0 + size)
    if fx1 > fx0 and fy1 > fy0:
        img = cv2.resize(p.image, (size, size), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(walker.alpha, (size, size), interpolation=cv2.INTER_LINEAR)
        px0, py0 = fx0 - x0, fy0 - y0
        src = img[py0 : py0 + fy1 - fy0, px0 : px0 + fx1 - fx0].astype(np.float32)
        a = alpha[py0 : py0 + fy1 - fy0, px0 : px0 + fx1 - fx0, None]
        dst = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        frame[fy0:fy1, fx0:fx1] = (a * src + (1 - a) * dst + 0.5).astype(np.uint8)
    bw, bh = (fb[2] - fb[0]) * s, (fb[3] - fb[1]) * s
    return (cx - 0.72 * bw, cy - 0.80 * bh, cx + 0.72 * bw, cy + 0.80 * bh)


def _face_box(walker: _Walker, cx: float, cy: float, width: float) -> tuple[Box, np.ndarray]:
    fb = walker.patch.face_box
    s = width / (fb[2] - fb[0])
    fcx, fcy = (fb[0] + fb[2]) / 2, (fb[1] + fb[3]) / 2
    box = (
        cx + (fb[0] - fcx) * s,
        cy + (fb[1] - fcy) * s,
        cx + (fb[2] - fcx) * s,
        cy + (fb[3] - fcy) * s,
    )
    lm = (walker.patch.landmarks - np.array([fcx, fcy], np.float32)) * s + np.array(
        [cx, cy], np.float32
    )
    return box, lm


def _draw_pole(frame: Image, rect: Box) -> None:
    x0, _, x1, _ = (round(v) for v in rect)
    width = max(1, x1 - x0)
    # A shaded cylinder: brighter in the middle, so it reads as a post, not a bar.
    shade = 0.55 + 0.45 * np.sin(np.linspace(0.15, math.pi - 0.15, width))
    colour = np.array([70, 80, 88], np.float32)
    column = (shade[:, None] * colour[None, :]).astype(np.uint8)
    frame[:, x0:x1] = column[None, :, :]


def _covered_fraction(box: Box, covers: Sequence[Box], frame_w: int, frame_h: int) -> float:
    """Share of ``box`` that is off-frame or under one of ``covers``."""
    x0, y0, x1, y1 = box
    w, h = max(1, math.ceil(x1 - x0)), max(1, math.ceil(y1 - y0))
    hidden = np.zeros((h, w), bool)
    for cx0, cy0, cx1, cy1 in [
        *covers,
        (-1e9, -1e9, 0.0, 1e9),
        (frame_w, -1e9, 1e9, 1e9),
        (-1e9, -1e9, 1e9, 0.0),
        (-1e9, frame_h, 1e9, 1e9),
    ]:
        a0, a1 = max(0, math.floor(cx0 - x0)), min(w, math.ceil(cx1 - x0))
        b0, b1 = max(0, math.floor(cy0 - y0)), min(h, math.ceil(cy1 - y0))
        if a1 > a0 and b1 > b0:
            hidden[b0:b1, a0:a1] = True
    return float(hidden.mean())


def _inside(box: Box, w: int, h: int) -> bool:
    return box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h


def _pick_patches(
    spec: SceneSpec, faces_root: Path, locator: _FaceLocator, rng: random.Random
) -> list[_FacePatch]:
    photos = _list_photos(faces_root)
    if spec.identities:
        missing = [i for i in spec.identities if i not in photos]
        if missing:
            raise UsageError(f"scene: identities not found in {faces_root}: {', '.join(missing)}")
        chosen = list(spec.identities)
    else:
        if spec.people > len(photos):
            raise UsageError(
                f"scene: {spec.people} people asked for, {faces_root} has {len(photos)} identities"
            )
        chosen = rng.sample(sorted(photos), spec.people)
    excluded = set(spec.exclude_photos)
    patches = []
    for identity in chosen:
        candidates = [f for f in photos[identity] if f"{identity}/{f}" not in excluded]
        rng.shuffle(candidates)
        patch = None
        for name in candidates:
            patch = _make_patch(faces_root, identity, name, locator)
            if patch is not None:
                break
        if patch is None:
            raise UsageError(f"scene: no usable face photo for identity {identity}")
        patches.append(patch)
    return patches


def generate_scene(
    out_dir: Path,
    spec: SceneSpec,
    faces_root: Path,
    backgrounds_root: Path,
    *,
    models_dir: Path | None = None,
) -> SceneTruth:
    """Write ``out_dir/000001.jpg...`` and ``out_dir/truth.json``; return the truth.

    ``models_dir`` holds the pinned models (``lfr-agent models install``); the
    detector there locates the face inside each source photo. Numbered frames
    already in ``out_dir`` are replaced, so a shorter clip never inherits stale frames.
    """
    from agent.config import PathsSection
    from agent.vision.model_store import resolve_models

    spec.check()
    out_dir = Path(out_dir)
    faces_root, backgrounds_root = Path(faces_root), Path(backgrounds_root)
    models = resolve_models(Path(models_dir) if models_dir else PathsSection().models_dir)
    locator = _FaceLocator(models["detector"].path)
    rng = random.Random(spec.seed)

    if not backgrounds_root.is_dir():
        raise UsageError(f"scene: backgrounds folder {backgrounds_root} does not exist")
    backgrounds = sorted(
        p.name for p in backgrounds_root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )
    if spec.background:
        if spec.background not in backgrounds:
            raise UsageError(f"scene: background {spec.background} not in {backgrounds_root}")
        bg_name = spec.background
    elif backgrounds:
        bg_name = rng.choice(backgrounds)
    else:
        raise UsageError(f"scene: {backgrounds_root} holds no images")
    background = _load_background(backgrounds_root / bg_name, spec.width, spec.height)

    patches = _pick_patches(spec, faces_root, locator, rng)
    W, H = spec.width, spec.height
    n_people = len(patches)
    lanes = [H * (0.22 + 0.50 * (k + 0.5) / n_people) for k in range(n_people)]
    rng.shuffle(lanes)
    stagger = min(spec.stagger_s, spec.seconds / (2 * n_people))
    walkers = []
    for k, patch in enumerate(patches):
        w0 = spec.min_face_px * rng.uniform(1.0, 1.25)
        w1 = min(spec.max_face_px, w0 * rng.uniform(1.3, 1.8))
        walkers.append(
            _Walker(
                patch=patch,
                alpha=_ellipse_alpha(patch.image.shape[0], patch.face_box),
                t_in=k * stagger,
                direction=rng.choice((-1, 1)),
                cross_s=max(spec.seconds, 1.0) * rng.uniform(1.0, 1.4),
                lane_y=lanes[k],
                w0=w0,
                w1=w1,
                bob_phase=rng.uniform(0, 2 * math.pi),
            )
        )
    occluders: list[Box] = []
    if spec.occluder:
        px = rng.uniform(0.28, 0.62) * W
        occluders.append((px, 0.0, px + 0.035 * W, float(H)))

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("[0-9][0-9][0-9][0-9][0-9][0-9].jpg"):
        old.unlink()
    first_seen: dict[str, int] = {}
    first_full: dict[str, int] = {}
    frames: list[FrameTruth] = []
    params = [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality]
    for i in range(spec.frame_count):
        t = i / spec.fps
        frame = background.copy()
        placed = []
        for wk in walkers:
            g = wk.face_geometry(t, spec)
            if g is not None:
                placed.append((wk, g))
        # Far (small) faces first: each face is then covered by the ones drawn after it.
        placed.sort(key=lambda item: item[1][2])
        covers = [_paste(frame, wk, cx, cy, width) for wk, (cx, cy, width) in placed]
        for rect in occluders:
            _draw_pole(frame, rect)
        resolved: list[FaceTruth] = []
        for k, (wk, (cx, cy, width)) in enumerate(placed):
            box, lm = _face_box(wk, cx, cy, width)
            if box[2] <= 0 or box[0] >= W or box[3] <= 0 or box[1] >= H:
                continue  # entirely outside the picture
            covered = _covered_fraction(box, [*covers[k + 1 :], *occluders], W, H)
            if not _inside(box, W, H):
                state = "clipped"
            elif covered >= OCCLUDED_MIN_FRACTION:
                state = "occluded"
            else:
                state = "visible"
            ident = wk.patch.identity
            landmarks = tuple((float(x), float(y)) for x, y in lm)
            resolved.append(FaceTruth(ident, wk.patch.photo, box, landmarks, state, 1.0 - covered))
            first_seen.setdefault(ident, i)
            if state == "visible":
                first_full.setdefault(ident, i)
        name = f"{i + 1:06d}.jpg"
        if not cv2.imwrite(str(out_dir / name), frame, params):
            raise LfrError(f"scene: cannot write {out_dir / name}")
        frames.append(FrameTruth(i, name, tuple(resolved)))

    truth = SceneTruth(
        frames_dir=out_dir,
        spec=spec,
        background=bg_name,
        occluders=tuple(occluders),
        identities={
            wk.patch.identity: IdentityTruth(
                wk.patch.identity,
                wk.patch.photo,
                first_seen.get(wk.patch.identity),
                first_full.get(wk.patch.identity),
            )
            for wk in walkers
        },
        frames=tuple(frames),
    )
    (out_dir / TRUTH_NAME).write_text(json.dumps(truth.to_json(), indent=1) + "\n")
    return truth


# ---------------------------------------------------------------------------
# Command line


def _default_shared_data() -> Path:
    import os

    env = os.environ.get("LFR_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: Sequence[str] | None = None) -> int:
    data = _default_shared_data()
    p = argparse.ArgumentParser(
        prog="python -m hil.synthetic_scene",
        description="Write a synthetic street scene (JPEG frames + truth.json) for replay.",
    )
    p.add_argument("out_dir", type=Path, help="folder to write the frames and truth.json into")
    p.add_argument("--models-dir", type=Path, required=True, help="installed pinned models")
    p.add_argument("--faces", type=Path, default=data / "faces", help="<identity>/<image> photos")
    p.add_argument(
        "--backgrounds", type=Path, default=data / "scenes" / "no_faces", help="background plates"
    )
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--people", type=int, default=4)
    p.add_argument(
        "--identity", action="append", default=[], help="identity to include (repeatable)"
    )
    p.add_argument("--no-occluder", action="store_true", help="leave out the street pole")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise UsageError(f"scene: --size must look like 1280x720, got {args.size!r}") from None
        spec = SceneSpec(
            width=w,
            height=h,
            fps=args.fps,
            seconds=args.seconds,
            people=args.people,
            identities=tuple(args.identity),
            occluder=not args.no_occluder,
            seed=args.seed,
        )
        truth = generate_scene(
            args.out_dir, spec, args.faces, args.backgrounds, models_dir=args.models_dir
        )
    except LfrError as exc:
        print(f"synthetic_scene: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{len(truth.frames)} frames -> {truth.frames_dir} (background {truth.background})")
    for ident in truth.identities.values():
        print(f"  {ident.photo:28} first fully visible at frame {ident.first_full_frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
