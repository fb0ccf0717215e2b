"""Import cycles among wsanalyze's modules: the trace and log sources flow one way.

The graph is built statically: every ``.py`` file of the ``wsanalyze`` package is
parsed with ``ast``, and each ``import`` / ``from ... import`` in it (at module
level, inside functions, under ``if TYPE_CHECKING`` or ``try`` alike: a lazy import
is still a dependency, it only hides the cycle until that code runs) becomes an
edge to the ``wsanalyze`` module it names. ``from pkg import name`` points at
``pkg.name`` when that is a module, else at ``pkg``. Importing ``pkg.mod`` also runs
``pkg/__init__``, so it is an edge to ``pkg`` too, except from a module inside
``pkg`` (whose ``__init__`` is already running: else every package that imports its
own submodules would be a cycle). A cycle is a strongly connected component of more
than one module.

The sources (``wsanalyze.sources``, the compacted store inside it) must have no
cycle at all, and neither must the rest of the package: a new cycle elsewhere is
listed as a warning and fails the whole-package check.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import wsanalyze

Graph = dict[str, set[str]]

# The packages whose modules must never sit on an import cycle.
ONE_WAY = ("wsanalyze.sources", "wsanalyze.store")


class ImportCycleWarning(UserWarning):
    """An import cycle outside the modules this test holds to one-way imports."""


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module under ``root`` (the directory of ``package``) by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if level == 0:
        return target or ""
    # In a package's __init__, "." is the package itself; in a module, its parent.
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, target] if target else base)


def _deepest_module(name: str, known: Iterable[str]) -> str | None:
    """``name`` or its longest prefix that is a known module (``a.b.func`` → ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _packages_run_first(importer: str, target: str, known: Iterable[str]) -> Iterator[str]:
    """The packages whose ``__init__`` importing ``target`` runs, as seen from ``importer``.

    Importing ``a.b.c`` runs ``a.b``'s ``__init__`` first, unless the importer lives
    inside ``a.b``: then that ``__init__`` has already started (it is how the importer
    got loaded), so it is no new dependency.
    """
    parts = target.split(".")
    for n in range(1, len(parts)):
        package = ".".join(parts[:n])
        inside = importer == package or importer.startswith(package + ".")
        if not inside and package in known:
            yield package


def imports_of(module: str, path: Path, known: set[str], package: str) -> set[str]:
    """The modules of ``package`` that ``module`` (source at ``path``) imports anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):  # every depth: imports inside functions count too
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            # "from pkg import sub" names the submodule when there is one, else pkg itself.
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [name if name in known else base for name in names]
        else:
            continue
        for name in names:
            if name == package or name.startswith(package + "."):
                found = _deepest_module(name, known)
                if found is not None:
                    targets.add(found)
                    targets.update(_packages_run_first(module, found, known))
    targets.discard(module)  # a package naming its own attributes is no dependency
    return targets


def import_graph(root: Path, package: str) -> Graph:
    """{module: modules of ``package`` it imports} for every module under ``root``."""
    files = module_files(root, package)
    known = set(files)
    return {name: imports_of(name, path, known, package) for name, path in files.items()}


def strongly_connected(graph: Graph) -> Iterator[list[str]]:
    """The strongly connected components of ``graph`` (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    yield sorted(component)


def cycles(graph: Graph) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others."""
    return [component for component in strongly_connected(graph) if len(component) > 1]


def a_cycle(graph: Graph, component: list[str]) -> list[str]:
    """The shortest cycle through a component's first module (``a → b → a``), to read."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the first path back to the start is a shortest one
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return component  # unreachable for a strongly connected component


def describe(graph: Graph, found: list[list[str]]) -> str:
    """One readable cycle per component, a line each."""
    return "\n".join(" → ".join(a_cycle(graph, component)) for component in found)


def one_way(name: str) -> bool:
    """Whether a module belongs to the packages held to one-way imports."""
    return any(name == p or name.startswith(p + ".") for p in ONE_WAY)


@pytest.fixture(scope="module")
def graph() -> Graph:
    """The import graph of the installed wsanalyze package."""
    return import_graph(Path(wsanalyze.__file__).parent, "wsanalyze")


def test_sources_and_the_store_sit_on_no_import_cycle(graph):
    """No module of the sources or the store is part of any import cycle."""
    assert {m for m in graph if m.startswith("wsanalyze.sources.")}, "no sources modules found"
    bad = [c for c in cycles(graph) if any(one_way(m) for m in c)]
    assert not bad, "import cycles through the sources:\n" + describe(graph, bad)


def test_other_import_cycles_are_listed(graph):
    """Cycles outside the sources are also listed as a warning, one readable cycle each."""
    rest = [c for c in cycles(graph) if not any(one_way(m) for m in c)]
    if rest:
        warnings.warn(ImportCycleWarning(describe(graph, rest)), stacklevel=1)


def test_the_whole_package_has_no_import_cycle(graph):
    """No import cycle anywhere in wsanalyze."""
    found = cycles(graph)
    assert not found, "import cycles:\n" + describe(graph, found)


def test_the_walker_sees_relative_lazy_and_submodule_imports(tmp_path):
    """The graph follows relative, lazy and ``from pkg import sub`` imports, and packages run first."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from demo import a  # the package imports its module\n")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def late():\n    from ..c import thing\n")
    (pkg / "c.py").write_text("import demo.a\nthing = 1\n")
    (pkg / "d.py").write_text("from . import c\nfrom .sub import b\n")
    found = import_graph(pkg, "demo")
    assert found == {
        "demo": {"demo.a"},
        "demo.a": {"demo.sub", "demo.sub.b"},  # importing sub.b runs sub/__init__ first
        "demo.sub": set(),
        "demo.sub.b": {"demo.c"},  # demo/__init__ is already running: no edge to it
        "demo.c": {"demo.a"},
        "demo.d": {"demo.c", "demo.sub", "demo.sub.b"},
    }
    assert cycles(found) == [["demo.a", "demo.c", "demo.sub.b"]]
    assert a_cycle(found, ["demo.a", "demo.c", "demo.sub.b"]) == [
        "demo.a",
        "demo.sub.b",
        "demo.c",
        "demo.a",
    ]
