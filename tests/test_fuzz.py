"""The bad-input standard of issue 19 on every subcommand (the quick cases, in-process; `bench/fuzz.py`
runs them all, as processes, with the slow and signal cases)."""

from __future__ import annotations

import pytest
from fuzz_cases import CASES, Case, keep, snapshot, violations

from diffparam.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", [c for c in CASES if not c.slow], ids=lambda c: c.name)
def test_bad_input_fails_cleanly(case: Case, tmp_path, monkeypatch, capsys) -> None:
    keep(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    status = main(list(case.args))
    stderr = capsys.readouterr().err
    assert not violations(case, status, stderr, before, snapshot(tmp_path))
