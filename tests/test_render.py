"""The meshwarp renderer through its public API: registration (cache, no face, two faces, bad files) and a
rendered clip checked by a second, independent face-mesh pass over its frames. CPU only, no network."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.errors import BadRequest, Cancelled, NoFaceError
from avatarchat.render.base import FPS, frame_count
from avatarchat.render.landmarks import (
    CHIN,
    FOREHEAD,
    INNER_LIP_BOTTOM,
    INNER_LIP_TOP,
    LEFT_EYE,
    NOSE_TIP,
    RIGHT_EYE,
    FaceMesh,
)
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import bundled_avatar


def face_height(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))


def aperture(lm: np.ndarray) -> float:
    """Inner-lip opening as a share of the forehead-to-chin height."""
    return float(np.linalg.norm(lm[INNER_LIP_TOP, :2] - lm[INNER_LIP_BOTTOM, :2])) / face_height(lm)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


# -- registration --------------------------------------------------------------------------------------------
def test_register_finds_the_face_and_caches_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "avatars"
    first = MeshWarpRenderer(cache_dir=cache).register(bundled_avatar())
    h, w = first.image.shape[:2]
    assert first.image.dtype == np.uint8 and first.image.shape[2] == 3
    assert first.landmarks.shape == (478, 3)
    xy = first.landmarks[:, :2]
    assert (xy[:, 0] >= 0).all() and (xy[:, 0] < w).all() and (xy[:, 1] >= 0).all() and (xy[:, 1] < h).all()
    assert face_height(first.landmarks) > 0.25 * h  # a portrait: the face is a good part of the picture
    assert any(p.is_file() for p in cache.rglob("*")), "registration left nothing in the cache dir"

    # From now on the face mesh must not run: a cached avatar needs no landmark pass.
    def no_mesh(self: FaceMesh, *args: object, **kwargs: object) -> None:
        raise AssertionError("the face mesh ran for an avatar that is in the cache")

    monkeypatch.setattr(FaceMesh, "__init__", no_mesh)
    copy = shutil.copy(bundled_avatar(), tmp_path / "same-picture-other-name.png")
    again = MeshWarpRenderer(cache_dir=cache).register(Path(copy))  # a new renderer: nothing held in memory
    assert again.id == first.id
    np.testing.assert_array_equal(again.landmarks, first.landmarks)
    np.testing.assert_array_equal(again.image, first.image)

    # Control: a picture that is not cached does need the face mesh, so the patch above really bites.
    mirrored = write_rgb(tmp_path / "mirrored.png", first.image[:, ::-1])
    with pytest.raises(AssertionError, match="face mesh ran"):
        MeshWarpRenderer(cache_dir=cache).register(mirrored)


@pytest.mark.parametrize("kind", ["gradient", "noise"])
def test_register_without_a_face_says_so(tmp_path: Path, kind: str) -> None:
    if kind == "gradient":
        ramp = np.linspace(0, 255, 320, dtype=np.uint8)
        img = np.stack([np.tile(ramp, (240, 1)), np.tile(ramp[:240, None], (1, 320)),
                        np.full((240, 320), 128, np.uint8)], axis=2)
    else:
        img = np.random.default_rng(7).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    path = write_rgb(tmp_path / f"{kind}.png", img)
    with pytest.raises(NoFaceError) as err:
        MeshWarpRenderer(cache_dir=tmp_path / "avatars").register(path)
    msg = str(err.value)
    assert "no face" in msg.lower()
    assert path.name in msg  # says which file
    assert "photo" in msg.lower() or "face is clearly visible" in msg  # and what to use instead
    assert err.value.code == "no_face" and err.value.status == 422


def test_register_with_two_faces_says_how_many(tmp_path: Path) -> None:
    ava = cv2.imread(str(bundled_avatar()))
    ava = ava[: ava.shape[0] * 3 // 4, ava.shape[1] // 4 : ava.shape[1] * 3 // 4]  # the head and shoulders
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), np.concatenate([ava, ava[:, ::-1]], axis=1))  # the avatar beside its mirror image
    with pytest.raises(NoFaceError, match="2 faces") as err:
        MeshWarpRenderer(cache_dir=tmp_path / "avatars").register(path)
    assert "one" in str(err.value)  # tells the user the avatar needs exactly one face


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.png", b"this is not a picture " * 20),
        ("truncated.png", "half"),
        ("missing.png", None),
        ("notes.txt", b"hello"),
        ("empty.png", b""),  # cv2.imdecode asserts on an empty buffer: must still be a BadRequest
    ],
)
def test_register_bad_file_is_a_bad_request(tmp_path: Path, name: str, content: bytes | str | None) -> None:
    path = tmp_path / name
    if content == "half":
        data = bundled_avatar().read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(BadRequest) as err:
        MeshWarpRenderer(cache_dir=tmp_path / "avatars").register(path)
    assert name in str(err.value)
    assert not (tmp_path / "avatars").exists() or not any((tmp_path / "avatars").rglob("*.npz"))


# -- rendering -----------------------------------------------------------------------------------------------
def vowel_and_silence(rate: int = 16000) -> tuple[Speech, list[tuple[float, float]]]:
    """Silence, "aah", silence, "aah", silence: a 120 Hz glottal-like tone shaped by /a/ formants."""
    plan = [(0.4, False), (0.56, True), (0.4, False), (0.56, True), (0.48, False)]
    t = np.arange(int(0.56 * rate)) / rate
    vowel = np.zeros_like(t)
    for k in range(1, 40):
        f = 120.0 * k
        formants = [(730, 90, 1.0), (1090, 110, 0.5), (2440, 170, 0.25)]  # centre Hz, bandwidth Hz, gain
        gain = sum(a / (1 + ((f - fc) / bw) ** 2) for fc, bw, a in formants)
        vowel += gain / k * np.sin(2 * np.pi * f * t + k)
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.015)
    vowel = 0.5 * vowel / np.abs(vowel).max() * ramp
    parts, spans, at = [], [], 0.0
    for dur, voiced in plan:
        n = int(round(dur * rate))
        parts.append(vowel[:n] if voiced else np.zeros(n))
        if voiced:
            spans.append((at, at + dur))
        at += dur
    pcm = (np.concatenate(parts) * 32767).astype(np.int16)
    return Speech(pcm=pcm, sample_rate=rate), spans


@pytest.fixture(scope="module")
def fresh_renderer(tmp_path_factory: pytest.TempPathFactory) -> MeshWarpRenderer:
    """Not the session's renderer: the server tests may calibrate that one to Piper's voice."""
    return MeshWarpRenderer(cache_dir=tmp_path_factory.mktemp("render-avatars"))


def test_mouth_opens_on_vowels_and_rests_in_silence(fresh_renderer: MeshWarpRenderer, output_dir: Path) -> None:
    # A still head (motion_scale 0), so the upper face can be checked pixel by pixel below; the mouth on a
    # moving head is tests/test_render_motion.py's.
    still = MeshWarpRenderer(cache_dir=fresh_renderer.cache_dir, motion_scale=0.0)
    avatar = still.register(bundled_avatar())
    speech, spans = vowel_and_silence()
    frames = list(still.render(avatar, speech))
    n = frame_count(speech.duration_s, FPS)
    assert len(frames) == n
    assert all(f.shape == avatar.image.shape and f.dtype == np.uint8 for f in frames)

    with FaceMesh(static=True, max_faces=1) as mesh:  # independent of the renderer's own landmarks
        rest_lm = mesh.detect_one(avatar.image)
        lms = [mesh.detect_one(f, what=f"output frame {k}") for k, f in enumerate(frames)]
    rest = aperture(rest_lm)
    ap = np.array([aperture(lm) for lm in lms])

    # Frames well inside a vowel or well inside a silence (3 frames = 120 ms away from every edge).
    mid = (np.arange(n) + 0.5) / FPS
    margin = 3 / FPS
    loud = np.array([any(a + margin <= m <= b - margin for a, b in spans) for m in mid])
    quiet = np.array([all(m <= a - margin or m >= b + margin for a, b in spans) for m in mid])
    assert loud.sum() >= 12 and quiet.sum() >= 10

    assert np.median(ap[loud]) > np.median(ap[quiet]) + 0.03, (ap[loud], ap[quiet])
    assert ap[loud].min() > rest + 0.02, "a frame in the middle of a vowel has its mouth (nearly) closed"
    assert (ap[quiet] <= rest + 0.01).all(), f"silent frames not at rest ({rest:.3f}): {ap[quiet]}"

    # The upper face (above the nose tip) is the same picture whether the mouth is open or closed; the eyes
    # themselves are left out, since clips may blink.
    k_open = int(np.argmax(np.where(loud, ap, -1)))
    k_shut = int(np.nonzero(quiet)[0][len(np.nonzero(quiet)[0]) // 2])
    fh = face_height(rest_lm)
    cut = int(rest_lm[NOSE_TIP, 1] - 0.05 * fh)
    keep = np.ones(avatar.image.shape[:2], bool)
    keep[cut:] = False
    for eye in (LEFT_EYE, RIGHT_EYE):
        (x0, y0), (x1, y1) = rest_lm[eye, :2].min(axis=0) - 0.1 * fh, rest_lm[eye, :2].max(axis=0) + 0.1 * fh
        keep[max(0, int(y0)) : int(y1) + 1, max(0, int(x0)) : int(x1) + 1] = False
    assert keep.sum() > 0.15 * keep.size
    diff = np.abs(frames[k_open].astype(np.int16) - frames[k_shut].astype(np.int16))[keep]
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 8, (diff.mean(), diff.max())
    # ... while the mouth itself did change.
    assert np.abs(frames[k_open].astype(np.int16) - frames[k_shut]).mean() > 0.3

    cv2.imwrite(str(output_dir / "render-open-closed.png"),
                np.concatenate([frames[k_shut], frames[k_open]], axis=1)[:, :, ::-1])


def test_render_stops_when_cancelled(fresh_renderer: MeshWarpRenderer) -> None:
    avatar = fresh_renderer.register(bundled_avatar())
    speech, _ = vowel_and_silence()
    cancel = threading.Event()
    frames = fresh_renderer.render(avatar, speech, cancel=cancel)
    next(frames)
    cancel.set()
    with pytest.raises(Cancelled):
        for _ in frames:
            pass
