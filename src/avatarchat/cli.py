"""Command line: ``avatarchat serve`` runs the server (a web node in Redis mode); ``avatarchat worker`` runs a
speech worker (Redis mode); ``avatarchat say "text" -o out.mp4`` renders one clip; ``avatarchat listen FILE``
prints what is said in an audio or video file, with the server's VAD and ASR; ``avatarchat avatar add FILE --dir
DIR`` adds a face to a gallery directory a server can offer (``AVATARCHAT_AVATAR_GALLERY_DIR``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from avatarchat.errors import AvatarChatError
from avatarchat.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from avatarchat.server import create_app
    from avatarchat.server.logs import log_config
    from avatarchat.server.serving import listening_socket, uvicorn_options

    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    if args.with_worker and not settings.redis_url:
        print("avatarchat serve: --with-worker needs AVATARCHAT_REDIS_URL (without it speech runs in-process "
              "anyway)", file=sys.stderr)
        return 2
    sock = listening_socket(settings.host, settings.port)  # bound first, so port 0 is known before we print it
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"avatarchat: starting on http://{host}:{port} "
          f"(llm={settings.llm_backend}, tts={settings.tts_backend}, renderer={settings.renderer})", flush=True)
    app = create_app(settings, with_worker=args.with_worker)
    config = uvicorn.Config(app, host=settings.host, port=port, log_level=args.log_level.lower(),
                            log_config=log_config(), **uvicorn_options(settings))
    _draining_server(config, app).run(sockets=[sock])
    return 0


def _draining_server(config, app):  # noqa: ANN001, ANN202 - uvicorn is imported here, not at the module's top
    """uvicorn's server, told about SIGTERM/SIGINT before it waits for the requests in flight: the services stop
    speaking first and the pages are told so (``Services.drain_and_flush``), then uvicorn shuts down, so those
    requests end at once instead of rendering on until the graceful timeout and then failing with a 500. A
    second signal while that runs goes straight to uvicorn (a second Ctrl-C forces the exit)."""
    import asyncio

    import uvicorn

    class Server(uvicorn.Server):
        _draining = False
        _drainer: asyncio.Task | None = None

        def handle_exit(self, sig, frame) -> None:  # noqa: ANN001 - uvicorn's signature
            services = getattr(app.state, "services", None)
            if services is None or self._draining:
                super().handle_exit(sig, frame)
                return
            try:
                loop = asyncio.get_event_loop()
            except RuntimeError:  # no loop running: nothing to drain
                super().handle_exit(sig, frame)
                return
            self._draining = True

            async def drain_then_exit() -> None:
                try:
                    await services.drain_and_flush()
                finally:
                    super(Server, self).handle_exit(sig, frame)

            def start() -> None:
                self._drainer = loop.create_task(drain_then_exit())  # held: the loop keeps only a weak reference

            loop.call_soon_threadsafe(start)

    return Server(config)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        print("avatarchat worker: set AVATARCHAT_REDIS_URL (the Redis the web nodes use)", file=sys.stderr)
        return 2
    if args.metrics_port is not None:
        settings.worker_metrics_port = args.metrics_port
    asyncio.run(run_worker(settings))
    return 0


async def run_worker(settings: Settings, renderer=None) -> None:
    """Claim and render speech jobs until SIGTERM or SIGINT (``renderer``: any, as tests give)."""
    import signal

    from prometheus_client import start_http_server

    from avatarchat.llm import EchoLLM
    from avatarchat.services import start_services

    # Workers never write replies: the echo LLM keeps start-up from loading a real one.
    services = await start_services(settings, llm=EchoLLM(), renderer=renderer, housekeeping=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.worker_metrics_port:
            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host,
                              registry=services.metrics.registry)
        worker = services.start_worker()
        print(f"avatarchat worker {worker.name}: claiming jobs from {settings.redis_url.split('@')[-1]}", flush=True)
        await stop.wait()
    finally:
        await services.aclose()


def _say(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from avatarchat.encode import encode_clip
    from avatarchat.render import frame_count

    if args.avatar:
        settings.avatar_path = Path(args.avatar)
    if args.motion is not None:
        settings.motion_scale = args.motion
    text = " ".join(args.text).strip()
    if not text:
        print("avatarchat say: give some text to speak", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    services, speech, voice = asyncio.run(_voice(settings, text, args.voice))
    t_tts = time.perf_counter()
    renderer = services.renderer
    n = frame_count(speech.duration_s, renderer.fps)
    frames = tqdm(renderer.render(services.avatar, speech, voice=voice), total=n, unit="frame", desc="rendering",
                  file=sys.stderr)
    out = encode_clip(Path(args.output), frames, speech.pcm, speech.sample_rate, renderer.fps)
    t_end = time.perf_counter()
    print(f"wrote {out} ({speech.duration_s:.2f} s of speech by {voice}, {n} frames; set-up + tts {t_tts - t0:.2f} s, "
          f"render+encode {t_end - t_tts:.2f} s)")
    return 0


async def _voice(settings: Settings, text: str, voice_id: str | None):
    """The server's own services (backends, avatar, voice calibration), voicing ``text`` once."""
    from avatarchat.llm import EchoLLM
    from avatarchat.pipeline.jobs import SpeechJob
    from avatarchat.pipeline.reply import new_id
    from avatarchat.services import start_services

    # preload=False: one clip loads only the voice it speaks (an English clip need not load Kokoro's Korean);
    # the clip is rendered here, so no render processes are started for it
    services = await start_services(settings.model_copy(update={"render_processes": False}), llm=EchoLLM(),
                                    housekeeping=False, preload=False)
    try:
        voice = services.tts.choose(text, voice_id).id
        speech = await services.pipeline.voice(SpeechJob(id=new_id(), reply="cli", seq=0, text=text, voice=voice))
    finally:
        await services.aclose()
    return services, speech, voice


def _listen(args: argparse.Namespace, settings: Settings) -> int:
    from avatarchat.asr import SAMPLE_RATE, asr_language, create_asr
    from avatarchat.asr.audio import read_audio
    from avatarchat.asr.vad import SileroModel, speech_segments

    path = Path(args.file)
    if not path.is_file():
        print(f"avatarchat listen: no such file: {path}", file=sys.stderr)
        return 2
    pcm = read_audio(path)
    asr = create_asr(settings)
    language = asr_language(settings, asr)
    segments = speech_segments(SileroModel(), pcm, settings.vad_threshold, settings.vad_hangover_ms)
    pad = SAMPLE_RATE // 5  # Whisper hears a word's first consonant better with a little lead-in
    texts = []
    for start, end in segments:
        text = asr.transcribe(pcm[max(0, start - pad): end + pad], language).text
        if args.segments:
            print(f"{start / SAMPLE_RATE:7.2f} {end / SAMPLE_RATE:7.2f}  {text}")
        if text:
            texts.append(text)
    if not args.segments:
        print(" ".join(texts))
    return 0


def _avatar(args: argparse.Namespace, settings: Settings) -> int:
    from avatarchat.avatars.gallery import add
    from avatarchat.avatars.intake import Limits
    from avatarchat.render import create_renderer

    st = settings
    limits = Limits(max_bytes=st.avatar_max_upload_bytes, max_pixels=st.avatar_max_pixels,
                    max_side_px=st.avatar_max_side_px, max_video_s=st.avatar_max_video_s,
                    max_video_side=st.avatar_max_video_side, out_side=st.render_max_side,
                    timeout_s=st.avatar_decode_timeout_s, min_face_px=st.avatar_min_face_px)
    name = args.name or Path(args.file).stem
    if args.voice:  # a voice this configuration lacks would stop the server's start-up: refuse it now
        from avatarchat.tts import create_tts

        create_tts(settings).resolve(args.voice)
    item = add(Path(args.dir), Path(args.file), name, args.voice, limits)
    avatar = create_renderer(settings).register(Path(args.dir) / item.file)  # warms the landmark cache
    print(f"added {item.id} ({item.name}, {len(avatar.frames)} frame(s) of {avatar.size[0]}x{avatar.size[1]}) to "
          f"{args.dir}; serve it with AVATARCHAT_AVATAR_GALLERY_DIR={args.dir}")
    return 0


def _motion_scale(text: str) -> float:
    """``--motion``: a number from 0 to 3 (the range of the motion_scale setting)."""
    value = float(text)
    if not 0.0 <= value <= 3.0:
        raise argparse.ArgumentTypeError("must be between 0 and 3")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatarchat", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the chat server")
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)
    p_serve.add_argument("--with-worker", action="store_true",
                         help="Redis mode: also run a speech worker in this process (small set-ups)")
    p_worker = sub.add_parser("worker", help="Redis mode: voice, render and store speech jobs")
    p_worker.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0: none)")
    p_say = sub.add_parser("say", help="render one lip-synced clip offline")
    p_say.add_argument("text", nargs="+")
    p_say.add_argument("-o", "--output", default="out.mp4")
    p_say.add_argument("--voice", default=None, help="voice id such as piper:en_US-joe-medium or espeak:ko")
    p_say.add_argument("--avatar", default=None, help="avatar image (default: the bundled portrait)")
    p_avatar = sub.add_parser("avatar", help="manage a gallery directory of avatars a server can offer")
    avatar_sub = p_avatar.add_subparsers(dest="avatar_command", required=True)
    p_add = avatar_sub.add_parser("add", help="check a photo or short video and add it to a gallery directory")
    p_add.add_argument("file")
    p_add.add_argument("--dir", required=True, help="the gallery directory (AVATARCHAT_AVATAR_GALLERY_DIR)")
    p_add.add_argument("--name", default=None, help="shown in the gallery (default: the file's name)")
    p_add.add_argument("--voice", default=None, help="its voice, e.g. piper:en_US-joe-medium, one the server's "
                       "settings list in GET /voices (default: none, the session's voice)")
    p_listen = sub.add_parser("listen", help="print the transcript of an audio or video file (WAV, MP3, MP4...)")
    p_listen.add_argument("file")
    p_listen.add_argument("--segments", action="store_true", help="one line per speech segment: start end text")


    p_say.add_argument("--motion", type=_motion_scale, default=None, metavar="SCALE",
                       help="head, brow and gaze motion: 0 = still head, 1 = default (setting motion_scale)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        command = {"serve": _serve, "worker": _worker, "say": _say, "listen": _listen,
                   "avatar": _avatar}[args.command]
        return command(args, settings)
    except AvatarChatError as exc:
        print(f"avatarchat: {exc.message}", file=sys.stderr)
        return 1
