"""Uploaded avatars in Redis mode: an upload taken by one node is used by every node and worker, for its own
session only, and goes with its session.

First two avatar libraries in one process sharing a real redis-server (what each node and worker holds), then
real processes: two web nodes and a speech worker, each with its own data directory (no landmark cache shared
on disk): upload through node A, chat through node B, the clip the worker renders shows the uploaded face."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from avatarchat.avatars.intake import Limits
from avatarchat.avatars.library import AvatarLibrary, Quotas
from avatarchat.distributed.avatar_store import RedisAvatarStore
from avatarchat.distributed.keys import Keys
from avatarchat.distributed.session_store import RedisSessionStore
from avatarchat.errors import UnknownAvatar, UploadRefused
from avatarchat.metrics import Metrics
from avatarchat.render.idle import build_idle_clip
from tests import media_files as mf
from tests.helpers import decode_clip
from tests.redis_cluster import Processes, RedisServer, live_workers, wait_until
from tests.test_avatars import first_clip, uploaded_rgb

pytestmark = pytest.mark.timeout(600)
KEY = "avatarchat:avatars:{}"


def library(renderer, avatar, idle: Path, cache: Path, redis: Redis, quotas: Quotas | None = None) -> AvatarLibrary:
    """One process's library (a node's or a worker's), with its own landmark cache on disk."""
    store = RedisAvatarStore(redis, Keys(), ttl_s=60, max_bytes=Limits().max_bytes)
    return AvatarLibrary(renderer, avatar, idle, cache, Limits(), quotas or Quotas(uploads_per_client=0), Metrics(),
                         shared=store)


def counted(lib: AvatarLibrary, result: str) -> float:
    return lib.metrics.avatar_shared.labels(result=result)._value.get()


def jpeg_with_metadata() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    buf = io.BytesIO()
    Image.fromarray(mf.photo_bgr()[:, :, ::-1]).save(buf, "JPEG", exif=exif, quality=92)
    return buf.getvalue()


@pytest.fixture
async def idle(renderer, avatar, data_dir) -> Path:
    return await asyncio.to_thread(build_idle_clip, renderer, avatar, data_dir / "avatars")


async def test_an_upload_on_one_node_is_registered_on_another_for_its_session_only(
        redis: Redis, renderer, avatar, idle: Path, tmp_path: Path) -> None:
    a = library(renderer, avatar, idle, tmp_path / "a", redis)
    b = library(renderer, avatar, idle, tmp_path / "b", redis)
    entry = await a.add("s1", "client", jpeg_with_metadata())

    source = await redis.hget(KEY.format("s1"), f"s:{entry.id}")
    assert source[:8] == b"\x89PNG\r\n\x1a\n" and b"SecretCam" not in source  # our re-encoding, not the upload
    assert 0 < await redis.ttl(KEY.format("s1")) <= 60  # the session's TTL

    assert [x["avatar_id"] for x in await b.listing("s1")] == ["default", entry.id]
    assert (await b.listing("s1"))[1] == entry.wire()
    assert (await b.preview(entry.id, "s1"))[:3] == b"\xff\xd8\xff"
    face = await b.face(entry.id, "s1")
    assert np.array_equal(face.frames, entry.avatar.frames)  # the same pixels on every node
    assert np.array_equal(face.frame_landmarks, entry.avatar.frame_landmarks)  # and A's registration of them
    assert face.id == entry.avatar.id and not (tmp_path / "b").exists()  # nothing detected or cached on B's disk
    assert await b.face(entry.id, "s1") is face and counted(b, "registered") == 1 and counted(b, "hit") == 1
    assert (await b.idle_clip(await b.find(entry.id, "s1"))).is_file()

    for lib in (a, b):  # another session: it does not exist, on the node that took it and on the other
        assert await lib.face(entry.id, "s2") is avatar
        assert [x["avatar_id"] for x in await lib.listing("s2")] == ["default"]
        for ask in (lib.find(entry.id, "s2"), lib.preview(entry.id, "s2"), lib.remove(entry.id, "s2"),
                    lib.find(entry.id, None)):
            with pytest.raises(UnknownAvatar):
                await ask

    await b.remove(entry.id, "s1")  # deleted through B: gone from Redis and from A's cache at its next use
    assert await redis.exists(KEY.format("s1")) == 0
    assert await a.face(entry.id, "s1") is avatar and counted(a, "gone") == 1
    assert a.metrics.avatars._value.get() == 0 and not (tmp_path / "a" / entry.avatar.id).exists()
    await a.aclose()
    await b.aclose()


async def test_a_video_upload_decodes_to_the_same_frames_everywhere(redis: Redis, renderer, avatar, idle: Path,
                                                                    tmp_path: Path) -> None:
    a = library(renderer, avatar, idle, tmp_path / "a", redis)
    b = library(renderer, avatar, idle, tmp_path / "b", redis)
    entry = await a.add("s1", "client", mf.photo_video(1.0))
    assert (await redis.hget(KEY.format("s1"), f"s:{entry.id}"))[4:8] == b"ftyp"  # re-encoded MP4
    face = await b.face(entry.id, "s1")
    assert len(face.frames) == 25 and np.array_equal(face.frames, entry.avatar.frames)  # no jump between nodes
    assert np.array_equal(face.frame_landmarks, entry.avatar.frame_landmarks)  # no face tracking on B
    await a.aclose()
    await b.aclose()


async def test_the_quota_is_the_clusters_and_each_process_keeps_a_bounded_cache(redis: Redis, renderer, avatar,
                                                                                 idle: Path, tmp_path: Path) -> None:
    quotas = Quotas(per_session=2, uploads_per_client=0, max_mb=1.0)  # one photo's frames (~0.7 MB) fit, two do not
    a = library(renderer, avatar, idle, tmp_path / "a", redis, quotas)
    b = library(renderer, avatar, idle, tmp_path / "b", redis, quotas)
    first = await a.add("s1", "client", mf.PHOTO.read_bytes())
    second = await b.add("s1", "client", mf.png(mf.photo_bgr()[:, ::-1]))
    with pytest.raises(UploadRefused) as refused:
        await a.add("s1", "client", mf.PHOTO.read_bytes())
    assert refused.value.code == "too_many_avatars" and refused.value.status == 429

    await a.face(second.id, "s1")  # registering the second drops the first, least recently used, from A
    assert a.metrics.avatars._value.get() == 1 and a.metrics.avatar_bytes._value.get() < 1e6
    again = await a.face(first.id, "s1")  # still in Redis: registered again
    assert np.array_equal(again.frames, first.avatar.frames) and counted(a, "registered") == 2
    await a.aclose()
    await b.aclose()


async def test_stored_landmarks_that_do_not_fit_the_frames_are_detected_again(redis: Redis, renderer, avatar,
                                                                            idle: Path, tmp_path: Path) -> None:
    a = library(renderer, avatar, idle, tmp_path / "a", redis)
    b = library(renderer, avatar, idle, tmp_path / "b", redis)
    entry = await a.add("s1", "client", mf.PHOTO.read_bytes())
    buf = io.BytesIO()
    np.savez(buf, landmarks=np.zeros((3, 478, 3), np.float32))  # three frames' worth for a photo
    await redis.hset(KEY.format("s1"), f"l:{entry.id}", buf.getvalue())
    face = await b.face(entry.id, "s1")
    assert (tmp_path / "b" / face.id / "landmarks.npz").is_file()  # detected here
    assert np.abs(face.frame_landmarks - entry.avatar.frame_landmarks).max() < 1.0  # the same face
    await a.aclose()
    await b.aclose()


async def test_saving_the_session_renews_its_avatars_ttl(redis: Redis, renderer, avatar, idle: Path,
                                                          tmp_path: Path) -> None:
    a = library(renderer, avatar, idle, tmp_path / "a", redis)
    await a.add("s1", "client", mf.PHOTO.read_bytes())
    await redis.expire(KEY.format("s1"), 5)
    await RedisSessionStore(redis, Keys(), ttl_s=60, history_turns=10).save("s1", {"history": []})
    assert await redis.ttl(KEY.format("s1")) > 5
    await a.aclose()


# -- real processes ---------------------------------------------------------------------------------------------
class Cluster:
    def __init__(self, redis: RedisServer, a: str, b: str, procs: Processes) -> None:
        self.redis, self.a, self.b, self.procs = redis, a, b, procs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = RedisServer()
    server.start()
    root = tmp_path_factory.mktemp("avatar-cluster")
    procs = Processes(server.url, root, AVATARCHAT_MOTION_SCALE="0", AVATARCHAT_AVATAR_UPLOADS_PER_CLIENT="0",
                      AVATARCHAT_RENDER_THREADS="1", AVATARCHAT_REDIS_JOB_TIMEOUT_S="120")
    try:
        a = procs.web("web-a", AVATARCHAT_DATA_DIR=str(root / "a"))
        b = procs.web("web-b", AVATARCHAT_DATA_DIR=str(root / "b"))
        procs.worker("worker", AVATARCHAT_DATA_DIR=str(root / "w"))
        wait_until(lambda: len(live_workers(a)) == 1, 180, "the worker")
        yield Cluster(server, a, b, procs)
    finally:
        procs.stop()
        server.stop()


def test_an_upload_through_node_a_is_the_face_node_b_and_the_worker_use(cluster: Cluster) -> None:
    c = cluster
    session = httpx.post(c.a + "/session", timeout=30).json()["session_id"]
    r = httpx.post(c.a + "/avatars", data={"session_id": session},
                   files={"file": ("me.jpg", mf.PHOTO.read_bytes(), "image/jpeg")}, timeout=120)
    assert r.status_code == 201, r.text
    body = r.json()
    aid = body["avatar_id"]

    listed = httpx.get(c.b + "/avatars", params={"session_id": session}, timeout=30).json()
    assert listed["current"] == aid
    assert [x["avatar_id"] for x in listed["avatars"]] == ["default", "grace", "ada", aid]  # the bundled gallery
    assert httpx.get(c.b + body["preview_url"], timeout=30).content[:3] == b"\xff\xd8\xff"

    frame = first_clip(c.b, session, post_timeout_s=120, timeout_s=180)  # chat through B; a worker renders it
    assert frame.shape == (body["height"], body["width"], 3)
    assert np.abs(frame.astype(np.float32) - uploaded_rgb(frame.shape)).mean() < 8  # the uploaded face
    assert "registered from the shared store" in c.procs.log("worker")

    idle = httpx.get(c.b + body["idle_url"], timeout=120)  # B registers it to build the idle loop
    assert idle.status_code == 200 and decode_clip(idle.content).frames[0].shape == frame.shape
    metrics = httpx.get(c.b + "/metrics", timeout=30).text
    assert 'avatarchat_avatar_shared_total{result="registered"} 1.0' in metrics

    client = c.redis.client()
    ttl = client.ttl(KEY.format(session))
    assert 0 < ttl <= 900  # AVATARCHAT_SESSION_IDLE_S
    assert client.hget(KEY.format(session), f"m:{aid}") is not None


def test_another_session_gets_404_on_every_node(cluster: Cluster) -> None:
    c = cluster
    owner = httpx.post(c.a + "/session", timeout=30).json()["session_id"]
    other = httpx.post(c.b + "/session", timeout=30).json()["session_id"]
    aid = httpx.post(c.a + "/avatars", data={"session_id": owner},
                     files={"file": ("me.jpg", mf.PHOTO.read_bytes(), "image/jpeg")}, timeout=120).json()["avatar_id"]
    for base in (c.a, c.b):
        listed = httpx.get(base + "/avatars", params={"session_id": other}, timeout=30).json()
        assert aid not in [x["avatar_id"] for x in listed["avatars"]]
        for path in (f"/avatars/{aid}/preview.jpg", f"/avatars/{aid}/idle.mp4"):
            for params in ({"session_id": other}, {}):
                r = httpx.get(base + path, params=params, timeout=60)
                assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_avatar", (base, path, r.text)
        r = httpx.post(base + "/chat", json={"session_id": other, "message": "hi", "avatar": aid}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_avatar"
        assert httpx.delete(base + f"/avatars/{aid}", params={"session_id": other}, timeout=30).status_code == 404

    assert httpx.delete(c.b + f"/avatars/{aid}", params={"session_id": owner}, timeout=30).status_code == 204
    assert c.redis.client().exists(KEY.format(owner)) == 0
    gone = httpx.get(c.a + f"/avatars/{aid}/preview.jpg", params={"session_id": owner}, timeout=30)
    assert gone.status_code == 404  # deleted through B, gone on A
    listed = httpx.get(c.a + "/avatars", params={"session_id": owner}, timeout=30).json()
    assert listed["current"] == "default" and json.dumps(listed).count(aid) == 0
