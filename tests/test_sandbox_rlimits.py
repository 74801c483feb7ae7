"""The weaker ``isolation: rlimits`` mode, and the refusal when bubblewrap is missing."""

from __future__ import annotations

import logging

import pytest
from sandbox_programs import CORRECT, FORGER, LEFT_BEHIND, TESTS, TIMEOUT, clean_around

from vstar.checkers.code import CodeChecker, check_programs
from vstar.errors import VstarError
from vstar.sandbox.client import PROGRAM_ENV


@pytest.fixture(scope="module")
def shared_plain_checker():
    checker = CodeChecker({"isolation": "rlimits", "timeout": TIMEOUT, "workers": 2})
    checker.check([CORRECT], [TESTS], [""])
    yield checker
    checker.close()


@pytest.fixture()
def plain_checker(shared_plain_checker):
    yield from clean_around(shared_plain_checker)


def test_missing_bwrap_is_refused_with_a_clear_message():
    with pytest.raises(VstarError, match="bubblewrap not found.*isolation: rlimits"):
        check_programs([CORRECT], [TESTS], [""], {"bwrap_path": "/nonexistent/bwrap"})


def test_rlimits_mode_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="vstar.sandbox.harness"):
        verdicts = check_programs([CORRECT], [TESTS], [""], {"isolation": "rlimits", "workers": 1})
    assert verdicts[0].correct
    assert any("WITHOUT bubblewrap" in record.message for record in caplog.records)


def test_rlimits_mode_verdicts(plain_checker):
    programs = {
        CORRECT: "passed",
        "def f(x):\n    while True:\n        pass\n": "timeout",
        CORRECT + "import os\nos._exit(0)\n": "error",
        "class Sly:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Sly()\n": "failed",
        "data = bytearray(6 * 1024 ** 3)\n" + CORRECT: "error",
        FORGER: "error",
    }
    verdicts = plain_checker.check(list(programs), [TESTS] * len(programs), [""] * len(programs))
    assert [verdict.status for verdict in verdicts] == list(programs.values())


def test_rlimits_mode_kills_what_a_program_leaves(plain_checker):
    verdict = plain_checker.check([LEFT_BEHIND + CORRECT], [TESTS], [""])[0]
    assert verdict.status == "passed"  # and the fixture finds no process left


def test_rlimits_mode_clears_the_environment(monkeypatch):
    monkeypatch.setenv("VSTAR_TEST_SECRET", "hunter2")
    program = "import os\ndef f():\n    return os.environ.get('VSTAR_TEST_SECRET')\nENVIRONMENT = dict(os.environ)\n"
    tests = ["assert f() == 'hunter2'", f"assert ENVIRONMENT == {dict(PROGRAM_ENV)!r}"]
    with CodeChecker({"isolation": "rlimits", "timeout": TIMEOUT, "workers": 1}) as fresh:
        verdict = fresh.check([program], [tests], [""])[0]
    assert verdict.tests == ("failed", "passed")
