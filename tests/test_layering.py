"""The package's structure as tests: import layering, no import cycles, folder sizes, public surfaces.

Layers, lowest first: ``core`` (the format contract, JSON typing, errors, the retry policy, read timeouts) <-
``reader`` (the streaming reader) and ``convert`` (the converter), which never import each other <-
``testing`` (helpers behind the ``testing`` extra) <- ``tools`` (the CLI). A layer imports only itself and the
layers below it, lazily imported modules included, so a user who installs the reader never pulls the
converter and the converter never the reader or the CLI.

Inside ``reader``, the pipeline's stages are sub-packages under the modules that compose them (``dataset``,
``loader``, ``pipeline``); a stage imports only those before it in planning, fetching, parsing, decoding,
scheduling, assembling.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "reader", "convert", "testing", "tools")
# what each subpackage may import from lerobot_wds (besides itself)
ALLOWED = {
    "core": set(),
    "reader": {"core"},
    "convert": {"core"},
    "testing": {"core", "reader", "convert", None},  # None: the root package, which re-exports the reader lazily
    "tools": {"core", "reader", "convert", "testing", None},
}
MAX_MODULES_PER_FOLDER = 15


def _modules() -> dict[str, Path]:
    out = {"lerobot_wds": ROOT / "__init__.py"}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(("lerobot_wds", *parts))] = path
    return out


MODULES = _modules()


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path, *, top_level_only: bool, runtime_only: bool = False) -> set[str]:
    """The lerobot_wds modules ``path`` imports (``from pkg import name`` counts ``pkg.name`` if a module).

    ``top_level_only``: module-level statements only; else lazy imports inside functions too, and with
    ``runtime_only`` without the ``if TYPE_CHECKING:`` ones."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else _runtime_nodes(tree) if runtime_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lerobot_wds"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lerobot_wds"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
    return {m for m in found if m in MODULES}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_imports_follow_the_layers(module: str) -> None:
    layer = _layer(module)
    assert layer is not None
    bad = sorted(
        m for m in _imports(MODULES[module], top_level_only=False) if _layer(m) not in ALLOWED[layer] | {layer}
    )
    allowed = sorted(str(a) for a in ALLOWED[layer])
    assert not bad, f"{module} ({layer}) imports {bad}; {layer} may import only {allowed}"


# The reader's stages, in the order they may import each other: a stage imports only the stages before it (the
# scheduler asks the frame pool, which owns GOP geometry and decoded memory; assembling builds from both).
READER_STAGES = ("planning", "fetching", "parsing", "decoding", "scheduling", "assembling")


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "reader" and parts[2] in READER_STAGES else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _stage(m)))
def test_reader_stages_import_only_earlier_stages(module: str) -> None:
    stage = _stage(module)
    assert stage is not None
    earlier = set(READER_STAGES[: READER_STAGES.index(stage)])
    imported = {_stage(m) for m in _imports(MODULES[module], top_level_only=False)} - {None, stage}
    assert imported <= earlier, (
        f"{module} ({stage}) imports the stages {sorted(imported - earlier)}; a stage imports only those "
        f"before it in {READER_STAGES}"
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Returns one cycle of ``graph`` (a path that ends where it starts), or None when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles() -> None:
    """Module-level imports form no cycle, so no import order holds the package up; nor do the lazy imports
    inside functions (a cycle held by a lazy import is still a cycle). A package importing its own submodules
    (its ``__init__`` re-exporting them) is no cycle."""
    for top_level_only in (True, False):
        graph = {
            m: {
                n
                for n in _imports(p, top_level_only=top_level_only, runtime_only=True)
                if not n.startswith(m + ".")
            }
            - {m}
            for m, p in MODULES.items()
        }
        cycle = find_cycle(graph)
        assert cycle is None, (
            f"import cycle ({'module level' if top_level_only else 'lazy imports included'}): "
            + (" -> ".join(cycle or []))
        )


def test_the_checks_see_imports_and_cycles(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text(
        "from lerobot_wds.core.format import FormatError\nimport lerobot_wds.convert.plan\n"
        "def f():\n    from lerobot_wds.tools import cli\n"
    )
    assert _imports(a, top_level_only=True) == {"lerobot_wds.core.format", "lerobot_wds.convert.plan"}
    assert "lerobot_wds.tools.cli" in _imports(a, top_level_only=False)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_folder_is_a_flat_list_of_many_modules() -> None:
    """A package folder holds at most 15 modules; more means it wants sub-packages named for what they do."""
    folders = {path.parent for path in MODULES.values()}
    crowded = {
        str(folder.relative_to(ROOT)): n
        for folder in folders
        if (n := len(list(folder.glob("*.py")))) > MAX_MODULES_PER_FOLDER
    }
    assert not crowded, f"folders with more than {MAX_MODULES_PER_FOLDER} modules: {crowded}"


@pytest.mark.parametrize(
    "package",
    [
        "lerobot_wds",
        "lerobot_wds.reader",
        "lerobot_wds.convert",
        "lerobot_wds.convert.mp4",
        "lerobot_wds.convert.source",
        "lerobot_wds.testing",
        "lerobot_wds.tools",
        "lerobot_wds.tools.verify",
    ],
)
def test_public_surface_is_declared(package: str) -> None:
    import importlib

    mod = importlib.import_module(package)
    assert mod.__all__, package
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{package}.__all__ names {missing}, which it does not define"
