"""The listening loop over HTTP (issue 20): every avatar a session may use has one beside its idle loop, starting
on the same rest frame (so the page's switch between them cannot jump), and an upload's is private to its session."""

from __future__ import annotations

import httpx
import numpy as np

from tests import media_files as mf
from tests.helpers import decode_clip, new_session
from tests.test_avatars import upload


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_the_default_avatar_has_a_listening_loop_starting_on_the_idle_loops_rest_frame(server: str) -> None:
    listen = httpx.get(server + "/avatar/listen.mp4", timeout=120)
    assert listen.status_code == 200 and listen.headers["content-type"] == "video/mp4"
    idle = decode_clip(httpx.get(server + "/avatar/idle.mp4", timeout=60).content)
    loop = decode_clip(listen.content)
    assert loop.frames.shape[1:] == idle.frames.shape[1:] and loop.fps == idle.fps
    assert loop.video_duration_s >= 4.0
    assert mean_diff(loop.frames[0], idle.frames[0]) < 1.0  # the same rest frame, re-encoded
    listed = httpx.get(server + "/avatars", params={"session_id": new_session(server)}, timeout=30).json()
    default = next(a for a in listed["avatars"] if a["avatar_id"] == "default")
    assert default["listen_url"] == "/avatar/listen.mp4"


def test_an_uploaded_avatars_listening_loop_is_its_own_and_private(server: str) -> None:
    owner, other = new_session(server), new_session(server)
    body = upload(server, owner, mf.PHOTO.read_bytes()).json()
    assert body["listen_url"] == f"/avatars/{body['avatar_id']}/listen.mp4?session_id={owner}"
    r = httpx.get(server + body["listen_url"], timeout=120)
    assert r.status_code == 200, r.text
    frames = decode_clip(r.content).frames
    assert frames.shape[1:] == (body["height"], body["width"], 3)
    stranger = httpx.get(server + f"/avatars/{body['avatar_id']}/listen.mp4", params={"session_id": other}, timeout=30)
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "unknown_avatar"
    assert httpx.delete(server + f"/avatars/{body['avatar_id']}", params={"session_id": owner},
                        timeout=30).status_code == 204
    gone = httpx.get(server + body["listen_url"], timeout=30)
    assert gone.status_code == 404
