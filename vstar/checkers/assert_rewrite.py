"""Tests as the sandbox runs them: every ``assert`` becomes a check whose values are reported.

``assert a OP b`` (one comparison) -> ``if not "<placeholder>".__call__(("cmp", OP, a, b)):
raise AssertionError("<the assert's source>")``; ``assert not x`` -> ``("false", x)``; any
other ``assert x`` -> ``("true", x)``. The runner swaps the placeholder string constant for
its checker (calling ``__call__`` on it, rather than the bare constant, keeps the compiler
from warning). Asserts inside functions, loops, ``with``/``try``/``match`` blocks are
rewritten too (HumanEval's ``check``).

A test that is one line ``assert a == b`` (most are) is split at its ``==`` without parsing
and sent as the expression ``((a), (b))`` with its label; the runner evaluates it and does
the check and the ``raise`` itself, which means the same and compiles faster.

Tests are compiled here, in the harness (they are trusted data, and the sandbox runs the
same interpreter), marshalled, and cached: the samples of one problem share their tests.
"""

from __future__ import annotations

import ast
import base64
import functools
import keyword
import marshal
import re
from typing import Any

from vstar.checkers.sandbox_runner import CHECK_PLACEHOLDER

_OPERATORS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}
_LABEL_CHARS = 160


@functools.lru_cache(maxsize=8192)
def compile_test(source: str) -> str:
    """A test as the runner takes it, marshalled, in base64: its rewritten code object, or for
    a one-line ``assert a == b`` the pair (code of ``((a), (b))`` in eval mode, label).

    Compiled here (tests are trusted data; the same interpreter runs the sandbox), so the
    children do not spend time compiling, and cached: samples of one problem share tests.
    """
    code = _compile_simple(source)
    if code is None:
        tree = ast.parse(source)
        spliced = _spliced(source, tree)
        if spliced is not None:  # about twice as fast as compiling a changed tree
            code = compile(spliced, "<test>", "exec", dont_inherit=True)
        else:
            code = compile(_rewrite_module(tree, source), "<test>", "exec", dont_inherit=True)
    return base64.b64encode(marshal.dumps(code)).decode("ascii")


# ------------------------------------------------------------------ one-line ``assert a == b``

# Most tests (all but a few of MBPP's) are one line ``assert <a> == <b>``. Parsing such a line
# costs as much as compiling its rewrite, so it is split without parsing, but only where the
# split cannot be wrong: outside string literals and brackets, the line must hold exactly one
# ``==`` and no other comparison, comma, colon, semicolon, backslash, comment or keyword, so
# that Python reads it as ``assert (a) == (b)``. Anything else takes the parsing path.
_HEAD = re.compile(r"assert(?!\w)")
_STRING = re.compile(  # a string literal from its opening quote (its prefix is checked apart)
    "|".join([
        r"'''(?:[^\\]|\\.)*?'''",
        r'"""(?:[^\\]|\\.)*?"""',
        r"'[^\\'\n]*(?:\\.[^\\'\n]*)*'",
        r'"[^\\"\n]*(?:\\.[^\\"\n]*)*"',
    ]),
    re.S,
)
_PREFIXES = frozenset(["r", "b", "u", "rb", "br"])  # lower-cased; f-strings take the parsing path
_BRACKET = re.compile(r"[()\[\]{}]")
_OPENING = {")": "(", "]": "[", "}": "{"}
_OUTSIDE_STRINGS = re.compile(r"""['"#\\]""")
_NOT_SIMPLE = re.compile(r"[=<>!:;,()\[\]{}]")
_KEYWORDS = frozenset(keyword.kwlist) - {"True", "False", "None"}
_ALTERNATIVES = "|".join(sorted(_KEYWORDS))
# a keyword as a word, or glued to a number before it (``1if`` reads as ``1 if``)
_KEYWORD = re.compile(rf"\b(?:{_ALTERNATIVES})\b|\b\d\w*?(?:{_ALTERNATIVES})\b")


def _compile_simple(source: str):
    """(code of ``((a), (b))``, label) for a one-line ``assert a == b`` (see above), or None."""
    split = simple_split(source)
    if split is None:
        return None
    left, right, label = split
    try:
        return compile(f"(({left}), ({right}))", "<test>", "eval", dont_inherit=True), label
    except SyntaxError:
        return None  # the parsing path says what is wrong


def simple_split(source: str) -> tuple[str, str, str] | None:
    """(a, b, label) of a one-line ``assert a == b``, found without parsing; None for any other test."""
    head = _HEAD.match(source)
    line = source.rstrip()
    if head is None or "\n" in line or "\r" in line:
        return None
    masked = _mask_strings(line) if "'" in line or '"' in line else line
    if masked is None or _OUTSIDE_STRINGS.search(masked):
        return None  # an f-string, an unclosed string, a comment, a line continuation
    top = _top_level(masked, head.end())
    if top is None:
        return None  # brackets that do not pair up: the parsing path says what is wrong
    flat, split = top
    if flat.count("==") != 1:
        return None  # no comparison outside brackets, or more than one
    rest = flat.replace("==", "  ")
    if _NOT_SIMPLE.search(rest) or _KEYWORD.search(rest):
        return None
    left, right = line[head.end() : split].strip(), line[split + 2 :].strip()
    return left, right, line.strip()[:_LABEL_CHARS]


def _mask_strings(line: str) -> str | None:
    """``line`` with each string literal replaced by ``$`` signs (same length; ``"a"if`` still
    shows its keyword); None if a literal has a prefix this does not read (f-strings)."""
    odd = []

    def fill(match: re.Match) -> str:
        start = end = match.start()
        while start and (line[start - 1].isalnum() or line[start - 1] == "_"):
            start -= 1
        if start < end and line[start:end].lower() not in _PREFIXES:
            odd.append(start)
        return "$" * (match.end() - end)

    masked = _STRING.sub(fill, line)
    return None if odd else masked


def _top_level(text: str, start: int) -> tuple[str, int] | None:
    """(``text[start:]`` with each bracketed part at the top level replaced by ``B``, where in
    ``text`` the first ``==`` outside brackets starts, or -1); None if the brackets do not pair up."""
    parts, stack, last, split = [], [], start, -1
    for match in _BRACKET.finditer(text, start):
        char, at = match.group(), match.start()
        if char in "([{":
            if not stack:
                parts.append(text[last:at])
                if split < 0:
                    split = text.find("==", last, at)
            stack.append(char)
        elif not stack or stack.pop() != _OPENING[char]:
            return None
        elif not stack:
            parts.append("B")
            last = at + 1
    if stack:
        return None
    parts.append(text[last:])
    return "".join(parts), split if split >= 0 else text.find("==", last)


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
