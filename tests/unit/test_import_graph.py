"""The package's import graph is layered: no module imports, at run time (at the top or
inside a function; type-only imports under ``TYPE_CHECKING`` aside), one that imports it
back, directly or around a longer loop; and no module takes ``__version__`` from the
package face (:mod:`advparams.version` holds it)."""

from __future__ import annotations

import ast
from pathlib import Path

import advparams

ROOT = Path(advparams.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _target(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # for the type checker only: never run
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        found += _imports(node)
    return found


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        out = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {_target(a.name) for a in node.names if a.name.startswith("advparams.")}
            elif node.level == 0 and node.module and node.module.split(".")[0] == "advparams":
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    out.add(full if full in MODULES else _target(node.module))
        graph[name] = out - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _edges()
    assert len(graph) > 150 and "advparams.house" in graph["advparams.evaluation.rows"]
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_takes_the_version_from_the_package_face() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        for node in _imports(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module == "advparams"
        and name != "advparams"
        and any(a.name == "__version__" for a in node.names)
    ]
    assert offenders == []
