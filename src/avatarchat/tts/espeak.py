"""``espeak``: offline formant TTS in the ~100 languages of Debian's ``espeak-ng`` (Korean by default).

We run the ``espeak-ng`` command rather than binding ``libespeak-ng``: the library keeps one global,
non-thread-safe synthesizer per process, while a child process per sentence runs in parallel with the others,
never blocks the event loop, and can simply be killed when a reply is interrupted.

How the child is started matters. The server's event loop (uvloop, through libuv) starts subprocesses with a
real ``fork()``, which copies every lock other threads hold and runs the ``atfork`` handlers of native
libraries (OpenBLAS's waits for its worker threads): with renders running beside it, the child or the parent
could wedge for good. So the child is started by ``subprocess.Popen`` from a worker thread, which on Linux
uses ``vfork()`` + ``exec`` (no ``atfork`` handlers, nothing copied), and at most ``max_procs`` run at once.

Every voice speaks in the operator's variant (``-v ko+f3``; ``f3``, a woman's register, matches the default
avatar). Only voices that ``espeak-ng --voices`` lists are ever passed to ``-v``: a voice name reaches espeak-ng as a
file name, so anything else (a relative path, say) is refused before the command runs.

``Speech.phonemes`` stays empty. The command reports timed phonemes only through ``--pho``, which works with
MBROLA voices alone (there is none for Korean); timed phoneme events exist only in the C library's callback
API. The renderer derives the mouth from the audio, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import threading

from avatarchat.data import Speech
from avatarchat.errors import BackendError, BadRequest, ConfigError
from avatarchat.tts.base import TTS, VoiceLabel, speech_from_wav

INSTALL_HINT = "install espeak-ng: apt-get install espeak-ng"
_NO_VOICE = "voice does not exist"  # espeak-ng's stderr for an unknown -v


class EspeakTTS(TTS):
    """Speaks through ``espeak-ng --stdout``; ``voice`` is any ``-v`` value (``ko``, ``en-us``, ``en-us+f3``)."""

    name = "espeak"

    def __init__(self, default_voice: str = "ko", rate: int = 175, pitch: int = 50, binary: str = "espeak-ng",
                 timeout_s: float = 60.0, max_procs: int = 2, variant: str = "") -> None:
        """``variant`` (``f3``, ``m1``: ``espeak-ng --voices=variant``) is applied to every voice: the operator's
        choice of register, checked against that list at warm-up (espeak-ng itself ignores unknown ones)."""
        if variant and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", variant):
            raise ConfigError(f"espeak-ng variant {variant[:40]!r} is not a variant name (such as f3 or m1)")
        self.default_voice = default_voice
        self.variant = variant
        self._rate = rate
        self._pitch = pitch
        self._binary = binary
        self._timeout_s = timeout_s
        self._listings: dict[str, list[list[str]]] = {}  # espeak-ng's voice tables, by flag
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_procs)

    def _exe(self) -> str:
        path = shutil.which(self._binary)
        if path is None:
            raise BackendError(f"espeak-ng is not installed ({self._binary!r} is not on PATH); {INSTALL_HINT}")
        return path

    def _args(self, voice: str) -> list[str]:
        name = f"{voice}+{self.variant}" if self.variant else voice
        return [self._exe(), "--stdin", "-b", "1", "-v", name, "-s", str(self._rate), "-p", str(self._pitch)]

    def warm_up(self) -> None:
        """Fail at start-up rather than on the first reply when the binary or the configured voice is missing:
        both are ``ConfigError`` (the server cannot start as configured), with the same texts as at request time."""
        try:
            args = self._args(self.default_voice)
        except BackendError as exc:  # the binary is not on PATH
            raise ConfigError(exc.message) from exc
        if self.variant and self.variant not in self.variants():
            raise ConfigError(f"espeak-ng has no variant {self.variant!r} (check AVATARCHAT_ESPEAK_VARIANT); "
                              f"its variants: {', '.join(self.variants())}")
        try:
            done = subprocess.run([*args, "-q"], input=b"a", capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"espeak-ng could not run: {exc}; {INSTALL_HINT}") from exc
        if done.returncode != 0:
            failure = self._failure(self.default_voice, done.returncode, done.stderr)
            raise ConfigError(f"{failure.message} (check AVATARCHAT_ESPEAK_VOICE)"
                              if isinstance(failure, BadRequest) else failure.message) from failure

    def voices(self) -> list[str]:
        """Language codes from ``espeak-ng --voices`` (what ``-v`` accepts); read once, then cached."""
        return self._listing("--voices", 1)

    def variants(self) -> list[str]:
        """Variant names from ``espeak-ng --voices=variant`` (the file column, ``!v/f3``); read once, then cached."""
        return [name.removeprefix("!v/") for name in self._listing("--voices=variant", 4)]

    def describe(self, voice: str) -> VoiceLabel:
        """``Korean``, robotic, in the espeak-ng group; the gender is the variant's (espeak-ng's own voices are
        male)."""
        names = {r[1]: r[3] for r in self._rows("--voices") if len(r) > 3}
        language = names.get(voice, voice).replace("_", " ")
        gender = {"f": "female", "m": "male"}.get(self.variant[:1]) if self.variant else "male"
        return VoiceLabel(label=language, language_name=language, gender=gender, tier="robotic", group="espeak-ng")

    def _listing(self, flag: str, column: int) -> list[str]:
        """The distinct values of one column of an ``espeak-ng`` voice table, sorted."""
        return sorted({r[column] for r in self._rows(flag) if len(r) > column})

    def _rows(self, flag: str) -> list[list[str]]:
        """The rows of an ``espeak-ng`` voice table (split at blanks, header dropped); read once per flag."""
        with self._lock:
            if flag not in self._listings:
                try:
                    out = subprocess.run([self._exe(), flag], capture_output=True, timeout=30, check=True).stdout
                except (OSError, subprocess.SubprocessError) as exc:
                    raise BackendError(f"espeak-ng {flag} failed: {exc}") from exc
                self._listings[flag] = [row.split() for row in out.decode("utf-8", "replace").splitlines()[1:]]
            return self._listings[flag]

    def _failure(self, voice: str, code: int | None, stderr: bytes) -> BadRequest | BackendError:
        err = stderr.decode("utf-8", "replace").strip()
        if _NO_VOICE in err:
            return BadRequest(f"espeak-ng has no voice {voice!r}; pick one of `espeak-ng --voices` "
                              "(e.g. ko, en-us, ja, zh) or a variant such as en-us+f3")
        return BackendError(f"espeak-ng failed (exit {code}): {err[:300] or 'no message'}")

    def _check_voice(self, voice: str) -> None:
        if voice not in self.voices():
            raise BadRequest(f"espeak-ng has no voice {voice[:40]!r}; pick one of `espeak-ng --voices` "
                             "(e.g. ko, en-us, ja, cmn)")

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        voice = voice or self.default_voice
        self._check_voice(voice)
        out, err, code = await run_espeak(self._args(voice) + ["--stdout"], text.encode("utf-8"),
                                          self._timeout_s, self._slots)
        if code is None:
            raise BackendError(f"espeak-ng took over {self._timeout_s:g} s on {text[:60]!r}")
        if code != 0:
            raise self._failure(voice, code, err)
        if not out:
            raise BackendError(f"espeak-ng produced no audio for {text[:60]!r}")
        return speech_from_wav(out, "espeak-ng")


async def run_espeak(args: list[str], stdin: bytes, timeout_s: float,
                     slots: threading.BoundedSemaphore) -> tuple[bytes, bytes, int | None]:
    """Run espeak-ng once as described above (a worker thread, at most ``slots`` at once): (stdout, stderr, exit
    code; None when it timed out). Cancelling the caller kills the child; the kokoro backend phonemizes with it."""
    run = _Run(args, stdin, timeout_s, slots)
    work = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:  # barge-in or shutdown: do not leave the child running
        run.kill()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(work, 10)  # the thread reaps the killed child
        raise


class _Run:
    """One espeak-ng run in a worker thread: waits for a free slot, spawns (vfork + exec), feeds stdin,
    collects stdout. ``kill`` from any thread stops it, before or after the child started."""

    def __init__(self, args: list[str], stdin: bytes, timeout_s: float, slots: threading.BoundedSemaphore) -> None:
        self._args, self._stdin, self._timeout_s, self._slots = args, stdin, timeout_s, slots
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._killed = False

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            if self._proc is not None and self._proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()

    def __call__(self) -> tuple[bytes, bytes, int | None]:
        """(stdout, stderr, exit code); the code is None when the run timed out (the child is then killed)."""
        with self._slots:
            with self._lock:
                if self._killed:
                    return b"", b"", -9
                try:
                    self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE)
                except OSError as exc:
                    raise BackendError(f"espeak-ng could not start: {exc}; {INSTALL_HINT}") from exc
            proc = self._proc
            try:
                out, err = proc.communicate(self._stdin, timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                proc.communicate()
                return b"", b"", None
            return out, err, proc.returncode
