import json
import subprocess
import sys
from pathlib import Path

import pytest

from stt.settings import ConfigError, load_settings, settings_from_dict
from tests.helpers import ROOT


def test_repo_config_loads_with_documented_defaults() -> None:
    s = load_settings(ROOT / "config.json", env={})
    assert (s.http.port, s.asr.engine, s.asr.model, s.asr.compute_type, s.asr.beam_size) == (
        8080, "faster-whisper", "base", "int8", 5)
    assert s.http.allowed_tokens == ()


def test_tokens_from_environment_are_added() -> None:
    s = settings_from_dict({"server": {"http": {"allowed_tokens": ["a"]}}}, env={"STT_TOKENS": "b, c,,"})
    assert s.http.allowed_tokens == ("a", "b", "c")


@pytest.mark.parametrize(("raw", "key"), [
    ({"server": {"http": {"port": "8080"}}}, "server.http.port"),
    ({"server": {"http": {"port": 70000}}}, "server.http.port"),
    ({"server": {"http": {"allowed_tokens": "abc"}}}, "server.http.allowed_tokens"),
    ({"server": {"http": {"prot": 1}}}, "server.http.prot"),
    ({"asr": {"engine": "whisper.cpp"}}, "asr.engine"),
    ({"asr": {"beam_size": 0}}, "asr.beam_size"),
    ({"asr": {"threads": True}}, "asr.threads"),
    ({"asr": {"reserved_workers": -1}}, "asr.reserved_workers"),
    ({"asr": {"upload_batch_seconds": 0}}, "asr.upload_batch_seconds"),
    ({"limits": {"max_queue": -1}}, "limits.max_queue"),
    ({"server": []}, "server"),
])
def test_bad_values_name_their_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        settings_from_dict(raw, env={})


def test_server_exits_nonzero_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"asr": {"engine": "nope"}}))
    proc = subprocess.run([sys.executable, "server.py", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "asr.engine" in proc.stderr


def test_server_exits_nonzero_on_missing_config(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "server.py", "--config", str(tmp_path / "none.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "not found" in proc.stderr


def test_server_exits_nonzero_on_a_model_that_does_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"asr": {"model": str(tmp_path / "no-such-model")},
                                  "server": {"http": {"allowed_tokens": ["t"], "port": 18765}}}))
    proc = subprocess.run([sys.executable, "server.py", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "asr.model" in proc.stderr and "Traceback" not in proc.stderr


def test_command_line_overrides_are_validated(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "server.py", "--config", str(ROOT / "config.json"), "--port", "70000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "server.http.port" in proc.stderr and "Traceback" not in proc.stderr
