"""A model loaded on first use and unloaded after its TTL, in a real server process: time to first answer with
the model cold beside warm, and the server's RSS before the load, once loaded, and after the unload.

    .venv/bin/python bench/bench_models.py [--lazy base] [--cycles 2] [--ttl 3]

One server (``python server.py``; threads 2, beam 5, int8) with ``asr.models`` {tiny.en, base}: the default
(the other model) is pinned and warmed first with one request, so what the first use of any model allocates
for good (speech detector, decoder, thread stacks) is not counted as the lazy model's. Then, per cycle: RSS,
POST /stt?model=<lazy> with JFK's 11 s clip (cold: the load is in the answer's time), RSS, the same again
(warm), wait until GET /v1/models shows it unloaded (TTL), RSS. The target: RSS after unload within 50 MB of
before the load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import AUDIO_DIR, TOKEN  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

CLIP = AUDIO_DIR / "en" / "jfk.flac"
MB = 1024 * 1024
AUTH = {"Authorization": f"Token {TOKEN}"}


def timed_post(url: str, model: str, audio: bytes) -> float:
    started = time.monotonic()
    query = urllib.parse.urlencode({"model": model})
    request = urllib.request.Request(f"{url}/stt?{query}", data=audio, headers=AUTH, method="POST")
    with urllib.request.urlopen(request, timeout=600) as resp:  # an HTTP error raises
        resp.read()
    return time.monotonic() - started


def loaded(url: str, model: str) -> bool:
    with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/models", headers=AUTH), timeout=30) as resp:
        data = json.load(resp)["data"]
    return next(m["loaded"] for m in data if m["id"] == model)


def wait_unloaded(url: str, model: str, timeout_s: float) -> float:
    started = time.monotonic()
    while loaded(url, model):
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{model} still loaded after {timeout_s:.0f} s")
        time.sleep(0.2)
    time.sleep(1.0)  # the unload's thread (close, gc, malloc_trim) finishes after the state changes
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lazy", default="base", choices=("base", "tiny.en"), help="the model loaded on use")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--ttl", type=float, default=3.0, help="asr.model_ttl_seconds")
    args = parser.parse_args()
    default = "tiny.en" if args.lazy == "base" else "base"
    audio = CLIP.read_bytes()
    config = {"asr": {"model": default, "models": {"tiny.en": "tiny.en", "base": "base"}, "threads": 2,
                      "beam_size": 5, "model_ttl_seconds": args.ttl, "max_loaded_models": 2}}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config, Path(tmp)) as server:
        assert server.proc is not None
        proc = psutil.Process(server.proc.pid)
        rss = lambda: proc.memory_info().rss / MB  # noqa: E731
        warm_default = timed_post(server.url, default, audio)
        print(f"default {default} (pinned), warm-up answer {warm_default:.2f} s; lazy model {args.lazy}, "
              f"TTL {args.ttl:g} s; measured under load (a shared 2-core machine)")
        print("cycle | cold answer s | warm answer s | cold/warm | RSS before MB | loaded MB | after unload MB "
              "| after - before MB | unloaded after s")
        for cycle in range(1, args.cycles + 1):
            before = rss()
            cold = timed_post(server.url, args.lazy, audio)
            after_load = rss()
            warm = timed_post(server.url, args.lazy, audio)
            waited = wait_unloaded(server.url, args.lazy, 4 * args.ttl + 30)
            after = rss()
            print(f"{cycle} | {cold:.2f} | {warm:.2f} | {cold / warm:.2f} | {before:.0f} | {after_load:.0f} | "
                  f"{after:.0f} | {after - before:+.0f} | {waited:.1f}")


if __name__ == "__main__":
    main()
