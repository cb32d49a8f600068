"""Admission control's estimate in the embedded mode: what one sentence really costs (its TTS and its render)."""

from __future__ import annotations

import statistics
import time

from avatarchat.llm.echo import EchoLLM
from avatarchat.pipeline.jobs import SpeechJob
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.speech import SpeechPipeline
from avatarchat.tts import as_router

SENTENCES = ["The quick brown fox jumps over the lazy dog near the river.",
             "A second sentence of about the same length follows right here.",
             "And a third one, so that the running means have settled.",
             "A fourth sentence keeps the measurement going for now.",
             "The fifth sentence is much like the ones before it.",
             "Finally a sixth sentence closes the measurement nicely."]


async def test_the_estimate_counts_a_whole_sentence_tts_and_render(tts, renderer, avatar, tmp_path) -> None:
    pipeline = SpeechPipeline(EchoLLM(), as_router(tts), renderer, avatar, tmp_path, threads=2)
    try:
        costs = []
        for i, text in enumerate(SENTENCES):
            job = SpeechJob(id=f"j{i}", reply="r", seq=i, text=text)
            t0 = time.perf_counter()
            speech = await pipeline.voice(job)
            await pipeline.render(job, speech, Reply())
            costs.append(time.perf_counter() - t0)
        # One sentence at a time: a sentence queued behind two others on two threads waits one sentence's cost.
        estimate = pipeline.expected_wait_s(2)
        assert 0.7 * statistics.median(costs) < estimate < 1.4 * max(costs), (estimate, costs)
        assert abs(pipeline.health(10.0)["seconds_per_sentence"] - estimate) < 0.01
    finally:
        await pipeline.aclose()
