"""``espeak``: offline formant TTS in the ~100 languages of Debian's ``espeak-ng`` (Korean by default).

We run the ``espeak-ng`` command rather than binding ``libespeak-ng``: the library keeps one global,
non-thread-safe synthesizer per process, while a child process per sentence runs in parallel with the others,
never blocks the event loop, and can simply be killed when a reply is interrupted.

``Speech.phonemes`` stays empty. The command reports timed phonemes only through ``--pho``, which works with
MBROLA voices alone (there is none for Korean); timed phoneme events exist only in the C library's callback
API. The renderer derives the mouth from the audio, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import threading


from avatarchat.errors import BackendError, BadRequest
from avatarchat.tts.base import Speech, speech_from_wav

INSTALL_HINT = "install espeak-ng: apt-get install espeak-ng"
_NO_VOICE = "voice does not exist"  # espeak-ng's stderr for an unknown -v


class EspeakTTS:
    """Speaks through ``espeak-ng --stdout``; ``voice`` is any ``-v`` value (``ko``, ``en-us``, ``en-us+f3``)."""

    name = "espeak"

    def __init__(self, default_voice: str = "ko", rate: int = 175, pitch: int = 50, binary: str = "espeak-ng",
                 timeout_s: float = 60.0) -> None:
        self.default_voice = default_voice
        self._rate = rate
        self._pitch = pitch
        self._binary = binary
        self._timeout_s = timeout_s
        self._voices: list[str] | None = None
        self._lock = threading.Lock()

    def _exe(self) -> str:
        path = shutil.which(self._binary)
        if path is None:
            raise BackendError(f"espeak-ng is not installed ({self._binary!r} is not on PATH); {INSTALL_HINT}")
        return path

    def _args(self, voice: str) -> list[str]:
        return [self._exe(), "--stdin", "-b", "1", "-v", voice, "-s", str(self._rate), "-p", str(self._pitch)]

    def warm_up(self) -> None:
        """Fail at start-up rather than on the first reply when the binary or the configured voice is missing."""
        try:
            done = subprocess.run([*self._args(self.default_voice), "-q"], input=b"a", capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError(f"espeak-ng could not run: {exc}; {INSTALL_HINT}") from exc
        if done.returncode != 0:
            raise self._failure(self.default_voice, done.returncode, done.stderr)

    def voices(self) -> list[str]:
        """Language codes from ``espeak-ng --voices`` (what ``-v`` accepts); read once, then cached."""
        with self._lock:
            if self._voices is None:
                try:
                    out = subprocess.run([self._exe(), "--voices"], capture_output=True, timeout=30, check=True).stdout
                except (OSError, subprocess.SubprocessError) as exc:
                    raise BackendError(f"espeak-ng --voices failed: {exc}") from exc
                rows = out.decode("utf-8", "replace").splitlines()[1:]  # first line is the column header
                self._voices = sorted({row.split()[1] for row in rows if len(row.split()) >= 2})
            return list(self._voices)

    def _failure(self, voice: str, code: int | None, stderr: bytes) -> Exception:
        err = stderr.decode("utf-8", "replace").strip()
        if _NO_VOICE in err:
            return BadRequest(f"espeak-ng has no voice {voice!r}; pick one of `espeak-ng --voices` "
                              "(e.g. ko, en-us, ja, zh) or a variant such as en-us+f3")
        return BackendError(f"espeak-ng failed (exit {code}): {err[:300] or 'no message'}")

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        voice = voice or self.default_voice
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._args(voice), "--stdout",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise BackendError(f"espeak-ng could not start: {exc}; {INSTALL_HINT}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), self._timeout_s)
        except TimeoutError:
            await _kill(proc)
            raise BackendError(f"espeak-ng took over {self._timeout_s:g} s on {text[:60]!r}") from None
        except BaseException:  # cancelled (barge-in, shutdown): do not leave the child running
            await _kill(proc)
            raise
        if proc.returncode != 0:
            raise self._failure(voice, proc.returncode, err)
        if not out:
            raise BackendError(f"espeak-ng produced no audio for {text[:60]!r}")
        return speech_from_wav(out, "espeak-ng")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()
