"""Tests as the sandbox runs them: every ``assert`` becomes a check whose values are reported.

``assert a OP b`` (one comparison) -> ``if not "<placeholder>".__call__(("cmp", OP, a, b)):
raise AssertionError("<the assert's source>")``; ``assert not x`` -> ``("false", x)``; any
other ``assert x`` -> ``("true", x)``. The runner swaps the placeholder string constant for
its checker (calling ``__call__`` on it, rather than the bare constant, keeps the compiler
from warning). Asserts inside functions, loops, ``with``/``try``/``match`` blocks are
rewritten too (HumanEval's ``check``).

A test that is one line ``assert a == b`` (most are) is sent as the code of the expression
``(a, b)`` with its label; the runner evaluates it and does the check and the ``raise``
itself, which means the same and compiles faster (see ``pair_code``).

Tests are compiled here, in the harness (they are trusted data, and the sandbox runs the
same interpreter), marshalled, and cached: the samples of one problem share their tests.
"""

from __future__ import annotations

import ast
import dis
import functools
import marshal
from typing import Any

from vstar.sandbox.runner import CHECK_PLACEHOLDER

_OPERATORS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}
_LABEL_CHARS = 160


@functools.lru_cache(maxsize=8192)
def compile_test(source: str) -> bytes:
    """A test as the runner takes it, marshalled: its rewritten code object, or for
    a one-line ``assert a == b`` the pair (code of ``(a, b)`` in eval mode, label).

    Compiled here (tests are trusted data; the same interpreter runs the sandbox), so the
    children do not spend time compiling, and cached: samples of one problem share tests.
    """
    code = pair_code(source)
    if code is None:
        tree = ast.parse(source)
        spliced = _spliced(source, tree)
        if spliced is not None:  # about twice as fast as compiling a changed tree
            code = compile(spliced, "<test>", "exec", dont_inherit=True)
        else:
            code = compile(_rewrite_module(tree, source), "<test>", "exec", dont_inherit=True)
    return marshal.dumps(code)


# ------------------------------------------------------------------ one-line ``assert a == b``

# Most tests (all but a few of MBPP's) are one line ``assert <a> == <b>``. Such a line is
# compiled once, without its ``assert``, as the expression ``<a> == <b>``, and Python's own
# parser decides what it means: the pair is taken only if the expression's code ends in the
# comparison ``==`` and holds no jump at its top level (a chained comparison, ``and``/``or``,
# ``x if c else y`` all jump), that is, only if the whole line reads ``assert (<a>) == (<b>)``.
# The comparison is then replaced in the bytecode by building the pair ``(a, b)`` (same length,
# padded with NOPs). Anything else, on any Python whose bytecode this does not recognise,
# takes the parsing path.


def _pair_tails() -> tuple[bytes, bytes] | None:
    """(the bytecode ending an ``a == b`` expression, the same-length ending that builds
    ``(a, b)`` instead), learned from this interpreter's compiler; None if they do not fit."""
    compare = compile("a == b", "<test>", "eval", dont_inherit=True)
    pair = compile("(a, b)", "<test>", "eval", dont_inherit=True).co_code
    same = 0
    while same < min(len(compare.co_code), len(pair)) and compare.co_code[same] == pair[same]:
        same += 1
    same -= same % 2  # whole instructions: an opcode byte, an argument byte
    compare_tail, pair_tail = compare.co_code[same:], pair[same:]
    padding = len(compare_tail) - len(pair_tail)
    if padding < 0 or padding % 2 or len(pair_tail) < 4:
        return None
    built = pair_tail[:-2] + bytes([dis.opmap["NOP"], 0]) * (padding // 2) + pair_tail[-2:]
    try:
        works = eval(compare.replace(co_code=compare.co_code[:same] + built), {"a": 1, "b": [2]}) == (1, [2])
    except Exception:
        works = False
    return (compare_tail, built) if works else None


_PAIR_TAILS = _pair_tails()
_JUMPS = frozenset(dis.hasjrel + dis.hasjabs)
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]


def pair_code(source: str):
    """(code of the pair ``(a, b)`` in eval mode, label) for a one-line ``assert a == b``, or None."""
    line = source.rstrip()
    if _PAIR_TAILS is None or not line.startswith("assert") or "\n" in line or "\r" in line:
        return None
    if ("a" + line[6:7]).isidentifier():
        return None  # ``assert_x == 1``, or ``assert`` alone
    try:
        code = compile(line[6:].lstrip(), "<test>", "eval", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None  # the parsing path says what is wrong, or reads a statement this is not
    compare_tail, built = _PAIR_TAILS
    instructions = code.co_code
    if not instructions.endswith(compare_tail) or not _JUMPS.isdisjoint(instructions[::2]):
        return None
    if instructions[-len(compare_tail) - 2] == _EXTENDED_ARG:
        return None  # would change the pair's size (compilers do not emit it before ``==``)
    code = code.replace(co_code=instructions[: -len(compare_tail)] + built)
    return code, line.strip()[:_LABEL_CHARS]


def _spliced(source: str, tree: ast.Module) -> str | None:
    """The rewritten test as text, made by replacing each assert's span in ``source``.

    Only when every assert stands alone on its lines (nothing before it but indentation,
    nothing after it but a comment); otherwise None and the tree is rewritten instead.
    """
    lines = source.encode().splitlines(keepends=True)  # ast offsets count UTF-8 bytes
    asserts = [node for node in _statements(tree.body) if isinstance(node, ast.Assert)]
    for node in reversed(asserts):  # from the end, so earlier offsets stay valid
        before = lines[node.lineno - 1][: node.col_offset]
        after = lines[node.end_lineno - 1][node.end_col_offset :].strip()
        if before.strip() or (after and not after.startswith(b"#")):
            return None
        check = _check_text(node, lines)
        tail = lines[node.end_lineno - 1][node.end_col_offset :]
        lines[node.lineno - 1 : node.end_lineno] = [before + check.encode() + tail]
    return b"".join(lines).decode()


def _check_text(node: ast.Assert, lines: list[bytes]) -> str:
    test = node.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPERATORS:
        op = _OPERATORS[type(test.ops[0])]
        parts = f'"cmp", "{op}", ({_segment(test.left, lines)}), ({_segment(test.comparators[0], lines)})'
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        parts = f'"false", ({_segment(test.operand, lines)})'
    else:
        parts = f'"true", ({_segment(test, lines)})'
    label = _label(node, [line.decode(errors="replace") for line in lines])
    return f'if not "{CHECK_PLACEHOLDER}".__call__(({parts})): raise AssertionError({label!r})'


def _segment(node: ast.expr, lines: list[bytes]) -> str:
    """The source text of ``node`` (it may span lines; it sits inside parentheses)."""
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[operator]
    if first == last:
        return lines[first][node.col_offset : node.end_col_offset].decode()
    middle = b"".join(lines[first + 1 : last])
    return (lines[first][node.col_offset :] + middle + lines[last][: node.end_col_offset]).decode()


def _statements(statements: list[ast.stmt]):
    """Every statement at any depth (function, loop, with, try, match bodies)."""
    for node in statements:
        yield node
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list):
                yield from _statements(block)
        for part in getattr(node, "handlers", []) + getattr(node, "cases", []):
            yield from _statements(part.body)


def _label(node: ast.Assert, lines: list[str]) -> str:
    return " ".join(line.strip() for line in lines[node.lineno - 1 : node.end_lineno])[:_LABEL_CHARS]


def rewrite_test(source: str) -> str:
    """``source`` with every ``assert`` turned into a reported check, as Python text (to read)."""
    return ast.unparse(rewrite_tree(source))


def rewrite_tree(source: str) -> ast.Module:
    """The parsed ``source`` with every ``assert`` statement, at any depth, made a reported check."""
    return _rewrite_module(ast.parse(source), source)


def _rewrite_module(tree: ast.Module, source: str) -> ast.Module:
    tree.body = _rewrite_block(tree.body, source.splitlines())
    return tree


def _rewrite_block(statements: list[ast.stmt], lines: list[str]) -> list[ast.stmt]:
    rewritten = []
    for node in statements:
        if isinstance(node, ast.Assert):
            node = _reported_check(node, lines)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list):
                setattr(node, name, _rewrite_block(block, lines))
        for part in getattr(node, "handlers", []) + getattr(node, "cases", []):  # try/except, match
            part.body = _rewrite_block(part.body, lines)
        rewritten.append(node)
    return rewritten


def _reported_check(node: ast.Assert, lines: list[str]) -> ast.stmt:
    """``assert x`` -> ``if not "<placeholder>".__call__((kind, ...)): raise AssertionError(label)``.

    Calling ``__call__`` on the placeholder (rather than the bare constant, which would work
    too) keeps the compiler from warning; the runner swaps the constant for its checker.
    """
    test = node.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPERATORS:
        kind = [_at(node, ast.Constant, "cmp"), _at(node, ast.Constant, _OPERATORS[type(test.ops[0])])]
        parts = kind + [test.left, test.comparators[0]]
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        parts = [_at(node, ast.Constant, "false"), test.operand]
    else:
        parts = [_at(node, ast.Constant, "true"), test]
    label = _label(node, lines)
    placeholder = _at(node, ast.Constant, CHECK_PLACEHOLDER)
    callee = _at(node, ast.Attribute, placeholder, "__call__", ast.Load())
    check = _at(node, ast.Call, callee, [_at(node, ast.Tuple, parts, ast.Load())], [])
    error = _at(node, ast.Call, _at(node, ast.Name, "AssertionError", ast.Load()), [_at(node, ast.Constant, label)], [])
    return _at(node, ast.If, _at(node, ast.UnaryOp, ast.Not(), check), [_at(node, ast.Raise, error, None)], [])


def _at(where: ast.AST, kind: type, *fields: Any) -> Any:
    """A new ``kind(*fields)`` node placed at ``where``'s source location."""
    node = kind(*fields)
    node.lineno, node.col_offset = where.lineno, where.col_offset  # type: ignore[attr-defined]
    node.end_lineno, node.end_col_offset = where.end_lineno, where.end_col_offset  # type: ignore[attr-defined]
    return node
