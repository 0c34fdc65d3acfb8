"""Long fuzz run: the properties of tests/security/test_fuzz.py with many more (random, not derandomized) examples.

Feeds mutated audio (every supported container, byte-level damage) to ``decode_audio`` and to POST /stt of
the real app (FakeEngine: the decoder and the HTTP layer are under test, not the model). Fails (exit 1) on
any 5xx, any exception other than the API's 400/413 errors, or any input that takes longer than the bound.
It also counts inputs that reached the decoder's last-resort handler (an unexpected exception type turned
into a 400): worth a look, though not a failure.

Usage: .venv/bin/python bench/fuzz_long.py [--decoder-examples 20000] [--http-examples 5000] [--seed N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests import test_fuzz  # noqa: E402
from tests.fuzzing import mutated_audio  # noqa: E402


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "decoder failed" in record.getMessage():
            self.count += 1


def run(name: str, examples: int, rng_seed: int, body) -> tuple[bool, float]:  # type: ignore[no-untyped-def]
    long = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))
    test = seed(rng_seed)(long(given(mutated_audio())(body)))
    started = time.monotonic()
    try:
        test()
        ok = True
    except Exception as exc:  # hypothesis re-raises the shrunk failing example
        print(f"{name}: FAILED: {type(exc).__name__}: {exc}")
        ok = False
    elapsed = time.monotonic() - started
    print(f"{name}: {examples} examples in {elapsed:.0f} s ({examples / elapsed:.0f}/s): {'ok' if ok else 'FAIL'}",
          flush=True)
    return ok, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder-examples", type=int, default=20000)
    parser.add_argument("--http-examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    counter = Counter()
    logging.getLogger("stt.audio").addHandler(counter)
    print(f"seed {args.seed}")

    ok_decoder, _ = run("decode_audio", args.decoder_examples, args.seed, test_fuzz.check_decode)

    live = test_fuzz.start_live_app()
    try:
        ok_http, _ = run("POST /stt", args.http_examples, args.seed, lambda data: test_fuzz.check_endpoint(live, data))
    finally:
        test_fuzz.stop_live_app(live)
    print(f"inputs that hit the decoder's last-resort handler: {counter.count}")
    print("PASS" if ok_decoder and ok_http else "FAIL")
    return 0 if ok_decoder and ok_http else 1


if __name__ == "__main__":
    sys.exit(main())
