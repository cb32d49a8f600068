"""Liveliness, measured from the OUTPUT: is the avatar's head alive while it speaks and while it listens?

For each face and sentence (the sentences, faces and voices of benchmarks/lipsync_quality.py) the meshwarp
renderer renders the clip through its public API; an independent face-mesh pass over the output frames gives
the head pose per frame (rigid landmarks aligned to the rest frame's with Kabsch, benchmarks/head_pose.py).
Reported per clip and per face, in speech and in the idle loop:

- rotation std per axis (pitch, yaw, roll, degrees) and translation std (% of the face height);
- brow-to-eye distance std (% of the face height);
- ``r speed``: Pearson r of the head's angular speed with the speech envelope, both smoothed with an 80 ms
  Gaussian (the pose is differenced after that smoothing, which removes the detector's frame-to-frame noise);
- faces found in the output frames; background PSNR against the source outside the head mask (the convex hull
  of the face outline, dilated by 50% of the face height, and that again moved up by 40%: hair, hats,
  ears, neck);
- idle: blinks a minute (eye aperture below 70% of its rest value), and PSNR of the first and last idle and clip
  frames against the rest frame;
- the lip-sync figures of benchmarks/lipsync_quality.py, re-measured on the same clips.

Run: ``.venv/bin/python -m benchmarks.liveliness [--quick]``. Writes the "liveliness" section of BENCHMARKS.md
and ``docs/images/liveliness.jpg`` (today's still head above the moving one).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter1d  # noqa: E402

from avatarchat.render import landmarks as L  # noqa: E402
from avatarchat.render.landmarks import FaceMesh  # noqa: E402
from avatarchat.render.meshwarp import MeshWarpRenderer  # noqa: E402
from avatarchat.tts.piper import PiperTTS  # noqa: E402
from benchmarks import lipsync_quality as lq  # noqa: E402
from benchmarks.head_pose import PoseSeries, face_height, pose_series  # noqa: E402
from benchmarks.report import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHEET = ROOT / "docs" / "images" / "liveliness.jpg"
HEAD_DILATE = 0.5  # of the face height
HAIR_UP = 0.4  # the mask also covers itself moved up by this much of the face height
BLINK_SHUT = 0.7  # an eye counts as shut below this share of its rest aperture


def detect(mesh: FaceMesh, frames: list[np.ndarray]) -> list[np.ndarray | None]:
    out = []
    for f in frames:
        faces = mesh.detect_all(f)
        out.append(max(faces, key=face_height) if faces else None)
    return out


def head_mask(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[L.FACE_OVAL, :2]).astype(np.int32)), 255)
    h = face_height(lm)
    r = int(round(HEAD_DILATE * h))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    up = int(round(HAIR_UP * h))  # hair and hats stand above the face
    mask[: mask.shape[0] - up] |= mask[up:]
    return mask > 0


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    d = a.astype(np.float64) - b.astype(np.float64)
    return lq.psnr(float(np.mean(d[where] ** 2 if where is not None else d**2)))


def blinks_per_minute(lms: list[np.ndarray | None], rest: np.ndarray, fps: int) -> float:
    def eye(lm: np.ndarray) -> float:
        return float(np.mean([np.linalg.norm(lm[t, :2] - lm[b, :2]) for t, b in ((159, 145), (386, 374))]))
    ap = np.array([eye(lm) if lm is not None else np.nan for lm in lms]) / eye(rest)
    shut = ap < BLINK_SHUT
    starts = int(np.sum(shut[1:] & ~shut[:-1]) + shut[0])
    return 60.0 * starts * fps / len(lms)


def speed_r(pose: PoseSeries, env: np.ndarray) -> float:
    return lq.pearson(pose.angular_speed(), gaussian_filter1d(env, 2.0))


def clip_row(face, lang, text, speech, renderer, avatar, mesh, rest_lm, voice) -> tuple[dict, list[np.ndarray]]:
    res, _series, frames = lq.measure(face, lang, text, speech, renderer, avatar, mesh, rest_lm, voice)
    pose = pose_series(rest_lm, detect(mesh, frames))
    bg = ~head_mask(rest_lm, avatar.image.shape[:2])
    row = {"face": face, "lang": lang, "text": text, "rot": pose.rotation_std(), "shift": pose.shift_std(),
           "brow": float(np.nanstd(pose.brow)), "r_speed": speed_r(pose, lq.envelope(speech, len(frames))),
           "found": float(pose.found.mean()), "bg": min(psnr(f, avatar.image, bg) for f in frames),
           "edges": min(psnr(frames[0], avatar.image), psnr(frames[-1], avatar.image)), "lip": res}
    return row, frames


def idle_row(face: str, renderer: MeshWarpRenderer, avatar, mesh: FaceMesh, rest_lm: np.ndarray) -> dict:
    frames = list(renderer.idle_frames(avatar))
    lms = detect(mesh, frames)
    pose = pose_series(rest_lm, lms)
    return {"face": face, "rot": pose.rotation_std(), "shift": pose.shift_std(), "found": float(pose.found.mean()),
            "blinks": blinks_per_minute(lms, rest_lm, renderer.fps),
            "edges": min(psnr(frames[0], avatar.image), psnr(frames[-1], avatar.image)), "frames": frames}


def contact_sheet(still: list[np.ndarray], moving: list[np.ndarray], lm: np.ndarray, path: Path) -> None:
    """Six frames of the same clip, cropped to the head: today's still head (top) and the moving one."""
    h = face_height(lm)
    cx, cy = lm[L.FACE_OVAL, 0].mean(), lm[L.FACE_OVAL, 1].mean()
    H, W = still[0].shape[:2]
    x0, x1 = int(max(0, cx - 1.1 * h)), int(min(W, cx + 1.1 * h))
    y0, y1 = int(max(0, cy - 1.2 * h)), int(min(H, cy + 1.1 * h))
    picks = np.linspace(0, len(still) - 1, 8).astype(int)[1:-1]
    rows = []
    for frames, label in ((still, "motion_scale 0 (before)"), (moving, "motion_scale 1")):
        tiles = [cv2.resize(frames[k][y0:y1, x0:x1], None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
                 for k in picks]
        row = np.concatenate(tiles, axis=1)[:, :, ::-1].copy()
        cv2.putText(row, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 88])


def fmt_rot(rot: np.ndarray) -> str:
    return " / ".join(f"{v:.2f}" for v in rot)


def summary(rows: list[dict], idles: list[dict], faces: list[str]) -> tuple[list[list], list[list]]:
    agg, targets = [], []
    for face in faces:
        sel = [r for r in rows if r["face"] == face]
        idle = next(i for i in idles if i["face"] == face)
        rot = np.mean([r["rot"] for r in sel], axis=0)
        shift = float(np.mean([r["shift"] for r in sel]))
        brow = float(np.mean([r["brow"] for r in sel]))
        rs = float(np.nanmean([r["r_speed"] for r in sel]))
        found = float(np.mean([r["found"] for r in sel] + [idle["found"]]))
        bg = min(r["bg"] for r in sel)
        edges = min([r["edges"] for r in sel] + [idle["edges"]])
        lip = lq.aggregate([r["lip"] for r in sel])
        agg.append([face, len(sel), fmt_rot(rot), f"{shift:.2f}", f"{brow:.2f}", f"{rs:.2f}",
                    fmt_rot(idle["rot"]), f"{idle['shift']:.2f}", f"{idle['blinks']:.1f}",
                    f"{100 * found:.1f}%", f"{bg:.1f}", f"{edges:.1f}",
                    f"{lip['r']:.2f}", f"{lip['lag_ms']:+.0f} (max {lip['lag_abs_max']:.0f})",
                    f"{100 * lip['closed']:.1f}%"])
        ok = lq.verdict
        targets.append([
            face,
            f"{ok(int(((rot >= 0.8) & (rot <= 4)).sum()) >= 2)} ({fmt_rot(rot)})",
            f"{ok(shift >= 0.4)} ({shift:.2f})", f"{ok(brow >= 0.3)} ({brow:.2f})", f"{ok(rs >= 0.3)} ({rs:.2f})",
            f"{ok(idle['rot'].max() >= 0.3)} ({idle['rot'].max():.2f})",
            f"{ok(10 <= idle['blinks'] <= 20)} ({idle['blinks']:.1f})", f"{ok(edges >= 40)} ({edges:.1f})",
            f"{ok(found == 1.0)} ({100 * found:.1f}%)", f"{ok(bg >= 30)} ({bg:.1f})",
            f"{ok(lip['r'] >= 0.75 and lip['lag_abs_max'] <= 40 and lip['closed'] >= 0.9)} "
            f"(r {lip['r']:.2f}, lag max {lip['lag_abs_max']:.0f}, closed {100 * lip['closed']:.0f}%)",
        ])
    return agg, targets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two sentences per language")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    english = lq.ENGLISH[:2] if args.quick else lq.ENGLISH
    korean = lq.KOREAN[:2] if args.quick else lq.KOREAN
    tts = PiperTTS(default_voice=lq.EN_VOICE)
    speeches = [("en", t, tts.synthesize_sync(t)) for t in english]
    speeches += [("ko", t, lq.espeak(t, lq.KO_VOICE)) for t in korean]
    synth = {"en": (lq.EN_VOICE, tts.synthesize_sync), "ko": (lq.KO_VOICE, lambda w: lq.espeak(w, lq.KO_VOICE))}
    rows, idles = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache, FaceMesh(static=True, max_faces=1) as mesh:
        renderer = MeshWarpRenderer(cache_dir=Path(cache), max_side=512, motion_scale=1.0)
        still = MeshWarpRenderer(cache_dir=Path(cache), max_side=512, motion_scale=0.0)
        voices = {lang: lq.calibrate(renderer, v, fn) for lang, (v, fn) in synth.items()}
        lq.calibrate(still, *synth["en"])
        for face, src in lq.FACES.items():
            avatar = renderer.register(src)
            rest_lm = mesh.detect_one(avatar.image, what=f"{face} source picture")
            for lang, text, speech in speeches:
                row, frames = clip_row(face, lang, text, speech, renderer, avatar, mesh, rest_lm, voices[lang])
                rows.append(row)
                print(f"  {face:9s} {lang} rot={fmt_rot(row['rot'])} shift={row['shift']:.2f} "
                      f"brow={row['brow']:.2f} r={row['r_speed']:.2f} lip r={row['lip'].r:.2f}  {text[:30]}",
                      file=sys.stderr, flush=True)
                if face == "astronaut" and text == english[-1]:
                    before = list(still.render(avatar, speech, voice=voices["en"]))
                    contact_sheet(before, frames, rest_lm, SHEET)
            idles.append(idle_row(face, renderer, avatar, mesh, rest_lm))
    elapsed = time.perf_counter() - t0
    body = report(rows, idles, len(english), len(korean), elapsed, args.quick)
    if args.no_write:
        print(body)
    else:
        write_section("liveliness", "Liveliness (head, brows, blinks; independent face-mesh pass over the output)",
                      body, "python -m benchmarks.liveliness" + (" --quick" if args.quick else ""))
    return 0


def report(rows: list[dict], idles: list[dict], n_en: int, n_ko: int, elapsed: float, quick: bool) -> str:
    agg, targets = summary(rows, idles, list(lq.FACES))
    per = [[r["face"], r["lang"], r["text"][:32], fmt_rot(r["rot"]), f"{r['shift']:.2f}", f"{r['brow']:.2f}",
            f"{r['r_speed']:.2f}", f"{100 * r['found']:.0f}%", f"{r['bg']:.1f}", f"{r['lip'].r:.2f}",
            f"{r['lip'].lag_ms:+.0f}", f"{r['lip'].silent_closed}/{r['lip'].silent}"] for r in rows]
    return "\n".join([
        f"{n_en} English sentences (Piper `{lq.EN_VOICE}`) and {n_ko} Korean ones (`espeak-ng -v "
        f"{lq.KO_VOICE}`), the sentences and faces of the lip-sync benchmark (`astronaut`: the bundled 512x384 "
        "portrait; "
        "`hopper`: tests/data/grace_hopper.jpg at 436x512), rendered at `motion_scale` 1 with per-voice "
        "calibration. Pose: a fresh `FaceMesh(static=True)` over every output frame; rigid landmarks (forehead "
        "midline, nose bridge, eye corners) aligned to the source picture's with Kabsch; rotation as pitch / yaw / "
        "roll in degrees, translation of their centroid in % of the face height (lm10-lm152). `r speed`: Pearson r "
        "of the angular speed with the RMS envelope, both smoothed by an 80 ms Gaussian. Background PSNR: the "
        f"worst frame, outside the face outline's hull dilated by {HEAD_DILATE:.0%} of the face height, united with "
        f"itself moved up by {HAIR_UP:.0%} (hair, hats). Edges: the "
        "worst of the first and last frame of every clip and of the idle loop against the rest frame (99 = "
        "identical). Blinks: eye aperture under 70% of its rest value, in the 8 s idle loop. Lip-sync columns as in "
        "the lip-sync section, on these clips. For reference, the same pass over the still head "
        "(`motion_scale` 0) reads 0.6-0.9 degrees of pitch and 0.2-0.3% of translation: the measurement's noise "
        "floor (the moving mouth and lids jiggle the mesh).",
        "",
        "### Targets (issue 10)", "",
        table(["face", "speech rotation std 0.8-4° on >= 2 axes", "translation >= 0.4%", "brow std >= 0.3%",
               "r speed >= 0.3", "idle rotation >= 0.3°", "idle blinks 10-20/min", "edges >= 40 dB",
               "faces found 100%", "background >= 30 dB", "lip-sync r >= 0.75, lag <= 40 ms, closed >= 90%"],
              targets),
        "", "### Per face", "",
        table(["face", "clips", "rotation std p/y/r °", "transl. %", "brow %", "r speed", "idle rot. °",
               "idle transl. %", "idle blinks/min", "found", "bg PSNR", "edges dB", "lip r", "lag ms", "closed"],
              agg),
        "", "### Per clip", "",
        table(["face", "lang", "sentence", "rotation std p/y/r °", "transl. %", "brow %", "r speed", "found",
               "bg PSNR", "lip r", "lag ms", "closed"], per),
        "",
        f"Contact sheet: `{SHEET.relative_to(ROOT)}` (still head above, moving head below). Took {elapsed:.0f} s"
        + (" (--quick: two sentences per language)." if quick else "."),
    ])


if __name__ == "__main__":
    raise SystemExit(main())
