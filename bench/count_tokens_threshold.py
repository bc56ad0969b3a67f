"""Measure where handing token counting to a worker thread starts to pay off.

Run: ``.venv/bin/python bench/count_tokens_threshold.py``. Prints, for o200k_base:

1. the round trip of ``anyio.to_thread.run_sync`` on a no-op (the hand-off cost), from inside a loop;
2. ``count_request_tokens`` (tokens returned) against raw ``encode_ordinary`` on the same text, for
   bodies of growing text size, and the Python overhead (count minus raw encode);
3. whether tiktoken releases the GIL (how far the main thread gets while a worker encodes);
4. the crossover: the first size whose count time exceeds the hand-off round trip, and the same figure
   computed as hand-off median / median cost per character (steadier on a noisy box).

``THREAD_THRESHOLD_CHARS`` in ``bifrost_asgi/tokens/count.py`` is that crossover, rounded.
"""

from __future__ import annotations

import statistics
import threading
import time
import timeit
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from bifrost_asgi.tokens.count import THREAD_THRESHOLD_CHARS, count_request_tokens
from bifrost_asgi.tokens.encodings import get_encoding

MODEL = "gpt-4o"
# Mixed prose, code, digits, non-ASCII and emoji: closer to real prompts than lorem ipsum.
SAMPLE = (
    "The quick brown fox jumps over the lazy dog while the gateway counts 1,234,567 tokens. "
    "def area(r: float) -> float:\n    return 3.14159 * r ** 2\n"
    "Grüße aus München — こんにちは世界 — 😀🚀 — naïve café résumé.\n"
)
SIZES = (256, 512, 1024, 2048, 3072, 4096, 8192, 16384, 65536, 170_000)


def text_of(size: int) -> str:
    return (SAMPLE * (size // len(SAMPLE) + 1))[:size]


def body_of(size: int) -> dict[str, Any]:
    """A realistic body: instructions, a prior turn and the user's question; ~``size`` chars of text."""
    head = "You are a careful assistant. Answer briefly."
    turn = "Earlier answer: the function computes a circle's area."
    user = text_of(max(0, size - len(head) - len(turn)))
    return {
        "instructions": head,
        "input": [
            {"role": "assistant", "content": [{"type": "output_text", "text": turn}]},
            {"role": "user", "content": [{"type": "input_text", "text": user}]},
        ],
    }


def best_us(fn: Callable[[], object], budget_s: float = 0.3) -> float:
    """Best-of-9 mean time per call in microseconds, with the call count sized to the budget."""
    once = timeit.timeit(fn, number=1)
    number = max(1, int(budget_s / 5 / max(once, 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=9)) / number * 1e6


async def handoff_us(rounds: int = 2000) -> tuple[float, float]:
    """Median and p90 round trip of a no-op through anyio's worker thread, measured from the loop."""
    for _ in range(200):  # warm the thread pool
        await anyio.to_thread.run_sync(int)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await anyio.to_thread.run_sync(int)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def _spin(stop: threading.Event) -> int:
    spins = 0
    while not stop.is_set():
        spins += 1
    return spins


def loop_progress_during_encode() -> float:
    """Main-thread progress while a worker encodes ~170 KB x 5, relative to the main thread alone.

    ~1.0 means tiktoken released the GIL for the whole encode (the event loop would keep serving);
    ~0.0 would mean the loop froze. Other load on the box pulls it below 1.0 too.
    """
    enc = get_encoding("o200k_base")
    text = text_of(170_000)
    stop = threading.Event()

    def work() -> None:
        for _ in range(5):
            enc.encode_ordinary(text)
        stop.set()

    worker = threading.Thread(target=work)
    start = time.perf_counter()
    worker.start()
    busy = _spin(stop)
    elapsed = time.perf_counter() - start
    worker.join()
    stop = threading.Event()
    timer = threading.Timer(elapsed, stop.set)
    timer.start()
    alone = _spin(stop)
    timer.join()
    return busy / alone


def main() -> None:
    enc = get_encoding("o200k_base")
    count_request_tokens(body_of(64), MODEL, return_tokens=True)  # warm the token-string cache path
    median, p90 = anyio.run(handoff_us)
    print(f"anyio.to_thread.run_sync no-op round trip: median {median:.0f} us, p90 {p90:.0f} us")
    print(f"{'chars':>8} {'tokens':>7} {'count us':>10} {'encode us':>10} {'overhead us':>12} {'us/char':>8}")
    crossover = None
    per_char: list[float] = []
    for size in SIZES:
        body = body_of(size)
        texts = [body["instructions"], *(item["content"][0]["text"] for item in body["input"])]
        n_tokens = count_request_tokens(body, MODEL, return_tokens=False).text_tokens
        count = best_us(lambda b=body: count_request_tokens(b, MODEL, return_tokens=True))  # type: ignore[misc]
        raw = best_us(lambda t=texts: [enc.encode_ordinary(x) for x in t])  # type: ignore[misc]
        print(
            f"{size:>8} {n_tokens:>7} {count:>10.1f} {raw:>10.1f} {count - raw:>12.1f} {count / size:>8.3f}"
        )
        if crossover is None and count >= median:
            crossover = size
        if size >= 1024:
            per_char.append(count / size)
    progress = loop_progress_during_encode()
    print(
        f"main-thread progress while a worker encodes 170 KB: {progress:.2f} of running alone (GIL released)"
    )
    slope = statistics.median(per_char)
    print(f"first size whose count time >= hand-off median: {crossover} chars")
    print(f"hand-off median / median cost per char ({slope:.3f} us): {median / slope:.0f} chars")
    print(f"THREAD_THRESHOLD_CHARS = {THREAD_THRESHOLD_CHARS}")


if __name__ == "__main__":
    main()
