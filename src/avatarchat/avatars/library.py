"""The avatars a server can show: the bundled one (the gallery, open to every session) and the faces each session
uploaded (private to it). Owns upload quotas, registration off the event loop, the idle and listening clips of
each avatar, and clean-up when the owning session is gone.

An uploaded avatar's public id is random (``u-`` and 16 url-safe characters), never the content hash: two
sessions uploading the same picture get different ids, and an id says nothing about whose it is. A session
asking for an avatar it may not use gets the same 404 as for one that never existed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avatarchat.avatars.gallery import read_index
from avatarchat.avatars.intake import Limits, Media, face_box, read_upload
from avatarchat.errors import UnknownAvatar, UploadRefused
from avatarchat.metrics import Metrics
from avatarchat.render.avatar import register_frames
from avatarchat.render.base import Avatar, Renderer
from avatarchat.render.idle import build_idle_clip, build_listening_clip
from avatarchat.render.landmarks import FaceMesh

log = logging.getLogger(__name__)
DEFAULT_ID = "default"


@dataclass
class Entry:
    """One avatar a session may choose: the registered face, its preview, its idle loop."""

    id: str
    name: str
    kind: str  # "gallery", "photo" or "video"
    avatar: Avatar
    face: tuple[int, int, int, int]  # x, y, w, h of the face in the rest frame
    preview: bytes  # the rest frame as JPEG
    idle: asyncio.Future[Path]
    owner: str | None = None  # the session that uploaded it; None: the gallery, open to all
    voice: str | None = None  # a gallery avatar's own voice, taken when a session switches to it
    created: float = field(default_factory=time.time)

    def wire(self) -> dict:
        """What GET /avatars and POST /avatars answer; a private avatar's URLs carry its session's token."""
        query = f"?session_id={self.owner}" if self.owner else ""
        w, h = self.avatar.size
        x, y, fw, fh = self.face
        return {"avatar_id": self.id, "name": self.name, "kind": self.kind,
                "preview_url": f"/avatars/{self.id}/preview.jpg{query}",
                "idle_url": "/avatar/idle.mp4" if self.id == DEFAULT_ID else f"/avatars/{self.id}/idle.mp4{query}",
                "listen_url": ("/avatar/listen.mp4" if self.id == DEFAULT_ID
                               else f"/avatars/{self.id}/listen.mp4{query}"),
                "voice": self.voice, "width": w, "height": h, "frames": len(self.avatar.frames),
                "face": {"x": x, "y": y, "width": fw, "height": fh}}


@dataclass(frozen=True)
class Quotas:
    per_session: int = 3  # uploaded avatars one session may hold
    uploads_per_client: int = 10  # uploads per minute one client address may make (0: no limit)
    max_mb: float = 1024.0  # decoded frames of all uploaded avatars together, in MB (memory)


class AvatarLibrary:
    def __init__(self, renderer: Renderer, default: Avatar, default_idle: Path, cache_dir: Path, limits: Limits,
                 quotas: Quotas, metrics: Metrics, default_name: str = "Ava") -> None:
        self.renderer = renderer
        self.cache_dir = Path(cache_dir)
        self.limits = limits
        self.quotas = quotas
        self.metrics = metrics
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()  # client -> its uploads' times, last minute
        self._intake = asyncio.Semaphore(1)  # one upload decodes and registers at a time: bounded CPU and memory
        idle: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        idle.set_result(default_idle)
        self.default = Entry(DEFAULT_ID, default_name, "gallery", default, _face_of(default), _jpeg(default.image),
                             idle)
        self._entries: dict[str, Entry] = {DEFAULT_ID: self.default}
        self._tasks: set[asyncio.Task] = set()
        self._listening: dict[str, asyncio.Future[Path]] = {}  # entry id -> its listening loop, built on demand

    async def load_gallery(self, directory: Path, voice_id: Callable[[str], str]) -> None:
        """Offer every avatar of a gallery directory (avatars/gallery.py) to all sessions; ``voice_id`` resolves
        an avatar's voice (an unknown one stops the start-up)."""
        for item in read_index(directory):
            avatar = await asyncio.to_thread(self.renderer.register, Path(directory) / item.file)
            idle_path = await asyncio.to_thread(build_idle_clip, self.renderer, avatar, self.cache_dir)
            idle: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
            idle.set_result(idle_path)
            voice = voice_id(item.voice) if item.voice else None
            self._entries[item.id] = Entry(item.id, item.name, "gallery", avatar, _face_of(avatar),
                                           _jpeg(avatar.image), idle, voice=voice)
            log.info("gallery avatar %s (%s) ready", item.id, item.name)

    # -- what a session sees ---------------------------------------------------------------------------------
    def visible(self, session_id: str) -> list[Entry]:
        """The gallery, then the session's own uploads (oldest first)."""
        return [e for e in self._entries.values() if e.owner is None or e.owner == session_id]

    def get(self, avatar_id: str, session_id: str | None) -> Entry:
        entry = self._entries.get(avatar_id)
        if entry is None or (entry.owner is not None and entry.owner != session_id):
            raise UnknownAvatar("No avatar with this id; GET /avatars?session_id=... lists the ones you can use.")
        return entry

    def avatar(self, avatar_id: str | None) -> Avatar:
        """The face to render for a job: a session's choice, or the default once that avatar is gone."""
        entry = self._entries.get(avatar_id or DEFAULT_ID, self.default)
        return entry.avatar

    async def idle_clip(self, entry: Entry) -> Path:
        return await asyncio.shield(entry.idle)

    def prepare_listening(self, entry: Entry) -> asyncio.Future[Path]:
        """Start building ``entry``'s listening loop (render/idle.py) in the background, once; it is cached on
        disk beside the idle loop, so this is quick for an avatar seen before."""
        future = self._listening.get(entry.id)
        if future is None:
            future = self._listening[entry.id] = asyncio.get_running_loop().create_future()

            async def build() -> None:
                try:
                    path = await asyncio.to_thread(build_listening_clip, self.renderer, entry.avatar, self.cache_dir)
                    if not future.done():
                        future.set_result(path)
                except Exception as exc:  # noqa: BLE001 - the page listens on its idle loop instead
                    log.exception("listening clip of avatar %s failed", entry.id)
                    if not future.done():
                        future.set_exception(exc)

            task = asyncio.create_task(build())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def listening_clip(self, entry: Entry) -> Path:
        """The listening loop the page plays while the person speaks (built on first request)."""
        return await asyncio.shield(self.prepare_listening(entry))

    # -- uploads ------------------------------------------------------------------------------------------
    async def add(self, session_id: str, client: str, data: bytes) -> Entry:
        """Check, decode and register an upload for ``session_id``; its idle loop is built in the background."""
        t0 = time.perf_counter()
        try:
            self._admit(session_id, client)
            async with self._intake:
                media = await asyncio.to_thread(read_upload, data, self.limits)
                avatar, face = await asyncio.to_thread(self._register, media)
        except UploadRefused as exc:
            self.metrics.avatar_uploads.labels(result=exc.code).inc()
            log.info("avatar upload of session %s… refused: %s", session_id[:6], exc.code)
            raise
        self._admit(session_id, client, rate=False)  # the session may have uploaded another meanwhile
        entry = Entry(f"u-{secrets.token_urlsafe(12)}", "Your avatar", "video" if media.is_video else "photo",
                      avatar, face, _jpeg(avatar.image), asyncio.get_running_loop().create_future(), owner=session_id)
        self._entries[entry.id] = entry
        self._build_idle(entry)
        self.metrics.avatar_uploads.labels(result="ok").inc()
        self.metrics.avatar_register.observe(time.perf_counter() - t0)
        self._gauge()
        log.info("avatar %s of session %s… registered (%s, %d frame(s)) in %.0f ms", entry.id, session_id[:6],
                 entry.kind, len(avatar.frames), 1000 * (time.perf_counter() - t0))
        return entry

    def _admit(self, session_id: str, client: str, rate: bool = True) -> None:
        own = sum(1 for e in self._entries.values() if e.owner == session_id)
        if own >= self.quotas.per_session:
            raise UploadRefused("too_many_avatars", f"This session already has {own} avatars, the most it may hold; "
                                                    "delete one (DELETE /avatars/<id>) before adding another.", 429)
        if rate and not self._take_turn(client):
            raise UploadRefused("rate_limited", "Too many uploads from this address; wait a minute and try again.",
                                429)
        if self._uploaded_mb() >= self.quotas.max_mb:
            raise UploadRefused("server_full", "The server holds as many uploaded avatars as it can right now; use a "
                                               "gallery avatar or try again later.", 503)

    def _take_turn(self, client: str) -> bool:
        """At most ``uploads_per_client`` uploads a minute per client (the least recent of 10000 clients forgotten,
        so a flood of addresses cannot grow memory)."""
        if self.quotas.uploads_per_client <= 0:
            return True
        now = time.monotonic()
        times = self._recent.pop(client, None) or deque()
        while times and now - times[0] > 60.0:
            times.popleft()
        self._recent[client] = times
        while len(self._recent) > 10000:
            self._recent.popitem(last=False)
        if len(times) >= self.quotas.uploads_per_client:
            return False
        times.append(now)
        return True

    def _register(self, media: Media) -> tuple[Avatar, tuple[int, int, int, int]]:
        """Blocking: the one face of the rest frame, then the landmarks of every frame."""
        first = media.frames[0]
        with FaceMesh(static=True, max_faces=2) as mesh:
            faces = mesh.detect_all(first)
        face = face_box(faces, first, self.limits.min_face_px)
        return register_frames(media.frames, self.cache_dir, "upload", first_face=faces[0]), face

    def _build_idle(self, entry: Entry) -> None:
        async def build() -> None:
            try:
                path = await asyncio.to_thread(build_idle_clip, self.renderer, entry.avatar, self.cache_dir)
                if not entry.idle.done():  # not dropped meanwhile
                    entry.idle.set_result(path)
            except Exception as exc:  # noqa: BLE001 - the page keeps the previous idle loop; clips still render
                log.exception("idle clip of avatar %s failed", entry.id)
                if not entry.idle.done():
                    entry.idle.set_exception(exc)

        task = asyncio.create_task(build())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- clean-up ------------------------------------------------------------------------------------------
    def remove(self, avatar_id: str, session_id: str) -> None:
        entry = self.get(avatar_id, session_id)
        if entry.owner is None:
            raise UploadRefused("gallery_avatar", "Gallery avatars cannot be deleted.", 409)
        self._drop([entry])

    def retain(self, live_sessions: Iterable[str]) -> int:
        """Forget the uploads of sessions that are gone (reaped, evicted); returns how many went."""
        live = set(live_sessions)
        gone = [e for e in self._entries.values() if e.owner is not None and e.owner not in live]
        self._drop(gone)
        return len(gone)

    def _drop(self, entries: list[Entry]) -> None:
        for entry in entries:
            self._entries.pop(entry.id, None)
            if not entry.idle.done():
                entry.idle.cancel()
            listening = self._listening.pop(entry.id, None)
            if listening is not None and not listening.done():
                listening.cancel()
            in_use = {e.avatar.id for e in self._entries.values()}
            if entry.avatar.id not in in_use:
                self.renderer.forget(entry.avatar)
                shutil.rmtree(self.cache_dir / entry.avatar.id, ignore_errors=True)
        if entries:
            self._gauge()

    def _uploaded_mb(self) -> float:
        return sum(e.avatar.frames.nbytes for e in self._entries.values() if e.owner is not None) / 1e6

    def _gauge(self) -> None:
        self.metrics.avatars.set(sum(1 for e in self._entries.values() if e.owner is not None))
        self.metrics.avatar_bytes.set(self._uploaded_mb() * 1e6)

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


def _face_of(avatar: Avatar) -> tuple[int, int, int, int]:
    pts = avatar.landmarks[:, :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
