"""One typed settings object, read from ``AVATARCHAT_*`` environment variables and an optional ``.env``.

Nothing else in the package reads the environment: the app factory receives a ``Settings`` and hands the
parts each layer needs down to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from importlib.resources import files


def bundled_avatar() -> Path:
    """The public-domain portrait shipped inside the package (see assets/ASSETS.md)."""
    return Path(str(files("avatarchat").joinpath("assets/astronaut.png")))


class Settings(BaseSettings):
    """Every knob of the server. Field docs are repeated in README.md's settings table."""

    model_config = SettingsConfigDict(env_prefix="AVATARCHAT_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(7135, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    data_dir: Path = Field(Path("data"), description="Where clips and the avatar cache are written.")

    llm_backend: Literal["faq", "echo", "openai"] = Field("faq", description="Who writes the reply.")
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible endpoint.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="Bearer key for the endpoint (may be empty).")
    openai_model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    openai_timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for the LLM endpoint.")
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

    tts_backend: Literal["piper", "espeak", "google", "openai"] = Field("piper", description="Who speaks the reply.")
    piper_voice: str = Field("en_US-joe-medium", description="Piper voice: a bundled voice name or a .onnx path "
                                                              "(listed under its file name).")
    piper_threads: int = Field(1, ge=1, le=16, description="CPU threads Piper may use (the rest are left to rendering).")
    voice_en: str = Field("piper:en_US-joe-medium",
                          description="Voice id for Latin-script text when the session's voice cannot read Latin.")
    voice_ko: str = Field("espeak:ko",
                          description="Voice id for Hangul text when the session's voice cannot read Hangul.")
    espeak_voice: str = Field("ko", description="espeak-ng voice (`espeak-ng --voices`: ko, en-us, ja, ...).")
    espeak_rate: int = Field(175, ge=80, le=450, description="espeak-ng speaking rate, words per minute.")
    espeak_pitch: int = Field(50, ge=0, le=99, description="espeak-ng pitch, 0 to 99.")
    espeak_max_procs: int = Field(2, ge=1, le=32, description="espeak-ng processes that may run at once "
                                                               "(further sentences wait for a free one).")
    google_tts_api_key: SecretStr = Field(SecretStr(""), description="API key for Google Cloud Text-to-Speech.")
    google_tts_base_url: str = Field("https://texttospeech.googleapis.com", description="Google TTS endpoint.")
    google_tts_voice: str = Field("ko-KR-Neural2-A", description="Google voice; language code = its first two parts.")
    openai_tts_model: str = Field("gpt-4o-mini-tts", description="Speech model for the openai TTS backend.")
    openai_tts_voice: str = Field("alloy", description="Voice for the openai TTS backend.")
    tts_timeout_s: float = Field(30.0, gt=0, description="Per-request timeout for the cloud TTS backends.")

    renderer: Literal["meshwarp"] = Field("meshwarp", description="Lip-sync renderer.")
    avatar_path: Path | None = Field(None, description="Avatar image (png/jpg); default: the bundled portrait.")
    render_max_side: int = Field(512, ge=64, le=2048, description="Longest side of rendered video, in pixels.")

    max_message_chars: int = Field(2000, ge=1, description="Longest accepted chat message.")
    session_queue_size: int = Field(16, ge=1, description="Speech jobs one session may have waiting.")
    max_sessions: int = Field(200, ge=1, description="Concurrent sessions before /chat answers 503.")
    history_turns: int = Field(20, ge=0, description="User/assistant turns of history kept per session.")
    render_threads: int = Field(2, ge=1, description="Worker threads for TTS, rendering and encoding.")
    session_idle_s: float = Field(900.0, gt=0, description="A session with no socket and nothing to say is closed "
                                                            "after this many idle seconds.")
    max_speech_wait_s: float = Field(15.0, gt=0, description="Admission control: when a new reply's first clip "
                                      "would wait longer than this behind others' speech, the reply comes as "
                                      "text only (a speech_skipped event).")
    render_stall_s: float = Field(30.0, gt=0, description="/healthz answers 503 when renders are running but "
                                  "none has produced a frame for this many seconds.")
    clip_ttl_s: float = Field(3600.0, gt=0, description="Finished clips are deleted this many seconds after writing.")

    def secrets(self) -> tuple[str, ...]:
        """The configured API keys, masked wherever a log line might quote them."""
        keys = (self.openai_api_key, self.google_tts_api_key)
        return tuple(k.get_secret_value() for k in keys if k.get_secret_value())

    def resolved_avatar(self) -> Path:
        return self.avatar_path if self.avatar_path is not None else bundled_avatar()
