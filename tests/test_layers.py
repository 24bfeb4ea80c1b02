"""The package's import graph points one way, and the study's vocabulary is the one source of its
names (xmd_core.vocabulary)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

from xmd_core import vocabulary
from xmd_core.config import REPO_ROOT

PACKAGE = REPO_ROOT / "xmd_core"
#: Import cycles still to break: they may shrink, never grow (none left).
KNOWN_CYCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").relative_to(REPO_ROOT).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    """Edges module -> the project's module it imports (at any depth of the file)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([node.module] if node.module else []))
                # `from . import x` imports the submodule x when there is one, else a name of the package
                targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules] or [base]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                targets = [n for n in names if n.startswith("xmd_core")]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def test_the_import_graph_has_no_cycle_but_the_known_ones():
    cycles = [c for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    unknown = [sorted(c) for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert not unknown, f"new import cycle(s): {unknown}"


@pytest.mark.parametrize(("low", "high"), [("xmd_core.config", "xmd_core.models"), ("xmd_core.vocabulary", "xmd_core"),
                                           ("xmd_core.keys", "xmd_core"), ("xmd_core.atomic", "xmd_core"),
                                           ("xmd_core.distill", "xmd_core.transfer"), ("xmd_core.config", "xmd_core.study"),
                                           ("xmd_core.study", "xmd_core.experts"), ("xmd_core.study", "xmd_core.checkpoints"),
                                           ("xmd_core.experts", "xmd_core.checkpoints"), ("xmd_core.evaluate", "xmd_core.study_pool"),
                                           ("xmd_core.switch", "xmd_core.study_pool"), ("xmd_core.distill", "xmd_core.study_pool")])
def test_a_lower_layer_never_imports_a_higher_one(low, high):
    graph = import_graph()
    reached = nx.descendants(graph, low)
    wrong = sorted(m for m in reached if m == high or m.startswith(high + "."))
    assert not wrong, f"{low} reaches {wrong}"


#: The stages that keep finished work, each through the one artifact store (`xmd_core.store`).
STORING_STAGES = ("xmd_core.world.build", "xmd_core.experts", "xmd_core.evaluate", "xmd_core.switch_tagger",
                  "xmd_core.switch", "xmd_core.distill")


def test_every_stage_keeps_its_work_through_the_store():
    graph = import_graph()
    assert [m for m in STORING_STAGES if not graph.has_edge(m, "xmd_core.store")] == []
    for module in STORING_STAGES:
        source = (REPO_ROOT / (module.replace(".", "/") + ".py")).read_text()
        # a record written by hand would bypass the store's rules
        assert "write_text_atomically(json.dumps" not in source, f"{module} writes a record by hand, not through the store"


def test_the_registry_and_the_recipes_are_the_vocabulary_s():
    from xmd_core.distill import RECIPES
    from xmd_core.models.registry import REGISTRY

    assert tuple(REGISTRY) == vocabulary.MODEL_NAMES
    assert tuple(RECIPES) == vocabulary.RECIPE_NAMES and vocabulary.DEFAULT_RECIPE == "teacher-labels"
    assert vocabulary.run_for("qwen2-vl", "generate") == "qwen2-vl@generate" and vocabulary.run_for("qwen2-vl") == "qwen2-vl"


#: The longest a function of the package may be (lines, docstring included): about a screen.
MAX_FUNCTION_LINES = 70


def test_no_function_is_longer_than_a_screen():
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                too_long.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
