"""The README's example runs and its Set-up commands stay as documented."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.skipif(
    not README.is_file(), reason="README.md is not beside the tests (installed copy)"
)


def _code_blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_readme_setup_commands():
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    assert [b.strip() for b in _code_blocks(setup, "bash")] == [
        "pip install . && python -m skmoe demo",
        'pip install -e ".[test]" && python -m pytest',
    ]


def test_readme_python_example_runs(capsys):
    blocks = _code_blocks(README.read_text(encoding="utf-8"), "python")
    assert blocks
    for block in blocks:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["mean"].shape == namespace["std"].shape == (133,)
    assert namespace["gate"].shape == (133, 4)
    assert capsys.readouterr().out.strip()
