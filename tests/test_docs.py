"""The Python examples of the README, docs/trust.md and docs/architectures.md run as written (in a
temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
TRUST = README.parent / "docs" / "trust.md"


def test_readme_python_examples_run(tmp_path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README should show the Python API"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    assert (tmp_path / "unit.png").is_file() and (tmp_path / "units.png").is_file()


def test_trust_doc_python_example_runs(tmp_path, monkeypatch, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", TRUST.read_text(encoding="utf-8"), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(TRUST), "exec"), {"__name__": "trust_doc"})
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 and all(float(x) == float(x) for x in printed)  # three numbers, none NaN


def test_architectures_doc_python_example_runs(tmp_path, monkeypatch, capsys) -> None:
    doc = README.parent / "docs" / "architectures.md"
    (code,) = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(doc), "exec"), {"__name__": "architectures_doc"})
    assert capsys.readouterr().out.splitlines() == ["RGB images of exactly 32x32 px", "tokens 1+4x4"]
    assert (tmp_path / "vit_cls.png").is_file()
