"""Whisper's language codes and names (kept here so no other package imports Whisper's modules)."""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from faster_whisper.tokenizer import _LANGUAGE_CODES  # Whisper's 100 language codes; no public name for it

LANGUAGE_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)


@functools.cache
def language_names() -> dict[str, str]:
    """Whisper's code -> its lower-case English name ("en" -> "english"), from the table Whisper's own CLI prints
    names from. Read from the source of ``whisper/tokenizer.py`` rather than imported: importing it imports the
    ``whisper`` package, hence torch, which a renderer on the event loop must not pay for."""
    spec = importlib.util.find_spec("whisper")  # a top-level package is found, not imported
    if spec is None or not spec.submodule_search_locations:
        return {}
    source = (Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LANGUAGES" for t in node.targets):
            return dict(ast.literal_eval(node.value))
    return {}


def choose_language(ranked: Sequence[tuple[str, float]], allowed: Sequence[str] = ()) -> tuple[str, float]:
    """The most likely language of ``ranked`` ((code, probability), most likely first), among ``allowed``
    when given (a client's or the server's list): detection never answers outside it. The probability is
    then the share among the allowed languages."""
    return allowed_shares(ranked, allowed)[0]


def allowed_shares(ranked: Sequence[tuple[str, float]], allowed: Sequence[str] = ()) -> list[tuple[str, float]]:
    """``ranked`` (most likely first) narrowed to ``allowed`` when given, each probability then its share among
    the allowed languages (the first allowed language at 0.0 when detection ranked none of them)."""
    if not allowed:
        return [(lang, float(p)) for lang, p in ranked]
    kept = [(lang, float(p)) for lang, p in ranked if lang in allowed] or [(allowed[0], 0.0)]
    total = sum(p for _, p in kept)
    return [(lang, p / total if total > 0 else 0.0) for lang, p in kept]


def allowed_languages(requested: Sequence[str], server: Sequence[str]) -> tuple[str, ...]:
    """A request's list of languages narrowed to the server's (``asr.languages``); either may be empty (any)."""
    if not server:
        return tuple(requested)
    return tuple(lang for lang in requested if lang in server) or tuple(server)
