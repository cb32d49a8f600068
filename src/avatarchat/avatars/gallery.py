"""A gallery directory: avatars an operator registered with ``avatarchat avatar add FILE --dir DIR``, which a
server started with ``AVATARCHAT_AVATAR_GALLERY_DIR=DIR`` offers to every session beside its default avatar.

The directory holds ``gallery.json`` (``{"avatars": [{"id", "name", "file", "voice"}]}``) and one media file per
avatar under a name made from its id. ``add`` puts a file through the same checks as an upload (avatars/intake.py)
and writes only decoded pixels: a photo as PNG, a video re-encoded as MP4, so no metadata of the original stays.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avatarchat.avatars.intake import Limits, face_box, read_upload
from avatarchat.errors import BadRequest, ConfigError
from avatarchat.render.landmarks import FaceMesh

INDEX = "gallery.json"
GALLERY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class GalleryItem:
    id: str
    name: str
    file: str
    voice: str | None = None


def slug(name: str) -> str:
    """A gallery id from a name: lower case letters, digits and dashes."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    if not s or not GALLERY_ID.match(s) or s == "default":
        raise BadRequest(f"{name!r} makes no usable gallery id; give a name with letters or digits.")
    return s


def read_index(directory: Path) -> list[GalleryItem]:
    """The gallery's avatars; an empty list when the directory has none yet."""
    index = Path(directory) / INDEX
    if not index.is_file():
        return []
    try:
        raw = json.loads(index.read_text())
        items = [GalleryItem(**{k: a.get(k) for k in ("id", "name", "file", "voice")}) for a in raw["avatars"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{index} is not a gallery index ({exc}); rebuild it with `avatarchat avatar add`.") from exc
    for item in items:
        if not GALLERY_ID.match(item.id or "") or Path(item.file).name != item.file:
            raise ConfigError(f"{index}: bad entry {item.id!r} (ids: a-z, 0-9, '-'; files: names in the directory).")
    return items


def add(directory: Path, source: Path, name: str, voice: str | None, limits: Limits) -> GalleryItem:
    """Check ``source`` as an upload would be checked and add it to the gallery in ``directory`` (replacing an
    avatar of the same id)."""
    from avatarchat.encode import encode_clip
    from avatarchat.render.media import save_image

    media = read_upload(Path(source).read_bytes(), limits)
    with FaceMesh(static=True, max_faces=2) as mesh:
        face_box(mesh.detect_all(media.frames[0]), media.frames[0], limits.min_face_px)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    item_id = slug(name)
    target = directory / f"{item_id}.{'mp4' if media.is_video else 'png'}"
    if media.is_video:
        encode_clip(target, list(media.frames), np.zeros(1, np.int16), 16000, limits.fps)
    else:
        save_image(target, media.frames[0])
    item = GalleryItem(item_id, name, target.name, voice)
    items = [i for i in read_index(directory) if i.id != item_id] + [item]
    tmp = directory / f"{INDEX}.tmp"
    tmp.write_text(json.dumps({"avatars": [asdict(i) for i in items]}, indent=1))
    tmp.replace(directory / INDEX)
    return item
