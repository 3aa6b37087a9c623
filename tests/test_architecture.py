"""The rules of docs/architecture.md that code can check: rooms import only what their role allows,
no module-level import cycles, and the CLI's choices come from the registries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from diffparam.cli import build_parser
from diffparam.param import KINDS, kinds

PACKAGE = Path(__file__).resolve().parents[1] / "diffparam"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module's imports of other diffparam modules, at any level (inside functions too)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diffparam"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("diffparam"))
        graph[name] = found
    modules = set(graph)
    # A package importing its own submodules is how it exports them: not an edge of the graph.
    return {m: {t for t in targets if t in modules and t != m and not t.startswith(m + ".")}
            for m, targets in graph.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_import_cycles() -> None:
    graph = _imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " -> ".join([*path[path.index(module):], module])
        if module not in done:
            for target in sorted(graph[module]):
                visit(target, [*path, module])
            done.add(module)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize(("room", "forbidden"), [
    ("param", {"models", "objectives", "render", "pipeline", "recipes", "cli", "atlas", "evaluate"}),
    ("objectives", {"param", "render", "pipeline", "recipes", "cli", "atlas", "three_d"}),
    ("models", {"param", "objectives", "render", "pipeline", "recipes", "cli", "atlas"}),
    ("transforms", {"param", "models", "objectives", "render", "recipes", "cli"}),
    ("checks", {"param", "models", "objectives", "render", "recipes", "cli", "io"}),
    ("three_d", {"models", "objectives", "render", "recipes", "cli", "atlas"}),
    ("recipes", {"cli"}),
    ("render", {"recipes", "cli", "atlas"}),
    ("train", {"recipes", "cli", "atlas", "render"}),
])
def test_rooms_import_only_what_their_role_allows(room: str, forbidden: set[str]) -> None:
    """Data flows one way: a parameterization knows nothing of models, an objective nothing of
    parameterizations; only `render` (through `pipeline`) joins them."""
    for module, targets in _imports().items():
        if _room(module) == room:
            bad = sorted(t for t in targets if _room(t) in forbidden)
            assert not bad, f"{module} imports {bad}"


def _param_choices(command: str) -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return next(a for a in sub._actions if a.dest == "param").choices


def test_cli_parameterization_choices_come_from_the_registry(monkeypatch) -> None:
    assert _param_choices("render") == list(KINDS) == _param_choices("atlas")
    assert _param_choices("interpolate") == kinds(composable=True)
    assert _param_choices("style") == kinds(from_image=True)
    new = KINDS["pixel"].__class__("noise", KINDS["pixel"].cls, "a kind added in one line")
    monkeypatch.setitem(KINDS, "noise", new)
    assert "noise" in _param_choices("render") and "noise" in _param_choices("interpolate")
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["render"]
    assert "a kind added in one line" in " ".join(sub.format_help().split())  # however it wraps
