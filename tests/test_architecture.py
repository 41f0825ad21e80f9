"""The tree tells the architecture: no import cycles between ncviz's modules, nothing in ncviz
imports the dashboard's framework, and the dashboard imports the demo catalog, not the trainers.

Imports are read from the source, those inside functions too (a deferred import is still a
dependency); only ``if TYPE_CHECKING`` blocks are left out."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar  # at module level: dataclass reads the test's ClassVar from here

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ncviz"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(path: Path, known: set[str]) -> set[str]:
    """The ncviz modules ``path`` imports anywhere but under ``if TYPE_CHECKING`` (``from a
    import b`` names ``a.b`` when that is a module, else ``a``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                if not _is_type_checking(node):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in known)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                for alias in node.names:
                    if f"{base}.{alias.name}" in known:
                        found.add(f"{base}.{alias.name}")
                    elif base in known:
                        found.add(base)
            else:
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)])

    visit(ast.parse(path.read_text()).body)
    found.discard(module)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_ncviz_has_no_import_cycles():
    modules = _modules()
    graph = {name: _imported(path, set(modules)) for name, path in modules.items()}
    assert graph["ncviz.analysis.dispatch"] >= {"ncviz.sources"}  # the reader sees edges
    assert _cycles(graph) == []


def test_ncviz_never_imports_streamlit():
    offenders = [
        name
        for name, path in _modules().items()
        if any(
            isinstance(node, (ast.Import, ast.ImportFrom))
            and any(
                (getattr(node, "module", None) or alias.name).split(".")[0] == "streamlit"
                for alias in node.names
            )
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert offenders == []


def test_the_dashboard_imports_the_demo_catalog_not_the_trainers():
    trainers = (
        "ncviz.demos.classification",
        "ncviz.demos.environments",
        "ncviz.demos.language",
        "ncviz.demos.build",
    )
    used = [
        (path.name, node.module)
        for path in (ROOT / "app").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(trainers)
    ]
    assert used == []


def test_every_figure_builder_is_reachable_as_plots_dot_name():
    """Pages call ``plots.<name>``: each public function of a plots module is exported."""
    from ncviz import plots

    defined = {
        node.name
        for path in (PACKAGE / "plots").glob("*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }
    assert defined and defined <= set(plots.__all__)


def test_a_new_source_kind_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    """A kind ncviz does not know — a CSV whose columns are features and a 'label' — added
    as one Source subclass and one entry in SOURCES: analyze() reads it like any other."""
    import numpy as np
    import pandas as pd

    from ncviz import sources
    from ncviz.analysis import Analysis, RowKey, analyze, make_table, result_rows
    from ncviz.metrics import collapse_result
    from ncviz.sources.base import Source

    @dataclass(frozen=True)
    class CsvFeatures(Source):
        kind: ClassVar[str] = "csv-features"
        path: Path

        @classmethod
        def detect(cls, path, options):
            return cls(path) if path.suffix == ".csv" else None

        def analyze(self, options, progress=None):
            frame = pd.read_csv(self.path)
            result = collapse_result(
                frame.drop(columns="label").to_numpy(), frame["label"], options=options.metrics
            )
            rows = result_rows(
                RowKey(self.path.stem, self.path.name, None, None, "csv"), "csv", result
            )
            return Analysis(
                run=self.path.stem,
                table=make_table(rows),
                layers=["csv"],
                results={(self.path.name, "csv"): result},
                checkpoints=[self.path.name],
                origin=self,
            )

    monkeypatch.setattr(sources, "SOURCES", (CsvFeatures, *sources.SOURCES))  # the one line
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    frame = pd.DataFrame(rng.standard_normal((30, 4)) + labels[:, None], columns=list("abcd"))
    frame.assign(label=labels).to_csv(tmp_path / "mine.csv", index=False)
    analysis = analyze(tmp_path / "mine.csv", tau=0.1)
    expected = collapse_result(frame.to_numpy(), labels, tau=0.1).metrics["nc1"]
    assert analysis.metrics_at("mine.csv", "csv")["nc1"] == expected
    assert analysis.origin == CsvFeatures(tmp_path / "mine.csv")


def _calls(path: Path, attribute: str) -> int:
    """How many calls ``….attribute(…)`` the module at ``path`` makes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sum(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == attribute
        for node in ast.walk(tree)
    )


def test_one_pass_loop_turns_batches_into_statistics():
    """Outside the metrics engine (and its in-memory helpers), only the pass driver starts a
    second pass: extraction of datasets, user loaders, ONNX graphs and token corpora are
    adapters of ``run_passes``, not loops of their own."""
    starters = {
        name
        for name, path in _modules().items()
        if not name.startswith("ncviz.metrics") and _calls(path, "start_second_pass")
    }
    assert starters == {"ncviz.extract.passes"}
