"""Final-answer extraction in the styles models write, strict and flexible; properties and worst cases."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vstar.checkers.math_answer import canonical_answer
from vstar.checkers.math_extract import MAX_SCAN_CHARS, extract_answer, last_number

# (completion, strict answer, flexible answer)
STYLE_CASES = [
    ("Janet sells 9 eggs.\nA: 18", "18", "18"),
    ("Answer: 18", "18", "18"),
    ("**Answer:** 18", "18", "18"),
    ("**Answer**: $18", "18", "18"),
    ("### Answer\n18", "18", "18"),
    ("The final answer is $\\boxed{18}$. I hope it is correct.", "18", "18"),
    ("Final Answer: The final answer is 18. I hope it is correct.", "18", "18"),
    ("The final answer is:\n\n18", "18", "18"),
    ("So the answer is **18**.", "18", "18"),
    ("The answer is **$18**.", "18", "18"),
    ("**The answer is 18.**", "18", "18"),
    ("The answer is: $18.00", "18.00", "18.00"),
    ("The answer is 1,450,000 dollars per year.", "1,450,000 dollars per year", "1,450,000 dollars per year"),
    ("Answer: Janet makes $18 every day at the farmers' market.", "18", "18"),
    ("Answer: She makes 9 * 2 = $18 every day.", "18", "18"),
    ("So, the answer is that Janet makes $18.", "18", "18"),
    ("The answer is 18.\n\nI hope the answer is clear.", "18", "18"),  # a later marker that states nothing
    ("She makes 9 * 2 = $18 a day.\nTherefore, she makes 18 dollars every day.", "18", "18"),
    ("16 - 3 - 4 = 9\n9 * 2 = 18", "18", "18"),
    ("So she makes 9 * 2 = $18.", "18", "18"),
    ("Total = 1,450,000 dollars", "1,450,000 dollars", "1,450,000 dollars"),
    ("In total, they have 42 apples.", "42", "42"),
    ("\u20ac18", "18", "18"),
    ("The answer is Evelyn.", "Evelyn", "Evelyn"),
    ("The answer is (C).", "(C)", "(C)"),
    # from tests/data/math_outputs_smollm2.jsonl
    ("\\boxed{Spanner * 3 = 18 meters}\n\nFinally, 18 meters remains.", "18", "18"),  # a sentence in a box
    ("So, the answer is \\boxed{}.\n\nThe final answer is 126.", "126", "126"),  # an empty box
    ("So, the probability is 0.25 (approximately) to 2 decimal places.", "0.25", "0.25"),
    ("This is 20 x 15 = 300, which is the total amount of feed for 20 chickens.", None, "20"),
    ("Mishka spent 40 - 3 = 28 dollars on the pants.\nMishka spent 28 -", None, "28"),  # cut off
    # no stated answer: strict finds none, flexible takes the last number
    ("The cost is 5 dollars. I hope this helps!", None, "5"),
    ("She has 3 apples and 4 pears.", None, "4"),
    ("The answer isn't obvious. 18", None, "18"),
    ("A: Let's think step by step. Janet has 16 eggs. She eats 3.", None, "3"),
    ("She pays $1,200.50 in total, then", None, "1,200.50"),
    ("The answer is all real numbers", None, None),
    ("I hope this helps!", None, None),
]


@pytest.mark.parametrize("text, strict, flexible", STYLE_CASES)
def test_styles_models_write(text: str, strict: str | None, flexible: str | None) -> None:
    assert extract_answer(text, "strict") == strict
    assert extract_answer(text, "flexible") == flexible


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="strict"):
        extract_answer("18", "loose")


TEMPLATES = [
    "{steps}\nA: {n}",
    "{steps}\nAnswer: {n}",
    "{steps}\n**Answer:** ${n:,}",
    "{steps}\nThe final answer is ${n}$. I hope it is correct.",
    "{steps}\nThe answer is **{n:,}**.",
    "{steps}\n#### {n:,}",
    "{steps}\nSo the total is 3 + 4 = {n:,} dollars.",
    "{steps}\nTherefore, she makes {n:,} dollars every day.",
    "{steps} So the answer is $\\boxed{{{n}}}$.",
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TEMPLATES), st.integers(min_value=-(10**9), max_value=10**9),
       st.lists(st.integers(min_value=0, max_value=999), max_size=4))
def test_every_style_reads_the_stated_number(template: str, number: int, intermediate: list[int]) -> None:
    steps = " ".join(f"Step {i}: {value} + 1 = {value + 1}." for i, value in enumerate(intermediate))
    text = template.format(steps=steps, n=number)
    for mode in ("strict", "flexible"):
        assert canonical_answer(extract_answer(text, mode) or "") == str(number), (mode, text)


RISKY = st.sampled_from(["answer is ", "Answer:", "A:", "####", "\\boxed{", "}", "{", "$", "**", "=", "\n",
                         "Therefore, ", "1,", "000", ".5", "-", " ", "x", "dollars", "\\frac{1}{2}", ".", "/"])


@settings(max_examples=300, deadline=None)
@given(st.lists(RISKY, max_size=60).map("".join))
def test_any_text_gives_an_answer_or_none_and_flexible_extends_strict(text: str) -> None:
    strict = extract_answer(text, "strict")
    flexible = extract_answer(text, "flexible")
    assert strict is None or (isinstance(strict, str) and strict)
    assert flexible == strict if strict is not None else flexible == last_number(text)


@pytest.mark.parametrize("text", [
    "answer is " * 200_000,
    "Answer:\n" * 200_000,
    "{" * 1_000_000 + "\\boxed{",
    "\\boxed{" * 200_000,
    "= " * 500_000 + "x",
    "1," * 500_000,
    "Therefore, " + "a " * 500_000 + "1",
    "#### " * 200_000,
    ("9" * 10_000 + "\n") * 100,
])
def test_worst_case_inputs_are_fast(text: str) -> None:
    started = time.perf_counter()
    for mode in ("strict", "flexible"):
        extract_answer(text, mode)
    assert time.perf_counter() - started < 1.0


def test_only_the_tail_of_a_long_completion_is_read() -> None:
    assert extract_answer("The answer is 18." + "x" * MAX_SCAN_CHARS, "flexible") is None
    assert extract_answer("x" * 10 * MAX_SCAN_CHARS + "The answer is 18.") == "18"
