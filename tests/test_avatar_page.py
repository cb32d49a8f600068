"""The page and your own avatar (issue 21, headless Chromium): the idle loop and the next clip show an uploaded face;
the avatar dialog uploads a photo at phone size (progress, the face framed on the preview, the gallery, the next
reply), says in words why a picture was refused, and the stage is filled and framed on the face."""

from __future__ import annotations

import base64

import cv2
import httpx
import numpy as np
import pytest

from tests import media_files as mf

pytestmark = pytest.mark.browser


def test_the_page_loops_the_uploaded_avatar_and_its_clips_show_it(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page(bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.wait_for_function("document.getElementById('idle').currentTime > 0.2", timeout=15000)
    default_w = page.evaluate("document.getElementById('idle').videoWidth")
    session = page.evaluate("window.avatarchat.sessionId")
    r = httpx.post(server + "/avatars", data={"session_id": session},
                   files={"file": ("me.jpg", mf.PHOTO.read_bytes(), "image/jpeg")}, timeout=60)
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine["width"] != default_w

    page.evaluate("url => window.avatarchat.setAvatar(url)", mine["idle_url"])
    page.wait_for_function(f"(() => {{ const v = document.getElementById('idle'); return v.videoWidth === "
                           f"{mine['width']} && v.currentTime > 0.2 && !v.paused; }})()", timeout=30000)
    page.fill("#message", "Do I look different?")
    page.click("#send")
    page.wait_for_function(f"[...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown') "
                           f"&& v.currentTime > 0.2 && v.videoWidth === {mine['width']})", timeout=60000)
    assert page.evaluate("window.avatarchat.stats.errors") == []
    page.close()


# ---- the page's own avatar UI (issue 21 items 2 and 3), under the page's real CSP --------------------------------

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
CONNECTED = "() => document.getElementById('status').textContent === 'connected'"


def _open(browser, server: str, viewport: dict, errors: list[str] | None = None):  # noqa: F811
    mobile = viewport["width"] < 760
    context = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
    page = context.new_page()
    if errors is not None:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server + "/")
    page.wait_for_function(CONNECTED, timeout=15000)
    return context, page


def _current(server: str, page) -> str:
    r = httpx.get(server + "/avatars", params={"session_id": page.evaluate("window.avatarchat.sessionId")})
    return r.json()["current"]


def test_an_upload_through_the_page_frames_the_face_joins_the_gallery_and_speaks_the_next_reply(
        server: str, browser, output_dir) -> None:  # noqa: F811
    errors: list[str] = []
    context, page = _open(browser, server, PHONE, errors)
    chats: list[dict] = []
    page.on("request", lambda r: chats.append(r.post_data_json) if r.url.endswith("/chat") else None)
    page.click("#avatarbtn")
    page.wait_for_selector("#gallery .pick[data-id='default'][aria-pressed='true']", timeout=10000)
    page.set_input_files("#avatarfile", str(mf.PHOTO))
    page.wait_for_selector("#avatarpreview", state="visible", timeout=60000)
    page.wait_for_function("() => document.getElementById('previewimg').complete "
                           "&& document.getElementById('previewimg').naturalWidth > 0", timeout=10000)
    mine = page.evaluate("window.avatarchat.avatarState.uploaded[0]")
    listed = httpx.get(server + "/avatars", params={"session_id": page.evaluate("window.avatarchat.sessionId")}).json()
    entry = next(e for e in listed["avatars"] if e["avatar_id"] == mine)
    assert listed["current"] == mine

    # The face box is drawn where the server found the face, on the preview as shown.
    img, box = page.locator("#previewimg").bounding_box(), page.locator("#facebox").bounding_box()
    f, w, h = entry["face"], entry["width"], entry["height"]
    assert box["width"] > 20 and box["height"] > 20, box
    assert abs(box["x"] - img["x"] - f["x"] * img["width"] / w) < 3, (box, img, f)
    assert abs(box["y"] - img["y"] - f["y"] * img["height"] / h) < 3, (box, img, f)
    assert abs(box["width"] - f["width"] * img["width"] / w) < 4, (box, img, f)
    assert img["x"] >= 0 and img["x"] + img["width"] <= PHONE["width"]  # the preview fits the phone
    page.wait_for_selector(f"#gallery .pick[data-id='{mine}'][aria-pressed='true']", timeout=10000)
    assert page.locator("#gallery .pick").count() >= 2  # the bundled one, then the upload
    assert "speak" in page.inner_text("#avatarstate")
    said = page.evaluate("window.avatarchat.avatarState.said")
    assert said.index("Registering the face…") > 0 and said[0].startswith("Uploading"), said  # progress, then this
    page.screenshot(path=str(output_dir / "avatar-upload-390x844.png"))

    page.keyboard.press("Escape")  # the dialog closes from the keyboard
    page.wait_for_selector("#avatars", state="hidden")
    page.wait_for_function(f"() => {{ const v = document.getElementById('idle'); return v.videoWidth === {w} "
                           f"&& v.currentTime > 0.2; }}", timeout=30000)
    page.fill("#message", "Do I look like me now?")
    page.click("#send")
    page.wait_for_function(f"() => [...document.querySelectorAll('video.clip')].some(v => "
                           f"v.classList.contains('shown') && v.currentTime > 0.2 && v.videoWidth === {w})",
                           timeout=60000)
    assert chats and chats[-1]["avatar"] == mine  # the choice goes with the message
    page.screenshot(path=str(output_dir / "avatar-reply-390x844.png"))
    assert page.evaluate("window.avatarchat.stats.errors") == []
    page.reload()  # the same session: its idle loop is the uploaded face again, not the bundled one
    page.wait_for_function(CONNECTED, timeout=15000)
    page.wait_for_function(f"() => {{ const v = document.getElementById('idle'); return v.videoWidth === {w} "
                           f"&& v.currentTime > 0.2; }}", timeout=30000)
    context.close()
    assert not errors, errors  # nothing the CSP refused


def test_a_refused_picture_says_what_to_do_and_the_previous_avatar_stays(server: str, browser,  # noqa: F811
                                                                         tmp_path) -> None:
    blank = tmp_path / "blank.png"
    blank.write_bytes(mf.png(np.full((480, 480, 3), 170, np.uint8)))
    context, page = _open(browser, server, PHONE)
    page.wait_for_function("() => getComputedStyle(document.getElementById('layers'))"
                           ".getPropertyValue('--face-pos') !== ''", timeout=10000)  # the gallery has answered
    page.focus("#avatarbtn")
    page.keyboard.press("Enter")  # the dialog opens from the keyboard, focus inside it
    page.wait_for_selector("#avatars[open]", timeout=5000)
    assert page.evaluate("document.getElementById('avatars').contains(document.activeElement)")
    page.set_input_files("#avatarcamera", str(blank))
    page.wait_for_selector("#avatarstate.refused", timeout=30000)
    text = page.inner_text("#avatarstate")
    assert "No face was found" in text and "facing the camera" in text, text
    assert "{" not in text and "no_face" not in text  # words, not the wire format
    assert page.evaluate("window.avatarchat.avatarState.refused") == ["no_face"]
    assert page.locator("#avatarpreview").is_hidden()
    assert page.evaluate("window.avatarchat.avatar") in (None, "default")
    assert page.evaluate("document.getElementById('idle').src").endswith("/avatar/idle.mp4")
    assert _current(server, page) == "default"
    assert page.locator("#gallery .pick[data-id='default'][aria-pressed='true']").count() == 1
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_stage_is_filled_and_framed_on_the_face_without_letterbox_bars(server: str, browser, output_dir,  # noqa: F811
                                                                           viewport: dict) -> None:
    context, page = _open(browser, server, viewport)
    page.wait_for_function("() => document.getElementById('idle').currentTime > 0.3", timeout=15000)
    page.wait_for_function("() => getComputedStyle(document.getElementById('layers'))"
                           ".getPropertyValue('--face-pos') !== ''", timeout=10000)
    # Pixels: no black bar along any edge of the stage (the old contain fit left a quarter above and below).
    shot = cv2.imdecode(np.frombuffer(page.locator("#layers").screenshot(), np.uint8), cv2.IMREAD_GRAYSCALE)
    page.screenshot(path=str(output_dir / f"stage-{viewport['width']}x{viewport['height']}.png"))
    hh, ww = shot.shape
    m = max(3, int(0.04 * min(hh, ww)))  # beside the rounded corners
    edges = {"top": shot[2:6, m:-m], "bottom": shot[-6:-2, m:-m], "left": shot[m:-m, 2:6], "right": shot[m:-m, -6:-2]}
    for name, strip in edges.items():
        assert float(strip.mean()) > 25, (name, float(strip.mean()))
    stage = page.locator("#layers").bounding_box()
    fits = page.evaluate("[...document.querySelectorAll('#layers video')].map(v => { const s = getComputedStyle(v); "
                         "const r = v.getBoundingClientRect(); return [s.objectFit, s.objectPosition, r.x, r.y, "
                         "r.width, r.height]; })")
    assert len({tuple(f) for f in fits}) == 1, fits  # the three layers are drawn the same: no jump between them
    fit, position, x, y, bw, bh = fits[0]
    assert fit == "cover" and (x, y, bw, bh) == pytest.approx((stage["x"], stage["y"], stage["width"],
                                                               stage["height"]), abs=1)
    # The face's centre, where cover and the object-position put it, is near the stage's middle.
    default = next(e for e in httpx.get(server + "/avatars", params={"session_id": page.evaluate(
        "window.avatarchat.sessionId")}).json()["avatars"] if e["avatar_id"] == "default")
    w, h, f = default["width"], default["height"], default["face"]
    s = max(bw / w, bh / h)
    px, py = (float(p.rstrip("%")) / 100 for p in position.split())
    cx = px * (bw - w * s) + (f["x"] + f["width"] / 2) * s
    cy = py * (bh - h * s) + (f["y"] + f["height"] / 2) * s
    assert 0.35 < cx / bw < 0.65 and 0.3 < cy / bh < 0.6, (cx / bw, cy / bh, position)
    context.close()


def test_a_photo_dropped_on_the_stage_becomes_the_avatar(server: str, browser) -> None:  # noqa: F811
    context, page = _open(browser, server, DESKTOP)
    data = base64.b64encode(mf.PHOTO.read_bytes()).decode()
    page.evaluate("""b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'me.jpg', { type: 'image/jpeg' }));
        const stage = document.getElementById('layers');
        for (const type of ['dragover', 'drop']) stage.dispatchEvent(new DragEvent(type, { dataTransfer: dt,
            bubbles: true, cancelable: true }));
    }""", data)
    page.wait_for_selector("#avatars[open]", timeout=5000)  # the dialog shows the progress and the preview
    page.wait_for_selector("#avatarpreview", state="visible", timeout=60000)
    mine = page.evaluate("window.avatarchat.avatarState.uploaded[0]")
    assert mine and _current(server, page) == mine
    assert page.evaluate("window.avatarchat.avatar") == mine
    context.close()
