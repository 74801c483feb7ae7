"""The embedded default task: reach a target number from a few given numbers.

A problem shows some numbers and a target; a solution is a chain of steps that
starts from two of the numbers and then folds in one more number per step, with
``+`` or ``-``, until the running value equals the target::

    prompt:    "3 11 7 5 -> 19\\n"
    solution:  "11+3=14\\n14+5=19\\n"

Finding a solution is a search (which numbers, which order, which signs), but
checking one is local: each line is one small sum that can be recomputed, each
operand must be copied from the prompt (each number used at most once) or be the
previous result, and the last result must equal the target. That asymmetry —
checking is easier than finding — is what V-STaR's verifier relies on.

For majority voting, the "answer" of a completion is the sorted list of the
given numbers it used (``"3,5,11"``); it is right if those numbers can reach the
target by some chain (checked exhaustively).
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

from vstar.errors import VstarError
from vstar.tasks.base import Problem, Task, Verdict

STEP = re.compile(r"^(\d+)([+-])(\d+)=(-?\d+)$")
ARROW = " -> "


@dataclass(frozen=True)
class EmbeddedOptions:
    """Settings of the embedded task (``task.options`` in the config)."""

    seed: int = 0  # problems are a pure function of the seed and the fields below
    n_sft: int = 600  # problems with gold solutions (D_SFT)
    n_query: int = 900  # more training problems without solutions; D_query = D_SFT's problems + these
    n_test: int = 200  # held-out problems for evaluation
    n_val: int = 200  # held-out training-distribution problems for choosing settings (split "val")
    n_numbers: int = 4  # numbers shown per problem
    max_number: int = 9  # numbers are drawn from 1..max_number
    min_used: int = 2  # a gold solution uses between min_used and max_used of the numbers
    max_used: int = 3
    max_value: int = 30  # every running value (and the target) stays within 1..max_value

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "EmbeddedOptions":
        known = {f.name: f for f in fields(cls)}
        for key, value in options.items():
            if key not in known:
                raise VstarError(
                    f"task.options.{key}: unknown option for task 'embedded'. "
                    f"Expected one of: {', '.join(known)}."
                )
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise VstarError(f"task.options.{key}: expected an integer, got {value!r}.")
        opts = cls(**options)
        opts.validate()
        return opts

    def validate(self) -> None:
        if not 2 <= self.min_used <= self.max_used <= self.n_numbers:
            raise VstarError(
                "task.options: need 2 <= min_used <= max_used <= n_numbers, got "
                f"min_used={self.min_used}, max_used={self.max_used}, n_numbers={self.n_numbers}."
            )
        if self.max_number < 2 or self.max_value < self.max_number:
            raise VstarError("task.options: need 2 <= max_number <= max_value.")
        for name in ("n_sft", "n_query", "n_test", "n_val"):
            if getattr(self, name) < 0:
                raise VstarError(f"task.options.{name}: expected a count >= 0.")


def _random_problem(rng: random.Random, opts: EmbeddedOptions) -> tuple[list[int], int, list[str]] | None:
    """Draw numbers and a gold chain; ``None`` if the draw left the allowed range."""
    numbers = [rng.randint(1, opts.max_number) for _ in range(opts.n_numbers)]
    used = rng.sample(range(opts.n_numbers), rng.randint(opts.min_used, opts.max_used))
    value = numbers[used[0]]
    steps = []
    for index in used[1:]:
        operand = numbers[index]
        op = rng.choice("+-")
        new_value = value + operand if op == "+" else value - operand
        if not 1 <= new_value <= opts.max_value:
            return None
        steps.append(f"{value}{op}{operand}={new_value}")
        value = new_value
    if value in numbers:  # the target must need at least one step
        return None
    return numbers, value, steps


def reachable(numbers: Sequence[int], target: int) -> bool:
    """Can a chain that uses *all* of ``numbers`` (any order, any signs) end at ``target``?"""
    if len(numbers) < 2:
        return False
    for order in set(itertools.permutations(numbers)):
        for signs in itertools.product((1, -1), repeat=len(order) - 1):
            if order[0] + sum(s * x for s, x in zip(signs, order[1:])) == target:
                return True
    return False


def check_chain(numbers: Sequence[int], target: int, completion: str) -> Verdict:
    """Judge one completion against the rules in the module docstring."""
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    if not lines:
        return Verdict(False, "no_answer", reason="empty completion")
    available = list(numbers)
    used: list[int] = []
    value = None
    failure = ""
    for step_no, line in enumerate(lines, start=1):
        match = STEP.match(line)
        if not match:
            return Verdict(False, "no_answer", reason=f"step {step_no}: cannot parse {line!r}")
        left, op, right, result = int(match[1]), match[2], int(match[3]), int(match[4])
        operands = [right] if value is not None else [left, right]
        if value is not None and left != value and not failure:
            failure = f"step {step_no}: starts from {left}, but the running value is {value}"
        for operand in operands:
            if operand in available:
                available.remove(operand)
                used.append(operand)
            elif not failure:
                failure = f"step {step_no}: {operand} is not an unused given number"
        true_result = left + right if op == "+" else left - right
        if true_result != result and not failure:
            failure = f"step {step_no}: {left}{op}{right} is {true_result}, not {result}"
        value = result
    answer = ",".join(str(x) for x in sorted(used))
    answer_correct = reachable(used, target)
    if not failure and value != target:
        failure = f"ends at {value}, target is {target}"
    if failure:
        return Verdict(False, "failed", answer, answer_correct, reason=failure)
    return Verdict(True, "passed", answer, answer_correct)


def parse_prompt(prompt: str) -> tuple[list[int], int]:
    numbers_text, target_text = prompt.strip().split(ARROW)
    return [int(x) for x in numbers_text.split()], int(target_text)


class EmbeddedTask(Task):
    """Synthetic search task generated from a seed; see the module docstring.

    Options: see ``EmbeddedOptions`` (seed, n_sft, n_query, n_test, n_numbers,
    max_number, min_used, max_used, max_value). Problems are drawn from one
    stream of distinct problems (test first, so the test set does not change
    when the training sizes do), so test never overlaps training. ``sft`` holds
    n_sft problems with gold solutions; ``query`` holds those same problems
    (without solutions) plus n_query more, as in the paper, where the generator
    samples on every training problem.
    """

    name = "embedded"
    stop = ()  # completions end with the model's EOS token

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.opts = EmbeddedOptions.from_mapping(self.options)
        self._splits = self._generate()

    def _generate(self) -> dict[str, list[Problem]]:
        seen: set[str] = set()
        splits = self._draw(random.Random(f"vstar-embedded-{self.opts.seed}"), ("test", "sft", "query"), seen)
        # its own stream, after the others: the val split never changes test or training problems
        splits.update(self._draw(random.Random(f"vstar-embedded-val-{self.opts.seed}"), ("val",), seen))
        return splits

    def _draw(self, rng: random.Random, names: tuple[str, ...], seen: set[str]) -> dict[str, list[Problem]]:
        """Distinct problems for each split in ``names``, drawn in order from ``rng``, none in ``seen``."""
        splits: dict[str, list[Problem]] = {}
        for split in names:
            wanted = getattr(self.opts, f"n_{split}")
            problems: list[Problem] = []
            attempts = 0
            while len(problems) < wanted:
                attempts += 1
                if attempts > 1000 * (wanted + 10):
                    raise VstarError(
                        f"task.options: cannot draw {wanted} distinct '{split}' problems with these "
                        "settings; widen max_number/max_value or ask for fewer problems."
                    )
                drawn = _random_problem(rng, self.opts)
                if drawn is None:
                    continue
                numbers, target, steps = drawn
                prompt = " ".join(map(str, numbers)) + ARROW + str(target) + "\n"
                if prompt in seen:
                    continue
                seen.add(prompt)
                problems.append(
                    Problem(
                        id=f"embedded/{split}/{len(problems)}",
                        prompt=prompt,
                        solution="\n".join(steps) + "\n",
                        answer=None,
                        meta={"numbers": numbers, "target": target},
                    )
                )
            splits[split] = problems
        return splits

    def problems(self, split: str) -> list[Problem]:
        if split not in self._splits:
            raise VstarError(f"split must be one of sft, query, test, val; got {split!r}.")
        problems = self._splits[split]
        if split == "query":  # D_query: every training problem, without gold solutions
            problems = self._splits["sft"] + problems
            return [Problem(p.id, p.prompt, None, None, p.meta) for p in problems]
        return list(problems)

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        return [
            check_chain(p.meta["numbers"], p.meta["target"], c) for p, c in zip(problems, completions)
        ]
