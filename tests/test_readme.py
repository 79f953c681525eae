"""The README's Python snippets run as written, against a small root this test converts.

Convention (for any README of this project): every fenced block opened with three backticks and ``python`` is
a complete program, imports included. A snippet names the converted root it reads as a string literal with a
bucket URL of any scheme (e.g. ``"s3://bucket/converted"``, ``"s3://..."``, ``"gs://..."``, ``"hf://..."``);
the test replaces each such literal, and nothing else, with the path of the root it converted from a small
LeRobot v3 dataset (written with ffmpeg), then runs the snippet in a fresh interpreter. A snippet that needs
anything else (a GPU, credentials) does not belong in a ```` ```python ```` block: use ```` ```text ````.
A comment may offer an alternative statement after a colon (``# the same in one line: loader = ...``); it
must parse, and every name it uses must be defined by the snippet (its imports, assignments) or a builtin.
"""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
PLACEHOLDER = re.compile(r"^[a-z][a-z0-9+.-]*://")


def python_snippets(text: str) -> list[str]:
    """Returns the README's ```python blocks in order."""
    return [m.group(1) for m in BLOCK.finditer(text)]


def with_root(snippet: str, root: str) -> tuple[str, int]:
    """Returns the snippet with every bucket-URL string literal replaced by ``root``, and how many were."""
    tree = ast.parse(snippet)
    spans = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and PLACEHOLDER.match(node.value)
    ]
    lines = snippet.splitlines(keepends=True)
    # replace from the end so earlier offsets stay valid (a literal never spans lines in a snippet)
    for node in sorted(spans, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        assert node.lineno == node.end_lineno, f"a multi-line root literal: {ast.unparse(node)}"
        line = lines[node.lineno - 1]
        lines[node.lineno - 1] = line[: node.col_offset] + repr(root) + line[node.end_col_offset :]
    return "".join(lines), len(spans)


def test_the_mechanism_finds_and_substitutes_placeholders() -> None:
    text = 'x\n```python\nimport a\nds = a.f("s3://bucket/r", n=1)  # "s3://in-a-comment"\n```\n```bash\nls\n```\n'
    (snippet,) = python_snippets(text)
    out, n = with_root(snippet, "/tmp/root")
    assert n == 1 and out == "import a\nds = a.f('/tmp/root', n=1)  # \"s3://in-a-comment\"\n"


def commented_alternatives(snippet: str) -> list[str]:
    """Returns the statements offered in comments (``# ...: <statement>``) that parse as an assignment or call."""
    out = []
    for line in snippet.splitlines():
        if "#" not in line:
            continue
        comment = line.split("#", 1)[1]
        for _, _, candidate in [comment.partition(": ")] if ": " in comment else []:
            try:
                tree = ast.parse(candidate.strip())
            except SyntaxError:
                continue
            if (
                tree.body
                and isinstance(tree.body[0], ast.Assign | ast.Expr)
                and any(isinstance(n, ast.Call) for n in ast.walk(tree))
            ):
                out.append(candidate.strip())
    return out


def undefined_names(snippet: str, statement: str) -> set[str]:
    """Names ``statement`` loads that neither the snippet binds (imports, assignments, loops) nor builtins."""
    bound = set(dir(builtins))
    for node in ast.walk(ast.parse(snippet)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    used = {
        n.id for n in ast.walk(ast.parse(statement)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return used - bound


def test_commented_alternatives_are_checked() -> None:
    snippet = "from m import f\nx = f()  # the same in one line: x = m.g(1)\n"
    assert commented_alternatives(snippet) == ["x = m.g(1)"]
    assert undefined_names(snippet, "x = m.g(1)") == {"m"}
    assert undefined_names("import m\n" + snippet, "x = m.g(1)") == set()


@pytest.fixture(scope="module")
def readme_root(small_lerobot_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_wds.convert.config import ConvertConfig
    from lerobot_wds.convert.pipeline import convert

    dest = tmp_path_factory.mktemp("readme") / "converted"
    convert(ConvertConfig(source=str(small_lerobot_dataset.root), dest=str(dest), progress=False))
    return dest


SNIPPETS = python_snippets(README.read_text())


def test_the_readme_has_python_snippets() -> None:
    assert SNIPPETS, f"{README}: no ```python block found"


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs_as_written(index: int, readme_root: Path, tmp_path: Path) -> None:
    for alternative in commented_alternatives(SNIPPETS[index]):
        missing = undefined_names(SNIPPETS[index], alternative)
        assert not missing, f"README python snippet {index}: '{alternative}' uses {sorted(missing)}, not imported"
    code, roots = with_root(SNIPPETS[index], str(readme_root))
    assert roots >= 1, f"README python snippet {index} names no root literal (see this test's docstring)"
    script = tmp_path / f"snippet_{index}.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, f"README python snippet {index} failed:\n{code}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_a_one_line_alternative_returns_what_the_snippet_returns(
    index: int, readme_root: Path, tmp_path: Path
) -> None:
    """``# the same in one line: loader = ...`` gives the first batch of the snippet's own ``loader``: same
    keys, dtypes, shapes and values."""
    alternatives = [a for a in commented_alternatives(SNIPPETS[index]) if a.startswith("loader = ")]
    if not alternatives:
        pytest.skip("no one-line loader alternative in this snippet")
    code, _ = with_root(SNIPPETS[index], str(readme_root))
    head = code[: code.index("\nfor ")] if "\nfor " in code else code
    alternative, _ = with_root(alternatives[0], str(readme_root))
    script = tmp_path / "alternative.py"
    script.write_text(
        head
        + "\nimport torch\nfirst = next(iter(loader))\n"
        + alternative
        + "\nother = next(iter(loader))\n"
        + "assert sorted(first) == sorted(other), (sorted(first), sorted(other))\n"
        + "for key, value in first.items():\n"
        + "    if isinstance(value, torch.Tensor):\n"
        + "        assert value.dtype == other[key].dtype, (key, value.dtype, other[key].dtype)\n"
        + "        assert torch.equal(value, other[key]), key\n"
        + "    else:\n"
        + "        assert value == other[key], key\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, f"README python snippet {index}'s one-liner differs:\n{proc.stderr[-3000:]}"
