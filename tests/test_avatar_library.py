"""The avatar library without a server: uploads go with their session, their cache with them; the intake's
checks on their own."""

from __future__ import annotations

import asyncio

import pytest

from avatarchat.avatars.intake import Limits, read_upload, sniff
from avatarchat.avatars.library import AvatarLibrary, Quotas
from avatarchat.errors import UnknownAvatar, UploadRefused
from avatarchat.metrics import Metrics
from avatarchat.render.idle import build_idle_clip
from tests import media_files as mf


async def test_uploads_go_with_their_session_and_leave_no_cache_behind(renderer, avatar, data_dir) -> None:
    idle = await asyncio.to_thread(build_idle_clip, renderer, avatar, data_dir / "avatars")
    lib = AvatarLibrary(renderer, avatar, idle, data_dir / "avatars", Limits(), Quotas(uploads_per_client=0),
                        Metrics())
    # A picture no other test uploads (mirrored), so its cache dir is this library's alone.
    entry = await lib.add("s1", "client", mf.png(mf.photo_bgr()[:, ::-1]))
    kept = await lib.add("s2", "client", mf.PHOTO.read_bytes())
    cache = data_dir / "avatars" / entry.avatar.id
    assert (cache / "landmarks.npz").is_file() and (await lib.idle_clip(entry)).is_file()
    assert lib.avatar(entry.id) is entry.avatar
    with pytest.raises(UnknownAvatar):
        lib.get(entry.id, "s2")

    assert lib.retain(["s2"]) == 1  # s1 was reaped
    assert not cache.exists()
    assert lib.avatar(entry.id) is avatar  # a job still naming it renders the default face
    with pytest.raises(UnknownAvatar):
        lib.get(entry.id, "s1")
    assert lib.get(kept.id, "s2") is kept
    assert [e.id for e in lib.visible("s1")] == ["default"]
    await lib.aclose()


@pytest.mark.parametrize("data,kind", [(b"\xff\xd8\xff\xe0", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"),
                                       (b"RIFF\0\0\0\0WEBPVP8 ", "webp"), (b"\x1a\x45\xdf\xa3", "webm"),
                                       (b"\0\0\0\x18ftypisom", "mp4"), (b"\0\0\0\x14ftypqt  ", "mov")])
def test_the_format_comes_from_the_bytes(data: bytes, kind: str) -> None:
    assert sniff(data + b"\0" * 16) == kind


def test_a_header_claiming_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(UploadRefused) as e:
        read_upload(mf.png_claiming(7000, 7000), Limits(max_pixels=36_000_000))
    assert e.value.code == "too_many_pixels" and e.value.status == 413


def test_exif_orientation_is_applied() -> None:
    """A landscape JPEG whose EXIF says 'rotate 90': the frames come out portrait."""
    import io

    from PIL import Image

    img = Image.fromarray(mf.photo_bgr()[:, :, ::-1]).transpose(Image.Transpose.ROTATE_90)  # now landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to view
    exif[0x010F] = "SecretCam"  # metadata that must not survive
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    frames = read_upload(buf.getvalue(), Limits()).frames
    assert frames.shape[1] > frames.shape[2]  # upright: portrait again


async def test_uploads_are_rate_limited_per_client(renderer, avatar, data_dir) -> None:
    idle = await asyncio.to_thread(build_idle_clip, renderer, avatar, data_dir / "avatars")
    lib = AvatarLibrary(renderer, avatar, idle, data_dir / "avatars", Limits(), Quotas(uploads_per_client=1),
                        Metrics())
    await lib.add("s1", "10.0.0.1", mf.PHOTO.read_bytes())
    with pytest.raises(UploadRefused) as e:
        await lib.add("s2", "10.0.0.1", mf.PHOTO.read_bytes())
    assert e.value.code == "rate_limited" and e.value.status == 429
    await lib.add("s3", "10.0.0.2", mf.PHOTO.read_bytes())  # another client has its own turn
    await lib.aclose()
