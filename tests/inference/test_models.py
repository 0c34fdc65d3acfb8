"""Model resolution: bundled weights are assembled once and verified; paths are used as is."""

from pathlib import Path

import pytest

from stt.models import BUNDLED, ModelError, _verify, openai_checkpoint_path, resolve_ct2_model, sha256_file


def test_base_is_assembled_verified_and_repaired(tmp_path: Path) -> None:
    model_dir = resolve_ct2_model("base", tmp_path)
    model_bin = model_dir / "model.bin"
    assert sha256_file(model_bin) == BUNDLED["base"].sha256
    assert (model_dir / "tokenizer.json").is_file() and (model_dir / "config.json").is_file()
    with model_bin.open("r+b") as f:  # corrupt one byte in the middle
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert resolve_ct2_model("base", tmp_path) == model_dir
    assert sha256_file(model_bin) == BUNDLED["base"].sha256


def test_tiny_en_is_verified_in_place(tmp_path: Path) -> None:
    model_dir = resolve_ct2_model("tiny.en", tmp_path)
    assert (model_dir / "model.bin").is_file()
    assert not any(tmp_path.iterdir())  # nothing copied


def test_a_wrong_digest_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="sha256"):
        _verify(fake, BUNDLED["tiny.en"].sha256, "tiny.en")


def test_a_path_is_used_as_is_and_nonsense_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.bin").write_bytes(b"x")
    assert resolve_ct2_model(str(tmp_path / "m"), tmp_path) == tmp_path / "m"
    with pytest.raises(ModelError, match="asr.model"):
        resolve_ct2_model("large-v9", tmp_path)


def test_converted_checkpoints_do_not_collide(tmp_path: Path) -> None:
    a = openai_checkpoint_path("base", tmp_path / "x", tmp_path)
    b = openai_checkpoint_path("tiny.en", tmp_path / "y", tmp_path)
    c = openai_checkpoint_path(str(tmp_path / "z"), tmp_path / "z", tmp_path)
    assert len({a, b, c}) == 3
