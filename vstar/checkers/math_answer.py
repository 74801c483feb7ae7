"""Math answers: normalise a final answer and compare it with the gold one.

Finding the answer in a completion (``extract_answer``, ``strip_answer``, ``last_boxed``)
lives in ``vstar.checkers.math_extract``; they are importable from here too.

Equivalence (``quick_compare``, then ``symbolic_equal``):

  1. Numbers compare as exact rationals after normalisation, so ``18``, ``18.00``,
     ``$18``, ``18 dollars``, ``1,000``/``1000``, ``\\frac12``/``0.5``/``1/2`` and
     ``90^\\circ``/``90`` match. Tolerance: when at least one side is written as a
     decimal with a fractional part, numbers also match if
     ``|a - b| <= rel_tol * max(|a|, |b|)`` with ``rel_tol = 1e-6`` by default (so
     ``0.3333333`` matches ``\\frac{1}{3}`` but ``0.3333`` does not); two integers or
     exact fractions must be exactly equal (``1000000`` never matches ``1000001``).
     Percent and degree signs and trailing units are dropped (``45\\%`` matches ``45``).
  2. Otherwise equal canonical strings match (``canonical_answer``).
  3. Anything still undecided (``2\\sqrt{2}`` vs ``\\sqrt{8}``, intervals, tuples,
     expressions) goes to math-verify (``math_verify.parse`` / ``verify``), which
     may take unbounded time: call ``symbolic_equal`` only inside a worker process
     with a hard timeout (``vstar.checkers.math_pool``).

Steps 1-2 are plain Python on bounded input (numbers longer than 64 characters are
left to step 3) and run in the calling process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from fractions import Fraction

from vstar.checkers.math_extract import EXTRACTION_MODES, extract_answer, last_boxed, strip_answer

__all__ = [
    "EXTRACTION_MODES", "Number", "canonical_answer", "extract_answer", "format_number", "last_boxed",
    "numbers_equal", "parse_number", "quick_compare", "strip_answer", "symbolic_equal",
]

DEFAULT_REL_TOL = 1e-6
MAX_NUMBER_CHARS = 64

_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_NUMBER = re.compile(rf"[+-]?(?:{_DECIMAL})")
_SIGNED_DECIMAL = re.compile(rf"-?(?:{_DECIMAL})")
_SLASH_FRACTION = re.compile(rf"([+-]?)({_DECIMAL})/({_DECIMAL})")
_LATEX_FRACTION = re.compile(r"([+-]?)\\frac(?:\{([^{}]*)\}|(\d))(?:\{([^{}]*)\}|(\d))")
_UNIT_TAIL = re.compile(r"(?<=[\d}.])\s*[A-Za-z]{2,}(?:[\s/\-]+[A-Za-z]+)*(?:\^?[23])?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z]\s*=\s*")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


@dataclass(frozen=True)
class Number:
    """A parsed number: its exact ``value`` and whether it was written with a decimal point."""

    value: Fraction
    decimal: bool


def _without_decorations(answer: str) -> str:
    """``answer`` without degree signs, percent signs, ``\\left``/``\\right`` and text units."""
    for mark in ("^{\\circ}", "^\\circ", "\u00b0", "\\%", "%", "\\left", "\\right"):
        answer = answer.replace(mark, "")
    answer = answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    whole_text = _TEXT_COMMAND.fullmatch(answer.strip())
    if whole_text:
        return whole_text.group(1).strip()
    answer = re.sub(r"\s*\\(?:text|mbox|mathrm)\{[^{}]*\}\s*$", "", answer)  # trailing unit
    return answer.strip()


@lru_cache(maxsize=16384)  # gold answers recur once per sampled completion
def parse_number(answer: str) -> Number | None:
    """The number ``answer`` states (``-1,000.50``, ``\\frac{3}{4}``, ``\\frac12``, ``3/4``,
    ``x = 5``, ``18 dollars``, ``45%``), or None when it is not a plain number."""
    text = _without_decorations(strip_answer(answer))
    if len(text) > 4 * MAX_NUMBER_CHARS:
        return None
    text = _ASSIGNMENT.sub("", text)
    text = _UNIT_TAIL.sub("", text).strip()
    if not text or len(text) > MAX_NUMBER_CHARS:
        return None
    if _NUMBER.fullmatch(text):
        return Number(Fraction(text.replace(",", "")), "." in text)
    return _parse_fraction(text)


def _parse_fraction(text: str) -> Number | None:
    slash = _SLASH_FRACTION.fullmatch(text)
    if slash:
        sign, numerator, denominator = slash.groups()
    else:
        latex = _LATEX_FRACTION.fullmatch(text.replace(" ", ""))
        if not latex:
            return None
        sign = latex.group(1)
        numerator = latex.group(2) if latex.group(2) is not None else latex.group(3)
        denominator = latex.group(4) if latex.group(4) is not None else latex.group(5)
        if not (_SIGNED_DECIMAL.fullmatch(numerator.strip()) and _SIGNED_DECIMAL.fullmatch(denominator.strip())):
            return None
    top = Fraction(numerator.strip().replace(",", ""))
    bottom = Fraction(denominator.strip().replace(",", ""))
    if bottom == 0:
        return None
    value = top / bottom
    return Number(-value if sign == "-" else value, "." in numerator + denominator)


def numbers_equal(gold: Number, pred: Number, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Exact equality, or within ``rel_tol`` (relative) when either was written as a decimal."""
    if gold.value == pred.value:
        return True
    if not (gold.decimal or pred.decimal):
        return False
    scale = max(abs(gold.value), abs(pred.value))
    return abs(gold.value - pred.value) <= Fraction(str(rel_tol)) * scale


def format_number(value: Fraction) -> str:
    """Canonical text of a number: ``18``, ``-0.125``, or ``1/3`` when not a finite decimal."""
    if value.denominator == 1:
        return str(value.numerator)
    twos = fives = 0
    rest = value.denominator
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator
    digits = str(scaled).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}".rstrip("0")


@lru_cache(maxsize=16384)
def canonical_answer(answer: str) -> str:
    """The key used for majority voting: a canonical number, else the answer with LaTeX
    decorations (``\\left``, ``\\dfrac``, degrees, spaces, text units) removed."""
    number = parse_number(answer)
    if number is not None:
        return format_number(number.value)
    return re.sub(r"\s+", "", _without_decorations(strip_answer(answer)))


def quick_compare(gold: str, pred: str, rel_tol: float = DEFAULT_REL_TOL) -> bool | None:
    """True/False when numbers or canonical strings decide; None when math-verify must."""
    gold_number, pred_number = parse_number(gold), parse_number(pred)
    if gold_number is not None and pred_number is not None:
        return numbers_equal(gold_number, pred_number, rel_tol)
    if canonical_answer(gold) == canonical_answer(pred):
        return True
    return None


def symbolic_equal(gold: str, pred: str) -> bool:
    """math-verify's judgement of two extracted answers, with its own timeouts switched off.

    It can run for unbounded time and memory: call it only in a worker process that
    the caller can kill (``MathCheckPool`` does).
    """
    from math_verify import parse, verify

    gold_parsed = parse(f"${strip_answer(gold)}$", parsing_timeout=None)
    pred_parsed = parse(f"${strip_answer(pred)}$", parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
