"""A Realtime transcription session's configuration: parsed from ``session.update`` (GA shape) or
``transcription_session.update`` (beta shape), validated field by field, and rendered back in either shape.

Only the fields an update names change (OpenAI's rule); ``turn_detection: null`` turns server VAD off. A bad
field raises ``EventError`` naming it (``session.audio.input.format.rate``), and the session keeps its previous
configuration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from stt.http.faces.realtime.errors import EventError

Shape = Literal["ga", "beta"]
AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]

PCM_RATE = 24000  # OpenAI: "Only a 24kHz sample rate is supported"
GA_FORMATS: dict[str, AudioFormat] = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
BETA_FORMATS: tuple[AudioFormat, ...] = ("pcm16", "g711_ulaw", "g711_alaw")
DEFAULT_MODEL = "whisper-1"
MAX_PROMPT_CHARS = 2000  # Whisper reads at most 224 prompt tokens; more is only memory
MAX_MODEL_CHARS = 100
MAX_SILENCE_MS = 10_000
MAX_PADDING_MS = 5_000
INCLUDE_LOGPROBS = "item.input_audio_transcription.logprobs"


@dataclasses.dataclass(frozen=True)
class ServerVad:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    format: AudioFormat = "pcm16"
    model: str = DEFAULT_MODEL
    language: str | None = None
    prompt: str = ""
    turn_detection: ServerVad | None = ServerVad()
    noise_reduction: dict[str, Any] | None = None  # accepted and echoed; no filter runs
    include: tuple[str, ...] = ()

    def audio_changes(self, other: SessionConfig) -> bool:
        """What the live session hears or how it cuts turns differs (the session is rebuilt)."""
        return (self.language, self.prompt, self.turn_detection) != (other.language, other.prompt,
                                                                      other.turn_detection)


# -- parsing ----------------------------------------------------------------------------------------------

def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EventError("invalid_type", f"{param}: expected an object", param)
    return value


def _string(value: Any, param: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise EventError("invalid_type", f"{param}: expected a string", param)
    if len(value) > max_chars:
        raise EventError("invalid_value", f"{param}: at most {max_chars} characters", param)
    return value


def _number(value: Any, param: str, low: float, high: float, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and value != int(value)):
        raise EventError("invalid_type", f"{param}: expected {'an integer' if integer else 'a number'}", param)
    if not low <= value <= high:
        raise EventError("invalid_value", f"{param}: must be between {low:g} and {high:g}", param)
    return value


def _turn_detection(value: Any, current: ServerVad | None, param: str) -> ServerVad | None:
    if value is None:
        return None
    body = _object(value, param)
    kind = body.get("type", "server_vad")
    if kind != "server_vad":
        raise EventError("invalid_value", f"{param}.type: only 'server_vad' (or turn_detection null) is supported "
                         f"by this server, not {str(kind)[:40]!r}", f"{param}.type")
    base = current or ServerVad()
    return ServerVad(
        threshold=float(_number(body["threshold"], f"{param}.threshold", 0.0, 1.0))
        if body.get("threshold") is not None else base.threshold,
        prefix_padding_ms=int(_number(body["prefix_padding_ms"], f"{param}.prefix_padding_ms", 0, MAX_PADDING_MS,
                                      integer=True)) if body.get("prefix_padding_ms") is not None
        else base.prefix_padding_ms,
        silence_duration_ms=int(_number(body["silence_duration_ms"], f"{param}.silence_duration_ms", 0,
                                        MAX_SILENCE_MS, integer=True)) if body.get("silence_duration_ms") is not None
        else base.silence_duration_ms)


def _transcription(value: Any, param: str, language: Any) -> dict[str, Any]:
    """model, language, prompt of an (input_audio_)transcription object; null keeps the current ones."""
    if value is None:
        return {}
    body = _object(value, param)
    out: dict[str, Any] = {}
    if body.get("model") is not None:
        out["model"] = _string(body["model"], f"{param}.model", MAX_MODEL_CHARS)
    if "language" in body:
        out["language"] = None if body["language"] in (None, "") else language(
            _string(body["language"], f"{param}.language", 20), f"{param}.language")
    if "prompt" in body:
        out["prompt"] = "" if body["prompt"] is None else _string(body["prompt"], f"{param}.prompt", MAX_PROMPT_CHARS)
    return out


def _include(value: Any, param: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 10:
        raise EventError("invalid_type", f"{param}: expected a list of strings", param)
    unknown = [v for v in value if v != INCLUDE_LOGPROBS]
    if unknown:
        raise EventError("invalid_value", f"{param}: unknown value {unknown[0][:60]!r}", param)
    return tuple(value)


def apply_ga(config: SessionConfig, session: dict[str, Any], language: Any) -> SessionConfig:
    """``session.update`` with ``session: {type: "transcription", audio: {input: {...}}, include}``."""
    kind = session.get("type")
    if kind not in (None, "transcription"):
        raise EventError("invalid_value", "session.type: this server serves transcription sessions only "
                         "(connect with ?intent=transcription and send type 'transcription')", "session.type")
    changes: dict[str, Any] = {}
    audio = _object(session.get("audio") or {}, "session.audio")
    inp = _object(audio.get("input") or {}, "session.audio.input")
    if inp.get("format") is not None:
        changes["format"] = _ga_format(_object(inp["format"], "session.audio.input.format"))
    if "transcription" in inp:
        changes |= _transcription(inp["transcription"], "session.audio.input.transcription", language)
    if "turn_detection" in inp:
        changes["turn_detection"] = _turn_detection(inp["turn_detection"], config.turn_detection,
                                                    "session.audio.input.turn_detection")
    if "noise_reduction" in inp:
        changes["noise_reduction"] = _noise(inp["noise_reduction"], "session.audio.input.noise_reduction")
    if "include" in session:
        changes["include"] = _include(session["include"], "session.include")
    return dataclasses.replace(config, **changes)


def _ga_format(fmt: dict[str, Any]) -> AudioFormat:
    kind = fmt.get("type", "audio/pcm")
    if kind not in GA_FORMATS:
        raise EventError("invalid_value", f"session.audio.input.format.type: expected one of "
                         f"{', '.join(GA_FORMATS)}", "session.audio.input.format.type")
    if kind == "audio/pcm" and fmt.get("rate", PCM_RATE) != PCM_RATE:
        raise EventError("invalid_value", f"session.audio.input.format.rate: only {PCM_RATE} is supported",
                         "session.audio.input.format.rate")
    return GA_FORMATS[kind]


def _noise(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    body = _object(value, param)
    return {k: body[k] for k in ("type", "strength") if k in body and isinstance(body[k], (str, int, float))}


def apply_beta(config: SessionConfig, session: dict[str, Any], language: Any) -> SessionConfig:
    """``transcription_session.update`` (and a beta ``session.update``): ``input_audio_format``,
    ``input_audio_transcription``, ``turn_detection``, ``input_audio_noise_reduction``, ``include``."""
    changes: dict[str, Any] = {}
    if session.get("input_audio_format") is not None:
        fmt = session["input_audio_format"]
        if fmt not in BETA_FORMATS:
            raise EventError("invalid_value", f"session.input_audio_format: expected one of {', '.join(BETA_FORMATS)}",
                             "session.input_audio_format")
        changes["format"] = fmt
    if "input_audio_transcription" in session:
        changes |= _transcription(session["input_audio_transcription"], "session.input_audio_transcription", language)
    if "turn_detection" in session:
        changes["turn_detection"] = _turn_detection(session["turn_detection"], config.turn_detection,
                                                    "session.turn_detection")
    if "input_audio_noise_reduction" in session:
        changes["noise_reduction"] = _noise(session["input_audio_noise_reduction"],
                                            "session.input_audio_noise_reduction")
    if "include" in session:
        changes["include"] = _include(session["include"], "session.include")
    return dataclasses.replace(config, **changes)


def is_beta_session(session: dict[str, Any]) -> bool:
    """A ``session.update`` written in the beta shape (no ``type``, top-level ``input_audio_*`` fields)."""
    return "type" not in session and any(k.startswith("input_audio_") or k == "turn_detection" for k in session)


# -- rendering ------------------------------------------------------------------------------------------

def _vad(turn: ServerVad | None) -> dict[str, Any] | None:
    return None if turn is None else {"type": "server_vad", **dataclasses.asdict(turn)}


def _transcription_out(c: SessionConfig) -> dict[str, Any]:
    return {"model": c.model, "language": c.language, "prompt": c.prompt}


def render_session(config: SessionConfig, shape: Shape, session_id: str) -> dict[str, Any]:
    if shape == "beta":
        return {"id": session_id, "object": "realtime.transcription_session", "modalities": ["text"],
                "input_audio_format": config.format, "input_audio_transcription": _transcription_out(config),
                "turn_detection": _vad(config.turn_detection),
                "input_audio_noise_reduction": config.noise_reduction, "include": list(config.include)}
    fmt = next(k for k, v in GA_FORMATS.items() if v == config.format)
    return {"type": "transcription", "id": session_id, "object": "realtime.transcription_session",
            "audio": {"input": {"format": {"type": fmt, **({"rate": PCM_RATE} if fmt == "audio/pcm" else {})},
                                "transcription": _transcription_out(config),
                                "turn_detection": _vad(config.turn_detection),
                                "noise_reduction": config.noise_reduction}},
            "include": list(config.include)}
