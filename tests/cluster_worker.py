"""A speech worker for the Redis tests: the real ``avatarchat worker`` code with the real renderer, slowed by
``AVATARCHAT_TEST_FRAME_DELAY_S`` per frame so a test can catch a render while it runs (kill it, cancel it).

    python -m tests.cluster_worker      (settings from the AVATARCHAT_* environment, as the CLI reads them)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from avatarchat.cli import run_worker
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import Settings


class SlowRenderer(MeshWarpRenderer):
    def __init__(self, *args, frame_delay_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frame_delay_s = frame_delay_s

    def render(self, avatar, speech, cancel=None, voice=None):
        for frame in super().render(avatar, speech, cancel, voice=voice):
            time.sleep(self.frame_delay_s)
            yield frame


def main() -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    delay = float(os.environ.get("AVATARCHAT_TEST_FRAME_DELAY_S", "0"))
    renderer = SlowRenderer(cache_dir=settings.data_dir / "avatars", max_side=settings.render_max_side,
                            frame_delay_s=delay)
    asyncio.run(run_worker(settings, renderer=renderer))


if __name__ == "__main__":
    main()
