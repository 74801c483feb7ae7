"""Plain values that cross the sandbox boundary, and the test comparisons made on them.

Used on both sides: inside the sandbox (standard library only, loaded by file path
by the worker) the runner *encodes* the values an assert compares; outside, the
harness *decodes* them and compares them again, so the verdict never rests on an
object the program made (an ``__eq__`` that always says True, a lying ``__bool__``).

An encoded value is a JSON-ready list ``[tag, ...]``. Only objects whose type is
exactly one of the built-in types below are encoded (a subclass may override
``__eq__``, so it is "opaque" and an assert on it fails):

    N None   b bool   i int (hex)   f float (float.hex)   c complex
    s str    y bytes (hex)   Y bytearray (hex)   E Ellipsis
    l list   t tuple   S set   F frozenset   q collections.deque
    d dict   o OrderedDict   C Counter   (defaultdict is encoded as d)
    r range  fr Fraction   D Decimal

``encode_json`` and ``to_json`` write with nothing but methods of built-in types, so a
program that monkeypatches ``json`` cannot alter what the runner reports.
"""

from __future__ import annotations

import collections
import operator
import sys

MAX_DEPTH = 100
MAX_ITEMS = 1_000_000  # containers' elements and characters/bytes, over one value

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: the type was made by Python code (a class statement)


class Opaque(Exception):
    """The value cannot be checked outside the sandbox (type or size); args[0] says why."""


def is_python_class(value) -> bool:
    """True when ``type(value)`` was defined by Python code, so its methods can lie."""
    return bool(type(value).__flags__ & _HEAPTYPE)


# ---------------------------------------------------------------- encoding (inside)


def encode_json(value) -> str:
    """The JSON text of ``value`` as a tagged list; raises ``Opaque`` for anything not plain.

    Written in one pass, from built-in methods only (a program that patches ``json``
    cannot change it).
    """
    return _json(value, 0, [MAX_ITEMS])


def _spend(budget: list, amount: int) -> None:
    budget[0] -= amount
    if budget[0] < 0:
        raise Opaque("value too large to check")


def _json(value, depth: int, budget: list) -> str:
    if depth > MAX_DEPTH:
        raise Opaque("value nested too deeply to check")
    kind = type(value)
    key = _type_key(kind)
    scalar = _SCALARS.get(key)
    if scalar is not None and scalar[0] is kind:
        return scalar[1](value, budget)
    container = _CONTAINERS.get(key)
    depth += 1
    if container is not None and container[0] is kind:
        tag, items = container[1](value)
        _spend(budget, len(items) + 1)
        return '["' + tag + '",[' + ",".join([_json(item, depth, budget) for item in items]) + "]]"
    mapping = _MAPPINGS.get(key)
    if mapping is not None and mapping[0] is kind:
        tag, pairs = mapping[1](value)
        _spend(budget, len(pairs) + 1)
        pairs_text = ["[" + _json(k, depth, budget) + "," + _json(v, depth, budget) + "]" for k, v in pairs]
        return '["' + tag + '",[' + ",".join(pairs_text) + "]]"
    optional = _optional_scalar(kind)
    if optional is not None:
        return optional(value)
    raise Opaque(f"a value of type {kind.__name__} cannot be compared outside the sandbox")


def _optional_scalar(kind):
    """Encoders for Fraction and Decimal, looked up only if the program imported them."""
    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
    if fractions is not None and kind is getattr(fractions, "Fraction", None):
        return lambda v: '["fr",' + _hex(v.numerator) + "," + _hex(v.denominator) + "]"
    if decimal is not None and kind is getattr(decimal, "Decimal", None):
        return lambda v: '["D",' + quote(str(v)) + "]"
    return None


def _type_key(kind) -> int:
    """A key for a type that no program code can fake or see: its address, through
    ``object.__hash__`` (a metaclass's ``__hash__``/``__eq__`` never runs, and unlike ``id``
    it raises no audit event, whose hook would run on every value)."""
    return object.__hash__(kind)


def _entry(kind, encoder) -> tuple:
    """A (key, (type, encoder)) item; the lookup checks the type again by identity."""
    return _type_key(kind), (kind, encoder)


def _hex(number: int) -> str:
    return '"' + int.__format__(number, "x") + '"'


def _float(number: float) -> str:
    return '"' + float.hex(number) + '"'


def _str(value: str, budget: list) -> str:
    _spend(budget, len(value))
    return '["s",' + quote(value) + "]"


def _bytes(value, budget: list) -> str:
    _spend(budget, len(value))
    return ('["y","' if type(value) is bytes else '["Y","') + bytes(value).hex() + '"]'


_SCALARS = dict([
    _entry(type(None), lambda v, b: '["N"]'),
    _entry(type(...), lambda v, b: '["E"]'),
    _entry(bool, lambda v, b: '["b",1]' if v else '["b",0]'),
    _entry(int, lambda v, b: '["i",' + _hex(v) + "]"),
    _entry(float, lambda v, b: '["f",' + _float(v) + "]"),
    _entry(complex, lambda v, b: '["c",' + _float(v.real) + "," + _float(v.imag) + "]"),
    _entry(str, _str),
    _entry(bytes, _bytes),
    _entry(bytearray, _bytes),
    _entry(range, lambda v, b: '["r",' + _hex(v.start) + "," + _hex(v.stop) + "," + _hex(v.step) + "]"),
])

_CONTAINERS = dict([
    _entry(list, lambda v: ("l", list.copy(v))),
    _entry(tuple, lambda v: ("t", list(tuple.__iter__(v)))),
    _entry(set, lambda v: ("S", list(set.__iter__(v)))),
    _entry(frozenset, lambda v: ("F", list(frozenset.__iter__(v)))),
    _entry(collections.deque, lambda v: ("q", list(collections.deque.__iter__(v)))),
])

_MAPPINGS = dict([
    _entry(dict, lambda v: ("d", list(dict.items(v)))),
    _entry(collections.defaultdict, lambda v: ("d", list(dict.items(v)))),
    _entry(collections.OrderedDict, lambda v: ("o", list(collections.OrderedDict.items(v)))),
    _entry(collections.Counter, lambda v: ("C", list(dict.items(v)))),
])


# ---------------------------------------------------------------- JSON text (inside)


def _escape_table() -> dict:
    table = {ord('"'): '\\"', ord("\\"): "\\\\"}
    for code in range(0x20):
        table[code] = "\\u%04x" % code
    for code in range(0xD800, 0xE000):  # lone surrogates cannot be written as UTF-8
        table[code] = "\\u%04x" % code
    return table


_ESCAPES = _escape_table()


def quote(text: str) -> str:
    """``text`` as a JSON string."""
    return '"' + str.translate(text, _ESCAPES) + '"'


def to_json(item) -> str:
    """JSON text of nested lists of str / int / bool / None, built from built-in methods only."""
    kind = type(item)
    if kind is str:
        return quote(item)
    if kind is list:
        return "[" + ",".join([to_json(part) for part in item]) + "]"
    if kind is bool:
        return "true" if item else "false"
    if kind is int:
        return int.__repr__(item)
    if item is None:
        return "null"
    raise TypeError(f"cannot write {kind.__name__} as a record")


# ---------------------------------------------------------------- decoding (outside)


class DecodeError(Exception):
    """A record's value is malformed (the child wrote something the runner never writes)."""


def decode(encoded):
    """Rebuild the plain value that ``encode`` described."""
    return _decode(encoded, 0)


def _decode(encoded, depth: int):
    if depth > MAX_DEPTH + 1 or type(encoded) is not list or not encoded or type(encoded[0]) is not str:
        raise DecodeError(f"malformed value {str(encoded)[:80]}")
    tag, args = encoded[0], encoded[1:]
    try:
        if tag in _DECODE_SCALARS:
            return _DECODE_SCALARS[tag](*args)
        if tag in _DECODE_CONTAINERS:
            (items,) = args
            return _DECODE_CONTAINERS[tag]([_decode(item, depth + 1) for item in items])
        if tag in _DECODE_MAPPINGS:
            (pairs,) = args
            return _DECODE_MAPPINGS[tag]([(_decode(k, depth + 1), _decode(v, depth + 1)) for k, v in pairs])
    except DecodeError:
        raise
    except (TypeError, ValueError, ArithmeticError) as error:  # wrong arity, unhashable key, bad hex
        raise DecodeError(f"malformed value with tag {tag!r}: {error}") from None
    raise DecodeError(f"unknown value tag {tag!r}")


def _text(value) -> str:
    if type(value) is not str:
        raise TypeError("expected a string")
    return value


_DECODE_SCALARS = {
    "N": lambda: None,
    "E": lambda: ...,
    "b": lambda v: {0: False, 1: True}[v],
    "i": lambda v: int(_text(v), 16),
    "f": lambda v: float.fromhex(_text(v)),
    "c": lambda re, im: complex(float.fromhex(_text(re)), float.fromhex(_text(im))),
    "s": _text,
    "y": lambda v: bytes.fromhex(_text(v)),
    "Y": lambda v: bytearray.fromhex(_text(v)),
    "r": lambda a, b, c: range(int(_text(a), 16), int(_text(b), 16), int(_text(c), 16)),
    "fr": lambda n, d: _fraction(int(_text(n), 16), int(_text(d), 16)),
    "D": lambda v: _decimal(_text(v)),
}


def _fraction(numerator: int, denominator: int):
    import fractions

    return fractions.Fraction(numerator, denominator)


def _decimal(text: str):
    import decimal

    return decimal.Decimal(text)

_DECODE_CONTAINERS = {"l": list, "t": tuple, "S": set, "F": frozenset, "q": collections.deque}

_DECODE_MAPPINGS = {
    "d": dict,
    "o": collections.OrderedDict,
    "C": lambda pairs: collections.Counter(dict(pairs)),  # Counter(pairs) would count the pairs
}


# ---------------------------------------------------------------- comparisons (both sides)

_SINGLETONS = (None, True, False, ...)

COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


def compare(op: str, left, right) -> bool:
    """``left op right`` on plain values, as Python evaluates it; ``is`` only for singletons."""
    if op in ("is", "is not"):
        same = any(left is s for s in _SINGLETONS) and left is right
        if not any(right is s for s in _SINGLETONS) and not any(left is s for s in _SINGLETONS):
            raise ValueError(f"'{op}' is only checked against None, True, False or ...")
        return same if op == "is" else not same
    return bool(COMPARISONS[op](left, right))
