"""Whisper's language codes and names (kept here so no other package imports Whisper's modules)."""

from __future__ import annotations

import ast
import functools
import importlib.util
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
