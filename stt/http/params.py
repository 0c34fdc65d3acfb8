"""Request parameters: the ``Param`` declaration, its parser and the helpers the faces share.

Each face declares its tables of ``Param`` in its own ``params.py``. The same tables parse requests (query
parameters and multipart fields) and describe them in the OpenAPI document (``stt/http/openapi.py``), so the
docs cannot drift from what the server accepts. A parameter that is unknown, repeated or invalid is a 400 that names it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from multidict import MultiMapping

from stt.diarization.types import DiarizeOptions
from stt.engines.languages import LANGUAGE_CODES
from stt.engines.base import DEFAULT_TEMPERATURES, TranscribeOptions
from stt.errors import BadRequest

LANGUAGES: tuple[str, ...] = tuple(sorted(LANGUAGE_CODES))
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})
OUTPUTS = ("json", "text", "srt", "vtt", "verbose_json")
TEMPERATURE_STEP = 0.2  # Whisper's increment on fallback
PROMPT_MAX_CHARS = 2000  # Whisper keeps at most 223 prompt tokens; anything far longer is a mistake
MAX_SPEAKERS = 32  # bound on min_speakers/max_speakers: clustering cost grows with it, and beyond is a typo


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    kind: str  # JSON-schema type: "string", "integer", "number" or "boolean"
    description: str
    default: Any = None
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    required: bool = False
    repeated: bool = False  # may be given several times (OpenAI's ``timestamp_granularities[]``)
    ignored: bool = False  # accepted for client compatibility, has no effect

    def parse(self, raw: str) -> Any:
        value = _PARSERS[self.kind](self, raw.strip() if self.kind != "string" else raw)
        if self.enum is not None and value not in self.enum:
            raise self.invalid(raw, "one of " + ", ".join(self.enum[:12]) + (", ..." if len(self.enum) > 12 else ""))
        if self.max_length is not None and len(value) > self.max_length:
            raise BadRequest(f"{self.name}: at most {self.max_length} characters", param=self.name)
        return value

    def invalid(self, raw: str, expected: str) -> BadRequest:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        return BadRequest(f"{self.name}: invalid value {shown!r}, expected {expected}", param=self.name)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of one value, for the OpenAPI document."""
        out: dict[str, Any] = {"type": self.kind}
        for key, value in (("default", self.default), ("enum", self.enum and list(self.enum)),
                           ("minimum", self.minimum), ("maximum", self.maximum),
                           ("maxLength", self.max_length)):
            if value is not None:
                out[key] = value
        return out


def _parse_bool(param: Param, raw: str) -> bool:
    low = raw.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise param.invalid(raw, "true or false")


def _parse_number(param: Param, raw: str) -> float:
    try:
        value = int(raw) if param.kind == "integer" else float(raw)
    except ValueError:
        raise param.invalid(raw, "an integer" if param.kind == "integer" else "a number") from None
    if not math.isfinite(value) or (param.minimum is not None and value < param.minimum) or (
            param.maximum is not None and value > param.maximum):
        low = "-inf" if param.minimum is None else f"{param.minimum:g}"
        high = "inf" if param.maximum is None else f"{param.maximum:g}"
        raise param.invalid(raw, f"a number from {low} to {high}")
    return value


_PARSERS = {"boolean": _parse_bool, "integer": _parse_number, "number": _parse_number,
            "string": lambda param, raw: raw}


def parse_params(table: Iterable[Param], pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``pairs`` (query and form fields, in order) -> {name: value} with defaults; BadRequest names the culprit."""
    params = {p.name: p for p in table}
    seen: dict[str, list[Any]] = {}
    for name, raw in pairs:
        param = params.get(name)
        if param is None:
            raise BadRequest(f"{name}: unknown parameter (known: {', '.join(params)})", param=name)
        if name in seen and not param.repeated:
            raise BadRequest(f"{name}: given more than once", param=name)
        seen.setdefault(name, []).append(param.parse(raw))
    values: dict[str, Any] = {}
    for name, param in params.items():
        if name in seen:
            values[name] = seen[name] if param.repeated else seen[name][0]
        elif param.required:
            raise BadRequest(f"{name}: required parameter is missing", param=name)
        else:
            values[name] = [] if param.repeated else param.default
    return values


def request_pairs(query: MultiMapping[str], fields: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Query parameters then multipart fields, repeats kept."""
    return list(query.items()) + list(fields)


def temperature_schedule(start: float) -> tuple[float, ...]:
    """A start temperature -> Whisper's fallback schedule from there to 1.0 (0 gives the default schedule)."""
    if start == 0:
        return DEFAULT_TEMPERATURES
    steps = math.floor((1.0 - start) / TEMPERATURE_STEP + 1e-9)  # never past 1.0
    return tuple(round(start + TEMPERATURE_STEP * i, 3) for i in range(steps + 1))



MODEL_NAME_MAX = 200  # as asr.models' names


def model_param(description: str, **kwargs: object) -> Param:
    """The ``model`` parameter every face takes (its meaning per face in ``description``)."""
    return Param("model", "string", description, max_length=MODEL_NAME_MAX, **kwargs)  # type: ignore[arg-type]


def bcp47_language(tag: str, param: str = "language") -> str:
    """Deepgram's BCP-47 tag ("en-US") -> the Whisper language code ("en"); 400 for one Whisper lacks."""
    language = tag.strip().split("-")[0].lower()
    if language not in LANGUAGES:
        raise BadRequest(f"{param}: {tag!r} is not a language Whisper knows", param=param)
    return language


def diarize_options(enabled: bool, min_speakers: int | None = None,
                    max_speakers: int | None = None) -> DiarizeOptions | None:
    """The diarization request, or None; 400 when the speaker bounds contradict each other."""
    if not enabled:
        if min_speakers is not None or max_speakers is not None:
            name = "min_speakers" if min_speakers is not None else "max_speakers"
            raise BadRequest(f"{name}: needs diarize=true", param=name)
        return None
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise BadRequest("min_speakers: larger than max_speakers", param="min_speakers")
    return DiarizeOptions(min_speakers=min_speakers or 1, max_speakers=max_speakers)


def check_model_support(options: TranscribeOptions, multilingual: bool, model: str) -> None:
    """An English-only model can neither transcribe another language nor translate."""
    if multilingual:
        return
    if options.language not in (None, "en"):
        raise BadRequest(f"language: the loaded model {model!r} is English-only", param="language")
    if options.task == "translate":
        raise BadRequest(f"task: the loaded model {model!r} is English-only and cannot translate", param="task")
