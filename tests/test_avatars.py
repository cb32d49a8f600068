"""Your own avatar through the real server: upload a photo or a video, the next clip shows that face; another
session cannot see or use it; hostile files get a clear 4xx and the server stays healthy."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import httpx
import numpy as np
import pytest

from avatarchat.server import create_app
from avatarchat.server.serving import uvicorn_options
from avatarchat.settings import Settings
from tests import media_files as mf
from tests.helpers import decode_clip, new_session, running
from tests.test_ws import collect


@pytest.fixture(scope="module")
def base(data_dir, voices, renderer) -> Iterator[str]:
    """The real app; every test client is 127.0.0.1, so the per-client upload rate is lifted here."""
    settings = Settings(_env_file=None, data_dir=data_dir, port=0, llm_backend="echo", motion_scale=0.0,
                        max_sessions_per_client=200, max_client_backlog=1000, avatar_uploads_per_client=0)
    # With the options `avatarchat serve` uses: its HTTP protocol limits request heads, not bodies.
    with running(create_app(settings, tts=voices, renderer=renderer), **uvicorn_options(settings)) as url:
        yield url


def upload(base: str, session: str, data: bytes, name: str = "me.jpg", kind: str = "image/jpeg") -> httpx.Response:
    return httpx.post(base + "/avatars", data={"session_id": session}, files={"file": (name, data, kind)},
                      timeout=120)


def first_clip(base: str, session: str, message: str = "Hello there.", *, post_timeout_s: float = 60.0,
               timeout_s: float = 120.0, **extra) -> np.ndarray:
    """The rest frame of the first clip of the reply to ``message`` (clips start on the avatar's rest frame)."""
    from websockets.sync.client import connect

    with connect(base.replace("http://", "ws://") + f"/ws?session_id={session}") as ws:
        r = httpx.post(base + "/chat", json={"session_id": session, "message": message, **extra},
                       timeout=post_timeout_s)
        assert r.status_code == 200, r.text
        events = collect(ws, "clip_ready", timeout_s=timeout_s)
    clip = [e for e in events if e["type"] == "clip_ready"][0]
    return decode_clip(httpx.get(base + clip["url"], timeout=30).content).frames[0]


def uploaded_rgb(shape: tuple[int, ...]) -> np.ndarray:
    g = mf.photo_bgr()[:, :, ::-1]
    return cv2.resize(g, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_a_photo_becomes_the_sessions_avatar_and_the_next_clip_shows_that_face(base: str) -> None:
    session = new_session(base)
    default = first_clip(base, session)
    # The name and content type lie (a "png" of type text/plain): the bytes say it is a JPEG.
    r = upload(base, session, mf.PHOTO.read_bytes(), name="../../etc/passwd.png", kind="text/plain")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["avatar_id"].startswith("u-") and body["kind"] == "photo"
    assert body["face"]["width"] > 64 and body["frames"] == 1
    preview = httpx.get(base + body["preview_url"], timeout=30)
    assert preview.status_code == 200 and preview.content[:3] == b"\xff\xd8\xff"
    listed = httpx.get(base + "/avatars", params={"session_id": session}, timeout=30).json()
    assert listed["current"] == body["avatar_id"]
    assert [a["avatar_id"] for a in listed["avatars"]] == ["default", "grace", "ada", body["avatar_id"]]

    idle = httpx.get(base + body["idle_url"], timeout=60)
    assert idle.status_code == 200
    idle_frames = decode_clip(idle.content).frames
    mine = first_clip(base, session, "And now?")
    assert mine.shape == idle_frames[0].shape == (body["height"], body["width"], 3)
    assert mine.shape != default.shape  # the bundled avatar is a landscape portrait, the photo a portrait
    assert np.abs(mine.astype(np.float32) - uploaded_rgb(mine.shape)).mean() < 8  # the uploaded face, re-encoded


def test_another_session_gets_404_for_an_avatar_it_does_not_own(base: str) -> None:
    owner, other = new_session(base), new_session(base)
    body = upload(base, owner, mf.PHOTO.read_bytes()).json()
    aid = body["avatar_id"]
    listed = httpx.get(base + "/avatars", params={"session_id": other}, timeout=30).json()
    assert aid not in [a["avatar_id"] for a in listed["avatars"]]
    for path in (f"/avatars/{aid}/preview.jpg", f"/avatars/{aid}/idle.mp4"):
        for params in ({"session_id": other}, {}):
            r = httpx.get(base + path, params=params, timeout=30)
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_avatar", (path, r.text)
    r = httpx.post(base + "/chat", json={"session_id": other, "message": "hi", "avatar": aid}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_avatar"
    assert httpx.delete(base + f"/avatars/{aid}", params={"session_id": other}, timeout=30).status_code == 404
    nonexistent = httpx.get(base + "/avatars/u-nothing/preview.jpg", params={"session_id": other}, timeout=30)
    assert nonexistent.status_code == 404 and nonexistent.json() == r.json()  # the same answer as a stranger's


def test_a_short_video_becomes_the_sessions_avatar(base: str) -> None:
    session = new_session(base)
    r = upload(base, session, mf.photo_video(2.0), name="clip.bin", kind="application/octet-stream")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "video" and body["frames"] == 50
    frame = first_clip(base, session)
    assert frame.shape == (body["height"], body["width"], 3)
    assert np.abs(frame.astype(np.float32) - uploaded_rgb(frame.shape)).mean() < 10


HOSTILE = {
    "not_media": (lambda: b"#!/bin/sh\necho not a picture\n" * 20, 415, "not_media"),
    "decompression_bomb": (lambda: mf.png_claiming(20000, 20000), 413, "too_many_pixels"),
    "truncated_jpeg": (lambda: mf.PHOTO.read_bytes()[: len(mf.PHOTO.read_bytes()) // 2], 422, "truncated"),
    "polyglot": (lambda: mf.PHOTO.read_bytes() + b"PK\x03\x04" + b"<script>alert(1)</script>" * 40, 422,
                 "trailing_data"),
    "long_video": (mf.long_video, 413, "too_long"),
    "huge_video_frames": (mf.huge_frames_video, 413, "too_many_pixels"),
    "faceless": (mf.faceless, 422, "no_face"),
    "two_faces": (mf.two_faces, 422, "several_faces"),
    "small_face": (mf.small_face, 422, "too_small"),
    "dark_face": (mf.dark_face, 422, "too_dark"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_gets_a_clear_4xx_and_leaves_the_session_as_it_was(base: str, name: str) -> None:
    make, status, code = HOSTILE[name]
    session = new_session(base)
    good = upload(base, session, mf.PHOTO.read_bytes()).json()["avatar_id"]
    t0 = time.monotonic()
    r = upload(base, session, make(), name="photo.jpg")
    took = time.monotonic() - t0
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and len(err["message"]) > 20, err
    assert "/" not in err["message"].replace("DELETE /avatars", ""), err  # no paths
    print(f"{name}: {status} {code} in {took * 1000:.0f} ms")
    listed = httpx.get(base + "/avatars", params={"session_id": session}, timeout=30).json()
    assert listed["current"] == good and [a["avatar_id"] for a in listed["avatars"]][3:] == [good]  # as it was
    assert httpx.get(base + "/healthz", timeout=30).status_code == 200


def test_a_session_holds_at_most_its_quota_and_deleting_frees_one(base: str) -> None:
    session = new_session(base)
    ids = [upload(base, session, mf.PHOTO.read_bytes()).json()["avatar_id"] for _ in range(3)]
    assert len(set(ids)) == 3  # the same picture, three private ids
    r = upload(base, session, mf.PHOTO.read_bytes())
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_avatars"
    assert httpx.delete(base + f"/avatars/{ids[-1]}", params={"session_id": session}, timeout=30).status_code == 204
    listed = httpx.get(base + "/avatars", params={"session_id": session}, timeout=30).json()
    assert listed["current"] == "default"  # it was using the one deleted
    assert upload(base, session, mf.PHOTO.read_bytes()).status_code == 201


def test_uploads_are_counted_on_metrics(base: str) -> None:
    session = new_session(base)
    upload(base, session, mf.PHOTO.read_bytes())
    upload(base, session, b"not an image at all, really")
    text = httpx.get(base + "/metrics", timeout=30).text
    assert 'avatarchat_avatar_uploads_total{result="ok"}' in text
    assert 'avatarchat_avatar_uploads_total{result="not_media"}' in text
    assert "avatarchat_avatars_uploaded" in text and "avatarchat_avatar_register_seconds_count" in text


def test_a_gallery_avatar_can_be_chosen_in_chat_and_other_bodies_keep_their_small_limit(base: str) -> None:
    session = new_session(base)
    r = httpx.post(base + "/chat", json={"session_id": session, "message": "hi", "avatar": "default"}, timeout=30)
    assert r.status_code == 200
    big = httpx.post(base + "/chat", content=b"x" * 200_000, headers={"content-type": "application/json"},
                     timeout=30)
    assert big.status_code == 413  # only POST /avatars takes a large body


def test_the_bundled_gallery_offers_three_different_faces_each_with_its_name_and_voice(base: str) -> None:
    session = new_session(base)
    listed = httpx.get(base + "/avatars", params={"session_id": session}, timeout=30).json()["avatars"]
    gallery = {a["avatar_id"]: a for a in listed if a["kind"] == "gallery"}
    assert [(a["name"], a["voice"]) for a in gallery.values()] == [
        ("Ava", None), ("Grace", "piper:en_US-joe-medium+female"), ("Ada", "espeak:en-gb-x-rp")]
    previews = [httpx.get(base + a["preview_url"], timeout=30).content for a in gallery.values()]
    assert len({p for p in previews}) == 3 and all(p[:3] == b"\xff\xd8\xff" for p in previews)
    ada = gallery["ada"]
    idle = httpx.get(base + ada["idle_url"], timeout=120)  # built on first request
    assert idle.status_code == 200
    assert decode_clip(idle.content).frames[0].shape == (ada["height"], ada["width"], 3)
    from websockets.sync.client import connect

    with connect(base.replace("http://", "ws://") + f"/ws?session_id={session}") as ws:
        r = httpx.post(base + "/chat", json={"session_id": session, "message": "Hello.", "avatar": "ada"}, timeout=60)
        assert r.status_code == 200, r.text
        clip = [e for e in collect(ws, "clip_ready", timeout_s=120) if e["type"] == "clip_ready"][0]
    assert clip["voice"] == "espeak:en-gb-x-rp"  # Ada's own voice
    frame = decode_clip(httpx.get(base + clip["url"], timeout=30).content).frames[0]
    assert frame.shape == (ada["height"], ada["width"], 3)


def test_a_gallery_directory_is_offered_to_every_session_with_its_voice(data_dir, voices, renderer,
                                                                        tmp_path) -> None:
    from avatarchat.avatars.gallery import add
    from avatarchat.avatars.intake import Limits

    add(tmp_path, mf.PHOTO, "Grace Hopper", "piper:en_US-joe-medium", Limits())
    settings = Settings(_env_file=None, data_dir=data_dir, port=0, llm_backend="echo", motion_scale=0.0,
                        avatar_gallery_dir=tmp_path)
    with running(create_app(settings, tts=voices, renderer=renderer), **uvicorn_options(settings)) as url:
        session = new_session(url)
        listed = httpx.get(url + "/avatars", params={"session_id": session}, timeout=30).json()
        grace = next(a for a in listed["avatars"] if a["avatar_id"] == "grace-hopper")
        assert grace["name"] == "Grace Hopper" and grace["kind"] == "gallery"
        assert httpx.get(url + grace["idle_url"], timeout=30).status_code == 200  # no session needed
        from websockets.sync.client import connect

        with connect(url.replace("http://", "ws://") + f"/ws?session_id={session}") as ws:
            r = httpx.post(url + "/chat", json={"session_id": session, "message": "Hi.", "avatar": "grace-hopper"},
                           timeout=60)
            assert r.status_code == 200, r.text
            clip = [e for e in collect(ws, "clip_ready", timeout_s=120) if e["type"] == "clip_ready"][0]
        assert clip["voice"] == "piper:en_US-joe-medium"  # the gallery avatar's own voice
        frame = decode_clip(httpx.get(url + clip["url"], timeout=30).content).frames[0]
        assert frame.shape == (grace["height"], grace["width"], 3)
