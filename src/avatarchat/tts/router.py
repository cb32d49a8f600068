"""Several TTS backends behind one, addressed by voice ids ``backend:voice`` (``piper:en_US-joe-medium``,
``espeak:de``, ``google:ko-KR-Neural2-A``).

Sessions pick any listed voice, and every voice declares the language it speaks (see ``languages.py``). A
sentence keeps the chosen voice whenever that language can read the sentence's dominant script: German text
to ``espeak:de``, French to ``espeak:fr``. Only a sentence in a script the language cannot read (Hangul typed
to a German voice, English to a Korean one) goes to that script's default voice, so the avatar never reads
Hangul with German letter rules. Voices of unknown language (OpenAI's, which speak anything) never switch,
and sentences without letters keep the chosen voice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from avatarchat.data import Speech
from avatarchat.errors import BadRequest
from avatarchat.languages import SCRIPT_LANGUAGE, voice_language, voice_scripts
from avatarchat.tts.base import TTS, VoiceLabel
from avatarchat.tts.health import BackendHealth
from avatarchat.writing import dominant_script

__all__ = ["Voice", "VoiceRouter", "voice_language"]


@dataclass(frozen=True)
class Voice:
    id: str
    backend: str
    name: str
    language: str | None
    scripts: frozenset[str] | None = None  # what its language reads; None: anything
    about: VoiceLabel | None = field(default=None, compare=False)  # the backend's human label

    def reads(self, script: str | None) -> bool:
        return script is None or self.scripts is None or script in self.scripts

    def wire(self) -> dict[str, str | None]:
        about = self.about or VoiceLabel(label=self.name)
        return {"id": self.id, "backend": self.backend, "name": self.name, "language": self.language,
                "label": about.label, "language_name": about.language_name, "gender": about.gender,
                "tier": about.tier, "group": about.group}


class VoiceRouter(TTS):
    """A TTS made of TTSs: it lists their voices as ``backend:voice`` ids and passes each sentence to one."""

    name = "router"

    def __init__(self, backends: dict[str, TTS], primary: str, script_defaults: dict[str, str],
                 network_concurrency: int = 8) -> None:
        """``backends`` by name; the ``primary`` backend's default voice is the router's; ``script_defaults`` maps
        a script (``Latin``, ``Hangul``: see ``scripts.SCRIPTS``) to the voice id that speaks it when the chosen
        voice cannot. Defaults whose voice is not listed are ignored; a script without one goes to a voice of
        its main language (Cyrillic to ``ru``, Greek to ``el``: ``languages.SCRIPT_LANGUAGE``) if there is one.
        ``network_concurrency``: calls at once to each network-bound (cloud) backend."""
        self.backends = backends
        self.primary = primary
        self._network = {name: asyncio.Semaphore(network_concurrency)
                         for name, tts in backends.items() if tts.network_bound}
        self.health = BackendHealth()  # calls in flight and failures in a row, per backend (/healthz)
        self._voices: dict[str, Voice] = {}
        for bname, tts in backends.items():
            for v in tts.voices():
                vid = f"{bname}:{v}"
                self._voices[vid] = Voice(vid, bname, v, voice_language(bname, v), voice_scripts(bname, v),
                                          tts.describe(v))
        primary_voice = backends[primary].default_voice
        self.default_voice = self.resolve(f"{primary}:{primary_voice}").id
        self.script_defaults = self._catalogue_defaults()
        self.script_defaults.update({s: v for s, v in script_defaults.items() if v in self._voices})

    def _catalogue_defaults(self) -> dict[str, str]:
        """For each script, a listed voice of its main language that reads it: the primary backend's first, then
        the voice named exactly by the language (``espeak:ru``), then the plainest name (``en-gb``, not ``en-029``)."""
        out: dict[str, str] = {}
        for script, lang in SCRIPT_LANGUAGE.items():
            fits = [v for v in self._voices.values() if v.language == lang and v.scripts and script in v.scripts]
            if fits:
                out[script] = min(fits, key=lambda v: (v.backend != self.primary, v.name != lang, len(v.name), v.id)).id
        return out

    def resolve(self, voice_id: str | None) -> Voice:
        """A voice id (or None for the default) -> Voice; unknown ids are a clear error."""
        if voice_id is None:
            return self._voices[self.default_voice]
        voice = self._voices.get(voice_id) if isinstance(voice_id, str) else None
        if voice is None:
            # Only listed ids: a voice id reaches a backend as a file name or a command argument.
            raise BadRequest(f"Unknown voice {str(voice_id)[:40]!r}; choose one of the ids GET /voices lists "
                             "(such as 'piper:en_US-joe-medium').")
        return voice

    def voices(self) -> list[str]:
        return sorted(self._voices)

    def catalogue(self) -> list[Voice]:
        return [self._voices[v] for v in self.voices()]

    def choose(self, text: str, voice_id: str | None) -> Voice:
        """The voice that will speak ``text``: the chosen one, unless its language cannot read the text's
        dominant script and that script has a default voice."""
        voice = self.resolve(voice_id)
        script = dominant_script(text)
        if voice.reads(script) or script not in self.script_defaults:
            return voice
        return self.resolve(self.script_defaults[script])

    def warm_up(self) -> None:
        """Warm every backend (blocking), in order; the first failure stops the start-up."""
        for tts in self.backends.values():
            tts.warm_up()

    def preload(self, voices: list[str] | None = None) -> None:
        """Preload each backend's share of ``voices`` (None: the default voice and the scripts' defaults)."""
        wanted = [self.resolve(v) for v in (voices or [self.default_voice, *self.script_defaults.values()])]
        for name, tts in self.backends.items():
            mine = sorted({v.name for v in wanted if v.backend == name})
            if mine:
                tts.preload(mine)

    async def synthesize(self, text: str, voice: str | None = None, *, route: bool = True,
                         alone: bool = False) -> Speech:
        """Speak ``text`` with the voice ``choose`` picks, or with exactly ``voice`` when ``route`` is False
        (calibration: a voice must be heard saying its own calibration words, whatever their script). ``alone``:
        nothing else is using the CPU, so the backend may use every core it can (``TTS.synthesize_alone``)."""
        v = self.choose(text, voice) if route else self.resolve(voice)
        backend = self.backends[v.backend]
        speak = backend.synthesize_alone if alone else backend.synthesize
        limit = self._network.get(v.backend)
        if limit is None:
            with self.health.call(v.backend):
                return await speak(text, v.name)
        async with limit:
            with self.health.call(v.backend):
                return await speak(text, v.name)

    async def synthesize_alone(self, text: str, voice: str | None = None) -> Speech:
        return await self.synthesize(text, voice, alone=True)

    def needs_cpu(self, text: str, voice: str | None = None) -> bool:
        """Whether speaking ``text`` with ``voice`` works this machine's CPU (False for a cloud backend, which
        only waits on the network and so needs no CPU slot)."""
        return not self.backends[self.choose(text, voice).backend].network_bound

    async def aclose(self) -> None:
        """Close every backend, even when one fails to close; then raise the first failure."""
        failures: list[Exception] = []
        for tts in self.backends.values():
            try:
                await tts.aclose()
            except Exception as exc:  # noqa: BLE001 - the others must still be closed
                failures.append(exc)
        if failures:
            raise failures[0]
