"""Several TTS backends behind one, addressed by voice ids ``backend:voice`` (``piper:en_US-joe-medium``,
``espeak:ko``, ``google:ko-KR-Neural2-A``).

Sessions pick any listed voice; when the text's script does not suit the chosen voice's language (Korean
typed to an English voice, or the reverse), the router switches to that language's default voice, so the
avatar never reads Hangul with English letter rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from avatarchat.errors import BadRequest
from avatarchat.scripts import HANGUL, LATIN
from avatarchat.tts.base import TTS, Speech


def script_language(text: str) -> str | None:
    """'ko' if the text is mostly Hangul, 'en' if mostly Latin letters, None if it has neither."""
    hangul, latin = len(HANGUL.findall(text)), len(LATIN.findall(text))
    if hangul == 0 and latin == 0:
        return None
    return "ko" if hangul * 3 >= latin else "en"


def voice_language(backend: str, voice: str) -> str | None:
    """The language a voice speaks, from its name; None for voices that speak any language (OpenAI's)."""
    if backend == "openai":
        return None
    return re.split(r"[-_+]", voice.lower(), maxsplit=1)[0] or None


@dataclass(frozen=True)
class Voice:
    id: str
    backend: str
    name: str
    language: str | None

    def wire(self) -> dict[str, str | None]:
        return {"id": self.id, "backend": self.backend, "name": self.name, "language": self.language}


class VoiceRouter:
    name = "router"

    def __init__(self, backends: dict[str, TTS], primary: str, language_defaults: dict[str, str]) -> None:
        """``backends`` by name; the ``primary`` backend's default voice is the router's; ``language_defaults``
        maps a language to a voice id. Language defaults whose backend is not present are ignored."""
        self.backends = backends
        self.primary = primary
        self._voices: dict[str, Voice] = {}
        for bname, tts in backends.items():
            for v in tts.voices():
                vid = f"{bname}:{v}"
                self._voices[vid] = Voice(vid, bname, v, voice_language(bname, v))
        primary_voice = backends[primary].default_voice
        self.default_voice = self.resolve(f"{primary}:{primary_voice}").id
        self.language_defaults = {lang: v for lang, v in language_defaults.items() if v in self._voices}

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
        """The voice that will speak ``text``: the chosen one, unless the text's script needs another language."""
        voice = self.resolve(voice_id)
        lang = script_language(text)
        if lang and voice.language and lang != voice.language and lang in self.language_defaults:
            return self.resolve(self.language_defaults[lang])
        return voice

    def warm_up(self) -> None:
        for tts in self.backends.values():
            warm = getattr(tts, "warm_up", None)
            if warm is not None:
                warm()

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        v = self.choose(text, voice)
        return await self.backends[v.backend].synthesize(text, v.name)

    async def aclose(self) -> None:
        for tts in self.backends.values():
            close = getattr(tts, "aclose", None)
            if close is not None:
                await close()
