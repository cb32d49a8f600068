"""The command line: `avatarchat say` renders a playable clip with a progress bar; bad input fails clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import decode_clip, wait_healthy


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, AVATARCHAT_DATA_DIR=str(cwd / "data"))
    return subprocess.run([sys.executable, "-m", "avatarchat", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_say_renders_a_clip(tmp_path: Path) -> None:
    out = tmp_path / "hello.mp4"
    r = run_cli("say", "Hello, I am your avatar.", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "rendering" in r.stderr and "100%" in r.stderr  # the progress bar ran to the end
    assert "by piper:en_US-joe-medium+female" in r.stdout  # the default voice matches the default face
    clip = decode_clip(out.read_bytes())
    assert clip.fps == 25 and abs(clip.video_duration_s - clip.audio_duration_s) <= 1 / 25
    assert clip.audio.std() > 0.01


def test_say_reports_bad_avatar_and_voice(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((64, 64, 3), 128, np.uint8))
    r = run_cli("say", "Hi.", "--avatar", str(blank), cwd=tmp_path)
    assert r.returncode == 1 and "No face found" in r.stderr
    r = run_cli("say", "Hi.", "--voice", "nope:none", cwd=tmp_path)
    assert r.returncode == 1 and "Unknown voice" in r.stderr


def test_listen_prints_the_transcript_and_its_segments(tmp_path: Path, tts) -> None:
    import numpy as np

    from tests.voice_audio import noise, silence, sounds_like, speak, write_wav

    audio = np.concatenate([silence(0.8), speak(tts, "Good morning, how are you?"), noise(1.5),
                            speak(tts, "Please tell me a story."), silence(0.8)])
    wav = write_wav(tmp_path / "two.wav", audio)
    r = run_cli("--log-level", "WARNING", "listen", str(wav), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sounds_like(r.stdout, "Good morning, how are you? Please tell me a story.", at_least=0.8), r.stdout
    r = run_cli("--log-level", "WARNING", "listen", "--segments", str(wav), cwd=tmp_path)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2, r.stdout
    start, end = (float(x) for x in lines[0].split()[:2])
    assert abs(start - 0.8) < 0.15 and "morning" in lines[0].lower()
    r = run_cli("listen", str(tmp_path / "missing.wav"), cwd=tmp_path)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_say_motion_option_is_documented_and_checked(tmp_path: Path) -> None:
    r = run_cli("say", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--motion" in r.stdout and "0 = still head" in r.stdout
    r = run_cli("say", "Hi.", "--motion", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "between 0 and 3" in r.stderr
    out = tmp_path / "still.mp4"
    r = run_cli("say", "Hello there.", "--motion", "0", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert decode_clip(out.read_bytes()).fps == 25


def test_listen_reads_the_speech_of_an_mp4_and_an_mp3(tmp_path: Path, tts) -> None:
    """A clip as the server writes it (H.264 + AAC), and an MP3, decoded by PyAV like any audio file."""
    import av
    import numpy as np

    from avatarchat.encode import encode_clip
    from tests.voice_audio import silence, sounds_like, speak

    pcm = np.concatenate([silence(0.5), speak(tts, "Please tell me a story."), silence(0.5)])
    mp4 = encode_clip(tmp_path / "clip.mp4", [np.zeros((64, 64, 3), np.uint8)] * int(len(pcm) / 16000 * 25 + 1),
                      pcm, 16000, 25)
    mp3 = tmp_path / "clip.mp3"
    with av.open(str(mp3), "w") as out:
        stream = out.add_stream("mp3", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    for path in (mp4, mp3):
        r = run_cli("--log-level", "WARNING", "listen", str(path), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert sounds_like(r.stdout, "Please tell me a story."), (path.suffix, r.stdout)


def test_serve_on_port_0_says_its_port_and_keeps_secrets_out_of_its_log(tmp_path: Path) -> None:
    """``serve --port 0`` prints the port the OS gave (it printed ``:0``); uvicorn's access and socket lines
    show neither the access key nor the session token (both travel in the socket's query string)."""
    import re

    import httpx
    from websockets.sync.client import connect

    env = dict(os.environ, AVATARCHAT_DATA_DIR=str(tmp_path / "data"), AVATARCHAT_LLM_BACKEND="echo",
               AVATARCHAT_ACCESS_KEYS="sesame-0123456789", AVATARCHAT_VOICE_ENABLED="false")
    proc = subprocess.Popen([sys.executable, "-m", "avatarchat", "serve", "--host", "127.0.0.1", "--port", "0"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", first).group(1))  # type: ignore[union-attr]
        assert port > 0, first
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, 180, lambda: proc.poll() is None)
        key = {"authorization": "Bearer sesame-0123456789"}
        sid = httpx.post(base + "/session", headers=key, timeout=10).json()["session_id"]
        with connect(f"ws://127.0.0.1:{port}/ws?session_id={sid}&key=sesame-0123456789") as ws:
            ws.recv(timeout=10)
        httpx.get(base + f"/voices?key=sesame-0123456789&session_id={sid}", headers=key, timeout=10)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert "/voices" in out and "WebSocket" in out, out[-2000:]  # the lines are there ...
    assert "sesame-0123456789" not in out and sid not in out, out[-2000:]  # ... without the secrets


def test_avatar_add_checks_the_face_and_fills_a_gallery_directory(tmp_path: Path) -> None:
    import json

    from tests import media_files as mf

    gallery = tmp_path / "gallery"
    r = run_cli("avatar", "add", str(mf.PHOTO), "--dir", str(gallery), "--name", "Grace Hopper", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "added grace-hopper" in r.stdout
    index = json.loads((gallery / "gallery.json").read_text())
    assert index["avatars"] == [{"id": "grace-hopper", "name": "Grace Hopper", "file": "grace-hopper.png",
                                 "voice": None}]
    two = tmp_path / "two.png"
    two.write_bytes(mf.two_faces())
    r = run_cli("avatar", "add", str(two), "--dir", str(gallery), cwd=tmp_path)
    assert r.returncode == 1 and "2 faces were found" in r.stderr
    assert len(json.loads((gallery / "gallery.json").read_text())["avatars"]) == 1
    r = run_cli("avatar", "add", str(mf.PHOTO), "--dir", str(gallery), "--name", "Grace", "--voice", "piper:nobody",
                cwd=tmp_path)
    assert r.returncode == 1 and "Unknown voice 'piper:nobody'" in r.stderr  # refused before the server would be
    r = run_cli("avatar", "add", str(mf.PHOTO), "--dir", str(gallery), "--name", "Grace", "--voice",
                "espeak:en-gb-x-rp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((gallery / "gallery.json").read_text())["avatars"][1] == {
        "id": "grace", "name": "Grace", "file": "grace.png", "voice": "espeak:en-gb-x-rp"}
