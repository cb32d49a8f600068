"""Lip-sync renderers, chosen by name in settings."""

from __future__ import annotations

from collections.abc import Callable

from avatarchat.render.avatar import register_avatar
from avatarchat.render.base import FPS, Avatar, Renderer, VoiceCalibrated, frame_count
from avatarchat.render.idle import build_idle_clip
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import Settings

REGISTRY: dict[str, Callable[[Settings], Renderer]] = {
    "meshwarp": lambda s: MeshWarpRenderer(cache_dir=s.data_dir / "avatars", max_side=s.render_max_side,
                                          motion_scale=s.motion_scale),
}


def create_renderer(settings: Settings) -> Renderer:
    return REGISTRY[settings.renderer](settings)


__all__ = ["Avatar", "Renderer", "VoiceCalibrated", "FPS", "frame_count", "MeshWarpRenderer", "create_renderer",
           "REGISTRY", "register_avatar", "build_idle_clip"]
