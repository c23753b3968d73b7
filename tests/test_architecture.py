"""The shape of the code base: no import cycles, and the device never loads hub code.

The import graph is read from the source with ``ast`` (nothing is imported), so a
test failure names the file and line of the offending import.

Two kinds of import are told apart:

* **eager** imports run when the module is imported: statements in the module
  body, including those under a top-level ``try``/``if`` (but not under
  ``if TYPE_CHECKING:``).
* **deferred** imports run later or never: inside a function or method, under
  ``if TYPE_CHECKING:``, and ``importlib.import_module("literal")`` calls.

Cycles are checked twice. A cycle of eager imports breaks at run time (a
half-initialised module), so it is checked on its own with a message that says
so. Deferred imports are then added: a function-level import is how a real
cycle is usually hidden, and two modules that need each other cannot be
understood, tested or replaced apart, so a cycle through a deferred import is a
design fault too, even though Python would load it. Imports made only to defer
a heavy or optional dependency (picamera2, the daemon from its CLI command) are
not cycles and are unaffected.

The hub-only rule counts every import, deferred ones included: a lazy import of
hub code from the device side still loads hub code on the device. It also
follows imports through ``hil/`` (which may import hub code itself), so a device
module that reaches the hub through a rig helper is caught as well.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Top-level packages whose modules are graphed. Only ``agent`` is checked for
# cycles; ``hil`` is graphed so the hub-only rule can follow imports through it.
GRAPHED_PACKAGES = ("agent", "hil")
CHECKED_PACKAGE = "agent"

HUB_ONLY_PACKAGES = ("agent.hub", "agent.cli.hub_commands")
HUB_ONLY_MODULES = ("agent.cli.hub_main",)
# Allowed to import hub code (they are the operator's or the rig's, never the device's).
HUB_IMPORT_ALLOWED_PACKAGES = ("hil",)


@dataclass(frozen=True)
class ImportEdge:
    target: str
    path: Path
    line: int
    deferred: bool

    def where(self, root: Path) -> str:
        kind = "deferred" if self.deferred else "eager"
        return f"{self.path.relative_to(root)}:{self.line} ({kind})"


@dataclass
class ImportGraph:
    root: Path
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, list[ImportEdge]] = field(default_factory=dict)

    def successors(self, module: str, *, include_deferred: bool) -> list[ImportEdge]:
        return [e for e in self.edges[module] if include_deferred or not e.deferred]


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def build_import_graph(root: Path, packages: Iterable[str] = GRAPHED_PACKAGES) -> ImportGraph:
    graph = ImportGraph(root=root)
    sources: dict[str, tuple[Path, bool]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name, is_package = module_name(path, root)
            sources[name] = (path, is_package)
            graph.modules[name] = path
    for name, (path, is_package) in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _ImportCollector(name, is_package, graph.modules)
        collector.visit(tree)
        graph.edges[name] = [
            ImportEdge(target, path, line, deferred) for target, line, deferred in collector.found
        ]
    return graph


class _ImportCollector(ast.NodeVisitor):
    """Records imports of graphed modules, marking those not run at import time."""

    def __init__(self, module: str, is_package: bool, known: dict[str, Path]) -> None:
        self.module = module
        self.is_package = is_package
        self.known = known
        self.depth = 0  # > 0 inside a function body or an ``if TYPE_CHECKING:`` block
        self.found: list[tuple[str, int, bool]] = []

    def _add(self, dotted: str, line: int) -> None:
        target = self._nearest_known(dotted)
        if target is not None and target != self.module:
            self.found.append((target, line, self.depth > 0))

    def _nearest_known(self, dotted: str) -> str | None:
        parts = dotted.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in self.known:
                return candidate
            parts.pop()
        return None

    def _deeper(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = _deeper
    visit_AsyncFunctionDef = _deeper
    visit_Lambda = _deeper

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            self.depth += 1
            for child in node.body:
                self.visit(child)
            self.depth -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            package = ".".join([*base, *([node.module] if node.module else [])])
        else:
            package = node.module or ""
        for alias in node.names:
            submodule = f"{package}.{alias.name}"
            self._add(submodule if submodule in self.known else package, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if (
            name in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            # Loaded by name at call time: always deferred, even in the module body.
            self.depth += 1
            self._add(node.args[0].value, node.lineno)
            self.depth -= 1
        self.generic_visit(node)


def find_cycles(graph: ImportGraph, package: str, *, include_deferred: bool) -> list[list[str]]:
    """Strongly connected components of more than one module (or a self-import), Tarjan."""
    nodes = [m for m in graph.modules if m == package or m.startswith(package + ".")]
    inside = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def successors(node: str) -> list[str]:
        return sorted(
            {
                e.target
                for e in graph.successors(node, include_deferred=include_deferred)
                if e.target in inside
            }
        )

    # Iterative Tarjan, so a deep package tree cannot hit the recursion limit.
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, next_child = work.pop()
            if next_child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = successors(node)
            descended = False
            for i in range(next_child, len(children)):
                child = children[i]
                if child not in index:
                    work.append((node, i + 1))
                    work.append((child, 0))
                    descended = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if descended:
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors(node):
                    cycles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def describe_cycle(graph: ImportGraph, component: list[str], *, include_deferred: bool) -> str:
    members = set(component)
    lines = [" <-> ".join(component)]
    for module in component:
        for edge in graph.successors(module, include_deferred=include_deferred):
            if edge.target in members:
                lines.append(f"    {module} -> {edge.target}  at {edge.where(graph.root)}")
    return "\n".join(lines)


def is_hub_only(module: str) -> bool:
    return module in HUB_ONLY_MODULES or any(
        module == p or module.startswith(p + ".") for p in HUB_ONLY_PACKAGES
    )


def may_import_hub(module: str) -> bool:
    return is_hub_only(module) or any(
        module == p or module.startswith(p + ".") for p in HUB_IMPORT_ALLOWED_PACKAGES
    )


def device_paths_to_hub(graph: ImportGraph, package: str = CHECKED_PACKAGE) -> list[str]:
    """For each device-side module that reaches hub-only code, the import chain that does."""
    problems: list[str] = []
    for start in sorted(graph.modules):
        if not (start == package or start.startswith(package + ".")) or may_import_hub(start):
            continue
        came_from: dict[str, tuple[str, ImportEdge] | None] = {start: None}
        queue: deque[str] = deque([start])
        hit: str | None = None
        while queue and hit is None:
            node = queue.popleft()
            for edge in graph.successors(node, include_deferred=True):
                if edge.target in came_from:
                    continue
                came_from[edge.target] = (node, edge)
                if is_hub_only(edge.target):
                    hit = edge.target
                    break
                queue.append(edge.target)
        if hit is None:
            continue
        chain: list[str] = []
        node = hit
        while (step := came_from[node]) is not None:
            source, edge = step
            chain.append(f"    {source} -> {node}  at {edge.where(graph.root)}")
            node = source
        problems.append(f"{start} loads hub-only {hit}:\n" + "\n".join(reversed(chain)))
    return problems


# --- the rules, on the real tree -------------------------------------------------------


def test_the_graph_is_read_at_all() -> None:
    # Guards against a silently empty graph (a moved tree, a parser change) passing the rules.
    graph = build_import_graph(REPO_ROOT)
    assert "agent.runtime.daemon" in graph.modules
    assert "agent.hub.store.alert_store" in graph.modules
    eager = {(m, e.target) for m, es in graph.edges.items() for e in es if not e.deferred}
    deferred = {(m, e.target) for m, es in graph.edges.items() for e in es if e.deferred}
    assert ("agent.runtime.daemon", "agent.runtime.capture_gate") in eager
    assert ("agent.cli.hub_main", "agent.cli.hub_commands.alerts_cmd") in eager
    assert ("agent.cli.agent_commands.run_cmd", "agent.runtime.daemon") in deferred


def test_no_import_cycles_among_eager_imports() -> None:
    graph = build_import_graph(REPO_ROOT)
    cycles = find_cycles(graph, CHECKED_PACKAGE, include_deferred=False)
    report = "\n".join(describe_cycle(graph, c, include_deferred=False) for c in cycles)
    assert not cycles, f"import cycles (these fail at import time):\n{report}"


def test_no_import_cycles_through_deferred_imports() -> None:
    graph = build_import_graph(REPO_ROOT)
    cycles = find_cycles(graph, CHECKED_PACKAGE, include_deferred=True)
    report = "\n".join(describe_cycle(graph, c, include_deferred=True) for c in cycles)
    assert not cycles, f"import cycles hidden behind function-level imports:\n{report}"


def test_device_side_never_imports_hub_only_code() -> None:
    graph = build_import_graph(REPO_ROOT)
    problems = device_paths_to_hub(graph)
    assert not problems, "device-side code imports hub-only code:\n" + "\n".join(problems)


# --- the checker itself can fail ---------------------------------------------------------


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_an_eager_cycle_with_relative_imports(tmp_path: Path) -> None:
    _write_tree(
        tmp_path,
        {
            "agent/__init__.py": "",
            "agent/trust/__init__.py": "",
            "agent/trust/a.py": "from . import b\n",
            "agent/trust/b.py": "from ..trust.a import thing\n",
        },
    )
    graph = build_import_graph(tmp_path, ("agent",))
    assert find_cycles(graph, "agent", include_deferred=False) == [
        ["agent.trust.a", "agent.trust.b"]
    ]


def test_checker_separates_deferred_cycles(tmp_path: Path) -> None:
    _write_tree(
        tmp_path,
        {
            "agent/__init__.py": "",
            "agent/a.py": "import agent.b\n",
            "agent/b.py": "def late() -> None:\n    from agent import a\n",
        },
    )
    graph = build_import_graph(tmp_path, ("agent",))
    assert find_cycles(graph, "agent", include_deferred=False) == []
    assert find_cycles(graph, "agent", include_deferred=True) == [["agent.a", "agent.b"]]


def test_checker_finds_device_code_reaching_the_hub(tmp_path: Path) -> None:
    _write_tree(
        tmp_path,
        {
            "agent/__init__.py": "",
            "agent/hub/__init__.py": "",
            "agent/hub/store.py": "",
            "agent/cli/__init__.py": "",
            "agent/cli/hub_main.py": "from agent.hub import store\n",
            "agent/runtime/__init__.py": "",
            "agent/runtime/direct.py": "def f() -> None:\n    import agent.hub.store\n",
            "agent/runtime/via_rig.py": ("import importlib\nimportlib.import_module('hil.rig')\n"),
            "agent/runtime/clean.py": "from typing import TYPE_CHECKING\n",
            "hil/__init__.py": "",
            "hil/rig.py": "from agent.cli import hub_main\n",
        },
    )
    graph = build_import_graph(tmp_path)
    problems = device_paths_to_hub(graph)
    offenders = sorted(p.split(" ", 1)[0] for p in problems)
    assert offenders == ["agent.runtime.direct", "agent.runtime.via_rig"]
    via_rig = next(p for p in problems if p.startswith("agent.runtime.via_rig"))
    assert "hil/rig.py:1" in via_rig and "agent/runtime/via_rig.py:2 (deferred)" in via_rig
