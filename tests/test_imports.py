"""The import graph of ``vstar``: no cycles between its modules, and each module imports on
its own (in an interpreter that has imported no other vstar module).

The graph comes from the code's own import statements, read with ``ast``: module-level and
function-level ones alike (an import inside a function still ties the two modules, so a
function-level import cannot hide a cycle), ``TYPE_CHECKING`` ones included. ``from vstar.a
import b`` reaches the submodule ``vstar.a.b`` where there is one, and an import of
``vstar.a.b`` also reaches the package ``vstar.a`` (its ``__init__`` runs first) unless the
importing module lies inside ``vstar.a``. docs/layout.md says which package may import which;
the imports are held to its table.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "vstar"
LAYOUT = REPO / "docs" / "layout.md"


def module_files(root: Path = REPO) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its ``__init__.py``)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported_modules(module: str, path: Path, modules: dict) -> list[tuple[str, int]]:
    """(vstar module, line) for each module an import statement of ``module`` names, at any depth."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding the module (or the package itself)
                parts = module.split(".")[: None if is_package else -1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:  # a submodule where there is one, else a name the base module holds
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in modules else base, node.lineno))
    return [(name, line) for name, line in found if name in modules]


def import_graph(root: Path = REPO) -> dict[str, dict[str, int]]:
    """module -> {imported vstar module: line of the first import that reaches it}."""
    modules = module_files(root)
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for module, path in modules.items():
        for name, line in _imported_modules(module, path, modules):
            parts = name.split(".")
            parents = [".".join(parts[:i]) for i in range(1, len(parts))]  # their __init__ runs first
            reached = [name] + [p for p in parents if not module.startswith(p + ".")]
            for target in reached:
                if target != module:
                    graph[module].setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The shortest cycle through each module that lies on one (each cycle once)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found: dict[tuple, list[str]] = {}
    for group in groups:
        for start in sorted(group):
            cycle = _shortest_cycle(graph, group, start)
            first = cycle.index(min(cycle))
            found.setdefault(tuple(cycle[first:-1] + cycle[:first]), cycle)
    return list(found.values())


def _shortest_cycle(graph: dict[str, dict[str, int]], group: set[str], start: str) -> list[str]:
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return path[::-1] + [start]
            if target in group and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"no cycle found in the group {sorted(group)}")


def describe(cycle: list[str], graph: dict[str, dict[str, int]], root: Path = REPO) -> str:
    """``a -> b (a.py:12) -> a (b.py:30)``: each step with the file and line of its import."""
    files = module_files(root)
    steps = [cycle[0]]
    for source, target in zip(cycle, cycle[1:]):
        path = files[source].relative_to(root)
        steps.append(f"{target} ({path}:{graph[source][target]})")
    return " -> ".join(steps)


def test_no_import_cycles_between_vstar_modules():
    graph = import_graph()
    found = [describe(cycle, graph) for cycle in cycles(graph)]
    assert not found, "import cycles between vstar modules:\n  " + "\n  ".join(found)


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .low import thing\n")
    (package / "sub" / "low.py").write_text("def thing():\n    from vstar import top\n")
    (package / "top.py").write_text("from vstar.sub import low\n")
    (package / "side.py").write_text("import vstar.sub.low\nfrom vstar.sub import thing\nfrom . import top\n")
    graph = import_graph(tmp_path)
    assert graph["vstar.sub"] == {"vstar.sub.low": 1}
    assert graph["vstar.sub.low"] == {"vstar.top": 2}
    assert graph["vstar.top"] == {"vstar.sub.low": 1, "vstar.sub": 1}
    assert graph["vstar.side"] == {"vstar.sub.low": 1, "vstar.sub": 1, "vstar.top": 3}
    found = {frozenset(cycle) for cycle in cycles(graph)}
    assert found == {frozenset({"vstar.sub.low", "vstar.top"}), frozenset({"vstar.sub", "vstar.sub.low", "vstar.top"})}
    assert all("-> vstar.top (vstar/sub/low.py:2)" in describe(cycle, graph, tmp_path) for cycle in cycles(graph))


def layout_table(text: str) -> dict[str, list[str]]:
    """docs/layout.md's table, in its order: package -> the packages it may import."""
    table = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+/?`", cells[0]):
            table[cells[0].strip("`/")] = re.findall(r"`(\w+)`", cells[2])
    return table


def package_of(module: str) -> str:
    """``vstar.sampling.hf`` -> ``sampling``; ``vstar.stages`` -> ``stages``."""
    return module.split(".")[1]


def test_packages_import_only_what_docs_layout_allows():
    table = layout_table(LAYOUT.read_text(encoding="utf-8"))
    packages = {package_of(module) for module in module_files() if module != PACKAGE}
    assert sorted(table) == sorted(packages), "docs/layout.md must list every package of vstar, and only those"
    for floor, (package, allowed) in enumerate(table.items()):
        below = list(table)[:floor]
        assert set(allowed) <= set(below), f"docs/layout.md: {package} may import only packages listed above it"
    graph = import_graph()
    found = [
        f"{module} imports {target} (line {line})"
        for module, targets in graph.items() if module != PACKAGE
        for target, line in targets.items()
        if target != PACKAGE and package_of(target) != package_of(module)
        and package_of(target) not in table[package_of(module)]
    ]
    assert not found, "imports that docs/layout.md does not allow:\n  " + "\n  ".join(found)


def test_the_layout_table_is_read_as_written():
    text = "| package | holds | may import |\n|---|---|---|\n| `errors` | the error | — |\n| `sandbox/` | x, `y` | `errors` |\n"
    assert layout_table(text) == {"errors": [], "sandbox": ["errors"]}


# Imports each module in a child forked from an interpreter that holds the third-party
# libraries the package imports at module level but no vstar module: each child imports one
# vstar module as a fresh interpreter would, without paying for torch again.
IMPORT_EACH = r"""
import importlib, os, sys, traceback
modules, libraries = sys.argv[1].split(","), sys.argv[2].split(",")
for library in filter(None, libraries):
    try:
        importlib.import_module(library)
    except ImportError:
        pass
assert not [name for name in sys.modules if name.split(".")[0] == "vstar"]
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc()[-3000:].encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        error = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        print(f"--- {module}\n{error}")
"""


def _module_level_libraries(files: dict[str, Path]) -> list[str]:
    """Third-party modules that vstar modules import when they are imported (outside functions)."""
    names = set()
    for path in files.values():
        for node in _outside_functions(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {PACKAGE})


def _outside_functions(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _outside_functions(child)


def test_every_module_imports_on_its_own():
    files = module_files()
    libraries = _module_level_libraries(files)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, ",".join(files), ",".join(libraries)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "", "modules that fail to import on their own:\n" + result.stdout[-6000:]
