"""The shape of the package: the import graph has no circle, the domain never imports the HTTP side, and
the renderers run without torch or scikit-learn loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "stt"
DOMAIN = ("stt.inference", "stt.engines", "stt.live", "stt.diarization", "stt.errors", "stt.jobs", "stt.numerals")
HTTP = ("aiohttp", "multidict", "stt.http")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module this file imports, at the top or inside a function, submodules resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in modules)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, modules):
            # Importing a.b.c runs a/__init__ and a/b/__init__ too.
            parts = imported.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[name] = {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_domain_never_imports_http() -> None:
    modules = _modules()
    wrong = {name: sorted(i for i in _imports(path, modules) if i.startswith(HTTP))
             for name, path in modules.items() if name.startswith(DOMAIN)}
    assert {name: found for name, found in wrong.items() if found} == {}


def test_every_face_lives_in_one_folder_and_is_registered() -> None:
    from stt.http.faces.registry import FACES

    folders = {p.name for p in (PACKAGE / "http" / "faces").iterdir() if p.is_dir() and p.name != "__pycache__"}
    registered = {face.routes[0].handler.__module__.split(".")[3] for face in FACES if face.routes}
    assert registered == folders
    prefixes = [prefix for face in FACES for prefix in face.prefixes]
    assert len(prefixes) == len(set(prefixes))


def test_renderers_import_neither_torch_nor_sklearn() -> None:
    """Renderers run on the event loop: loading torch (seconds, hundreds of MB) there would stall every client."""
    code = ("import sys\n"
            "import stt.http.formats, stt.http.faces.native.render, stt.http.faces.openai.render\n"
            "import stt.http.faces.deepgram.render, stt.http.faces.deepgram.messages\n"
            "from stt.http.formats import language_name\n"
            "assert language_name('de') == 'german'\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'whisper') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
