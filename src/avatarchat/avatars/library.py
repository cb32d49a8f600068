"""The avatars a server can show: the bundled one (the gallery, open to every session) and the faces each session
uploaded (private to it). Owns upload quotas, registration off the event loop, the idle and listening clips of
each avatar, and clean-up when the owning session is gone.

An uploaded avatar's public id is random (``u-`` and 16 url-safe characters), never the content hash: two
sessions uploading the same picture get different ids, and an id says nothing about whose it is. A session
asking for an avatar it may not use gets the same 404 as for one that never existed.

With a ``shared`` store (Redis mode, avatars/shared.py) the uploads live there, under their session, and what
this library holds of them is a cache: an avatar is registered here the first time this process needs it
(a clip to render, an idle loop to serve), kept while used, and the least recently used ones are dropped
beyond ``Quotas.max_mb``. Every use asks the store whether the avatar still exists, so one deleted or expired
on any node is gone on all of them.
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
from avatarchat.avatars.shared import SharedAvatars, encode_source, pack_landmarks, unpack_landmarks
from avatarchat.errors import AvatarChatError, UnknownAvatar, UploadRefused
from avatarchat.metrics import Metrics
from avatarchat.render.avatar import content_id, register_frames
from avatarchat.render.base import Avatar, Renderer
from avatarchat.render.idle import build_idle_clip, build_listening_clip
from avatarchat.render.landmarks import FaceMesh

log = logging.getLogger(__name__)
DEFAULT_ID = "default"
UPLOAD_PREFIX = "u-"


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
    used: float = field(default_factory=time.monotonic)  # last use (the shared mode's cache drops the oldest)
    building: bool = False  # its idle loop is being built (or was)

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
    max_mb: float = 1024.0  # decoded frames of all uploaded avatars together, in MB (memory); shared: the cache


class AvatarLibrary:
    def __init__(self, renderer: Renderer, default: Avatar, default_idle: Path, cache_dir: Path, limits: Limits,
                 quotas: Quotas, metrics: Metrics, default_name: str = "Ava",
                 shared: SharedAvatars | None = None) -> None:
        self.renderer = renderer
        self.shared = shared
        self._fetching: dict[tuple[str, str], asyncio.Future[Entry]] = {}  # registrations from the store, running
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

    async def load_gallery(self, directory: Path, voice_id: Callable[[str], str], strict: bool = True) -> None:
        """Offer every avatar of a gallery directory (avatars/gallery.py) to all sessions; ``voice_id`` resolves
        an avatar's voice. An unknown voice stops the start-up (``strict``: the operator's gallery) or leaves the
        avatar with the session's voice (the bundled gallery, whose voices a server may not have). Each idle
        loop is built when first asked for (a worker never is), then kept on disk."""
        for item in read_index(directory):
            avatar = await asyncio.to_thread(self.renderer.register, Path(directory) / item.file)
            voice = None
            if item.voice:
                try:
                    voice = voice_id(item.voice)
                except AvatarChatError:
                    if strict:
                        raise
                    log.warning("gallery avatar %s: no voice %s here; it speaks with the session's voice", item.id,
                                item.voice)
            self._entries[item.id] = Entry(item.id, item.name, "gallery", avatar, _face_of(avatar),
                                           _jpeg(avatar.image), asyncio.get_running_loop().create_future(),
                                           voice=voice)
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

    async def face(self, avatar_id: str | None, session_id: str | None) -> Avatar:
        """The face a job of ``session_id`` renders (the pipeline asks before each clip); shared, an upload is
        registered here on its first use. One deleted or expired meanwhile renders the default face."""
        if not avatar_id or self.shared is None or not avatar_id.startswith(UPLOAD_PREFIX):
            return self.avatar(avatar_id)
        try:
            return (await self.find(avatar_id, session_id)).avatar
        except UnknownAvatar:
            return self.default.avatar

    async def find(self, avatar_id: str, session_id: str | None) -> Entry:
        """``get``, which in shared mode finds the uploads of ``session_id`` made on any node."""
        entry = self._entries.get(avatar_id)
        if self.shared is None or (entry is not None and entry.owner is None):
            return self.get(avatar_id, session_id)
        if session_id is None or not await self.shared.exists(session_id, avatar_id):
            if entry is not None and entry.owner == session_id:
                self.metrics.avatar_shared.labels(result="gone").inc()
                self._drop([entry])  # deleted through another node, or expired with its session
            raise UnknownAvatar("No avatar with this id; GET /avatars?session_id=... lists the ones you can use.")
        if entry is not None and entry.owner == session_id:
            entry.used = time.monotonic()
            self.metrics.avatar_shared.labels(result="hit").inc()
            return entry
        return await self._fetch(avatar_id, session_id)

    async def listing(self, session_id: str) -> list[dict]:
        """What GET /avatars lists: the gallery, then the session's own uploads (oldest first)."""
        gallery = [e.wire() for e in self._entries.values() if e.owner is None]
        if self.shared is None:
            return gallery + [e.wire() for e in self._entries.values() if e.owner == session_id]
        own = await self.shared.metas(session_id)
        return gallery + [{k: v for k, v in m.items() if k != "created"} for m in own]

    async def preview(self, avatar_id: str, session_id: str | None) -> bytes:
        """The avatar's rest frame as JPEG (shared: from the store, with no registration needed)."""
        entry = self._entries.get(avatar_id)
        if self.shared is None or (entry is not None and entry.owner is None):
            return self.get(avatar_id, session_id).preview
        data = await self.shared.preview(session_id, avatar_id) if session_id else None
        if data is None:
            raise UnknownAvatar("No avatar with this id; GET /avatars?session_id=... lists the ones you can use.")
        return data

    async def idle_clip(self, entry: Entry) -> Path:
        if not entry.idle.done() and not entry.building:
            self._build_idle(entry)  # an avatar registered from the store builds its loop when first asked
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

    # -- the shared store's avatars, registered here --------------------------------------------------------
    async def _fetch(self, avatar_id: str, session_id: str) -> Entry:
        """One registration per avatar however many jobs and requests ask for it at once."""
        key = (session_id, avatar_id)
        pending = self._fetching.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._register_shared(avatar_id, session_id))
            self._fetching[key] = pending
            pending.add_done_callback(lambda _f: self._fetching.pop(key, None))
        return await asyncio.shield(pending)

    async def _register_shared(self, avatar_id: str, session_id: str) -> Entry:
        assert self.shared is not None
        got = await self.shared.source(session_id, avatar_id)
        if got is None:
            raise UnknownAvatar("No avatar with this id; GET /avatars?session_id=... lists the ones you can use.")
        meta, source, landmarks = got
        t0 = time.perf_counter()
        async with self._intake:  # one decode and registration at a time, uploads included
            media = await asyncio.to_thread(read_upload, source, self.limits)  # the upload's checks, again
            lm = unpack_landmarks(landmarks, media.frames)
            if lm is not None:  # the uploading node's registration of these very frames
                avatar = Avatar(id=content_id(media.frames), frames=media.frames, frame_landmarks=lm)
            else:
                avatar = await asyncio.to_thread(register_frames, media.frames, self.cache_dir,
                                                 f"shared {avatar_id}")
        face = meta.get("face") or {}
        entry = Entry(avatar_id, str(meta.get("name", "Your avatar")), "video" if media.is_video else "photo",
                      avatar, (face.get("x", 0), face.get("y", 0), face.get("width", 0), face.get("height", 0)),
                      _jpeg(avatar.image), asyncio.get_running_loop().create_future(), owner=session_id,
                      created=float(meta.get("created", time.time())))
        entry = self._entries.setdefault(avatar_id, entry)
        self._evict(keep=entry)
        self._gauge()
        self.metrics.avatar_shared.labels(result="registered").inc()
        log.info("avatar %s of session %s… registered from the shared store (%s, %d frame(s), landmarks %s) in "
                 "%.0f ms", avatar_id, session_id[:6], entry.kind, len(avatar.frames),
                 "shared" if lm is not None else "detected here", 1000 * (time.perf_counter() - t0))
        return entry

    def _evict(self, keep: Entry) -> None:
        """Shared mode: drop the least recently used uploads while they hold more than ``max_mb``."""
        while self._uploaded_mb() > self.quotas.max_mb:
            held = [e for e in self._entries.values() if e.owner is not None and e is not keep]
            if not held:
                return
            self._drop([min(held, key=lambda e: e.used)])

    # -- uploads ------------------------------------------------------------------------------------------
    async def add(self, session_id: str, client: str, data: bytes) -> Entry:
        """Check, decode and register an upload for ``session_id``; its idle loop is built in the background."""
        t0 = time.perf_counter()
        try:
            self._admit(session_id, client, await self._own(session_id))
            async with self._intake:
                media = await asyncio.to_thread(read_upload, data, self.limits)
                source = await self._source(media) if self.shared is not None else b""
                if source and media.is_video:  # register what every process will decode: the same pixels
                    media = await asyncio.to_thread(read_upload, source, self.limits)
                avatar, face = await asyncio.to_thread(self._register, media)
            # the session may have uploaded another meanwhile (shared: the store checks as it adds)
            self._admit(session_id, client, await self._own(session_id), rate=False)
            entry = Entry(f"{UPLOAD_PREFIX}{secrets.token_urlsafe(12)}", "Your avatar",
                          "video" if media.is_video else "photo", avatar, face, _jpeg(avatar.image),
                          asyncio.get_running_loop().create_future(), owner=session_id)
            if self.shared is not None and not await self.shared.put(
                    session_id, entry.id, {**entry.wire(), "created": entry.created}, source,
                    pack_landmarks(avatar.frame_landmarks), entry.preview, self.quotas.per_session):
                raise self._too_many(self.quotas.per_session)
        except UploadRefused as exc:
            self.metrics.avatar_uploads.labels(result=exc.code).inc()
            log.info("avatar upload of session %s… refused: %s", session_id[:6], exc.code)
            raise
        self._entries[entry.id] = entry
        if self.shared is not None:
            self._evict(keep=entry)
        self._build_idle(entry)
        self.metrics.avatar_uploads.labels(result="ok").inc()
        self.metrics.avatar_register.observe(time.perf_counter() - t0)
        self._gauge()
        log.info("avatar %s of session %s… registered (%s, %d frame(s)) in %.0f ms", entry.id, session_id[:6],
                 entry.kind, len(avatar.frames), 1000 * (time.perf_counter() - t0))
        return entry

    async def _own(self, session_id: str) -> int:
        """Uploads ``session_id`` holds (shared: on every node)."""
        if self.shared is not None:
            return await self.shared.count(session_id)
        return sum(1 for e in self._entries.values() if e.owner == session_id)

    async def _source(self, media: Media) -> bytes:
        """What the shared store keeps of an upload: its checked frames re-encoded, within the upload limit."""
        source = await asyncio.to_thread(encode_source, media, self.limits)
        if len(source) > self.limits.max_bytes:
            raise UploadRefused("too_large", f"This video makes {len(source) / 1e6:.0f} MB once re-encoded; the limit "
                                             f"is {self.limits.max_bytes / 1e6:.0f} MB. Send a shorter video.", 413)
        return source

    @staticmethod
    def _too_many(own: int) -> UploadRefused:
        return UploadRefused("too_many_avatars", f"This session already has {own} avatars, the most it may hold; "
                                                 "delete one (DELETE /avatars/<id>) before adding another.", 429)

    def _admit(self, session_id: str, client: str, own: int, rate: bool = True) -> None:
        if own >= self.quotas.per_session:
            raise self._too_many(own)
        if rate and not self._take_turn(client):
            raise UploadRefused("rate_limited", "Too many uploads from this address; wait a minute and try again.",
                                429)
        if self.shared is None and self._uploaded_mb() >= self.quotas.max_mb:  # shared: the cache drops the oldest
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
        entry.building = True

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
    async def remove(self, avatar_id: str, session_id: str) -> None:
        entry = self._entries.get(avatar_id)
        if self.shared is None or (entry is not None and entry.owner is None):
            entry = self.get(avatar_id, session_id)
            if entry.owner is None:
                raise UploadRefused("gallery_avatar", "Gallery avatars cannot be deleted.", 409)
        elif not await self.shared.delete(session_id, avatar_id):
            raise UnknownAvatar("No avatar with this id; GET /avatars?session_id=... lists the ones you can use.")
        if entry is not None and entry.owner == session_id:
            self._drop([entry])

    def retain(self, live_sessions: Iterable[str]) -> int:
        """Forget the uploads of sessions that are gone (reaped, evicted); returns how many went. (Shared: of
        sessions this process no longer holds; the store keeps them while their session lives.)"""
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
        for t in [*self._tasks, *self._fetching.values()]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._fetching.values(), return_exceptions=True)


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


def _face_of(avatar: Avatar) -> tuple[int, int, int, int]:
    pts = avatar.landmarks[:, :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
