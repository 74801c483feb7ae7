"""Finding the final answer in a math completion, as models write it.

``extract_answer(text, mode)`` reads, in this order of trust:

  1. the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces; ``\\boxed 5``;
     an unclosed box, as in a truncated completion, is skipped). A box wins over any
     later prose (MATH solutions often go on after it: "... so our answer is correct").
  2. the later in the text of
     - the last ``#### X`` line (GSM8K's gold format), and
     - the last answer marker: ``The answer is X``, ``The final answer is: X``,
       ``Final Answer: X``, and at the start of a line ``Answer: X`` or ``A: X`` (any case,
       markdown bold or a heading around the marker or the answer; when the marker ends
       its line, the next line holds the answer);
     then the other. What follows the marker is cut at the end of its sentence.
  3. the end of the completion, when no marker is found: the last non-empty line
     (or, when that one holds no number, the one before it) if it is an equation whose
     right-hand side is a number (``9 * 2 = $18``) or a concluding sentence
     (``Therefore, she makes 18 dollars every day.``: a sentence that starts with
     therefore, so, thus, hence, in total, ...); or the whole completion when it is
     just a number.
  4. in ``flexible`` mode only, when nothing above is found: the last number in the
     completion (as lm-evaluation-harness's "flexible-extract" filter does for GSM8K).

An answer phrase that is prose rather than an answer (``Janet makes $18 every day``)
is reduced to a number: what follows its last ``=``, else its first number. Numbers
keep their thousands separators and currency is dropped (``$1,000`` -> ``1,000``);
``vstar.checkers.math_answer`` parses and compares them.

Everything here is linear-time regular expressions on bounded input: only the last
``MAX_SCAN_CHARS`` characters of a completion are read, and an answer phrase is at
most ``MAX_PHRASE_CHARS`` long.
"""

from __future__ import annotations

import re

EXTRACTION_MODES = ("strict", "flexible")
DEFAULT_EXTRACTION = "strict"  # measured on tests/data/math_outputs_smollm2.jsonl: strict 908/908, flexible 902/908
MAX_SCAN_CHARS = 20_000
MAX_PHRASE_CHARS = 300
MAX_BOXES_TRIED = 20
MAX_MARKERS_TRIED = 5  # the last few markers of each kind: "I hope the answer is clear" is not one
TAIL_LINES = 2  # lines from the end where step 3 looks for an equation or a conclusion

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)")
_BRACE = re.compile(r"[{}]")
_HASHES = re.compile(r"####")
# answer markers, matched on the lower-cased text at each "answer" found from the end
_ANSWER_IS = re.compile(r"answer\s+(?:is|was|would\s+be|will\s+be)\b(?!n't)")
_ANSWER_COLON = re.compile(r"answer\s*(?:\*\*|__)?\s*:")
_ANSWER_HEADING = re.compile(r"answer\s*(?:\*\*|__)?[ \t]*(?:\n|$)")
_LINE_LEAD = re.compile(r"[ \t>#*_]*(?:final\s+)?")
_FINAL_BEFORE = re.compile(r"final\s+$")
_A_COLON = re.compile(r"^[ \t>#*_]*a\s*(?:\*\*|__)?\s*:", re.MULTILINE)
_PHRASE_START = re.compile(r"[\s*_:]*")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_CONCLUSION = re.compile(
    r"^(?:therefore|thus|so|hence|in\s+total|in\s+conclusion|in\s+other\s+words|overall|finally|altogether|in\s+all)\b",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?])\s+)(?=\S)")
_NUMBER_TOKEN = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?|-?\.\d+")
_CURRENCY = re.compile(r"\\?\$|\u20ac|\u00a3|\brs\.?\s|\busd\b", re.IGNORECASE)
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_MATH_OR_NAME = re.compile(r"[\d\\^_{}()\[\]=+*/<>|,-]|^[A-Z][a-z]*$|^[a-zA-Z]$")  # a digit, a symbol, Evelyn, C
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{[^{}]*\}|\\[A-Za-z]+\*?(?:\{[A-Za-z*]*\})?")
_NUMBER_THEN_UNITS = re.compile(
    r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?\s*%?(?:\s*[A-Za-z][A-Za-z'\-]*(?:\s+[A-Za-z][A-Za-z'\-]*){0,3})?"
)
_THIN_SPACE = re.compile(r"(?<!\\)\\([,;! ])")  # \, \; \! "\ " but not the row break "\\ "


def extract_answer(text: str, mode: str = "strict") -> str | None:
    """The final answer stated in ``text`` (cleaned by ``strip_answer``), or None.

    ``mode``: ``"strict"`` reads boxes, markers and the final line (steps 1-3 above);
    ``"flexible"`` falls back to the completion's last number.
    """
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"answer extraction mode must be one of {EXTRACTION_MODES}, got {mode!r}")
    text = text[-MAX_SCAN_CHARS:]
    answer = _boxed_answer(text) or _marked_answer(text) or _final_line_answer(text)
    if answer is None and mode == "flexible":
        answer = last_number(text)
    return answer


def _boxed_answer(text: str) -> str | None:
    """The last box's content; a sentence in a box (``\\boxed{She makes 18 dollars}``) gives its number."""
    boxed = last_boxed(text)
    if boxed is None:
        return None
    content = strip_answer(boxed[2])
    return _answer_of_phrase(content) if _prose_words(content) >= 2 else (content or None)


def _marked_answer(text: str) -> str | None:
    """The answer of the latest ``####`` line or answer marker that states one."""
    marked = []  # (start, answer)
    for match in list(_HASHES.finditer(text))[-MAX_MARKERS_TRIED:]:
        marked.append((match.start(), _answer_of_phrase(_rest_of_line(text, match.end()))))
    for start, end in _answer_markers(text.lower()):
        marked.append((start, _answer_of_phrase(_first_sentence(_phrase_after(text, end)))))
    stated = [(start, answer) for start, answer in marked if answer]
    return max(stated)[1] if stated else None


def _answer_markers(lowered: str) -> list[tuple[int, int]]:
    """(start, end) of the last few answer markers in the lower-cased text."""
    found = [(match.start(), match.end()) for match in list(_A_COLON.finditer(lowered))[-MAX_MARKERS_TRIED:]]
    before = len(lowered)
    for _ in range(MAX_MARKERS_TRIED * 4):  # "answer" as a plain word is skipped, within bounds
        at = lowered.rfind("answer", 0, before)
        if at < 0:
            break
        before = at
        end = _marker_end(lowered, at)
        if end is not None:
            found.append((at, end))
            if len(found) >= 2 * MAX_MARKERS_TRIED:
                break
    return found


def _marker_end(lowered: str, at: int) -> int | None:
    """Where the answer marker whose word "answer" starts at ``at`` ends; None if it is not one."""
    if at > 0 and lowered[at - 1].isalpha():
        return None
    match = _ANSWER_IS.match(lowered, at)
    if match:
        return match.end()
    line_start = lowered.rfind("\n", max(0, at - 40), at) + 1
    lead = lowered[max(line_start, at - 40) : at]
    at_line_start = (line_start > 0 or at <= 40) and _LINE_LEAD.fullmatch(lead) is not None
    match = _ANSWER_COLON.match(lowered, at)
    if match and (at_line_start or _FINAL_BEFORE.search(lead)):
        return match.end()
    match = _ANSWER_HEADING.match(lowered, at)
    return match.end() if match and at_line_start else None


def _final_line_answer(text: str) -> str | None:
    """A number that the last lines state as the result, or the completion if it is just a number."""
    whole = strip_answer(text[-MAX_PHRASE_CHARS:])
    if len(text) <= MAX_PHRASE_CHARS and _NUMBER_THEN_UNITS.fullmatch(_without_currency(whole)):
        return _answer_of_phrase(whole)
    lines = [line for line in text[-4 * MAX_PHRASE_CHARS :].splitlines() if line.strip()][-TAIL_LINES:]
    for line in reversed(lines):
        line = strip_answer(line[-MAX_PHRASE_CHARS:])
        if not _NUMBER_TOKEN.search(line):
            continue
        sentences = [s for s in _SENTENCE_START.split(line) if s.strip()]
        last_sentence = sentences[-1] if sentences else line
        equation = last_sentence.rpartition("=")[2]
        if "=" in last_sentence and _NUMBER_THEN_UNITS.fullmatch(_without_currency(equation.strip()).rstrip(".")):
            return _answer_of_phrase(equation)
        if _CONCLUSION.match(last_sentence.strip(" *_#>-")):
            return _answer_of_phrase(last_sentence)
        return None  # the last line with a number is not a result
    return None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (``-1,000.50``, ``3/4``), without currency."""
    found = None
    for found in _NUMBER_TOKEN.finditer(text[-MAX_SCAN_CHARS:]):
        pass
    return found.group().rstrip(",") if found else None


def _rest_of_line(text: str, start: int) -> str:
    end = text.find("\n", start, start + MAX_PHRASE_CHARS)
    return text[start : end if end >= 0 else start + MAX_PHRASE_CHARS]


def _phrase_after(text: str, start: int) -> str:
    """The rest of the marker's line, or the next non-empty line when the marker ends its line."""
    start = _PHRASE_START.match(text, start, start + MAX_PHRASE_CHARS).end()
    return _rest_of_line(text, start)


def _first_sentence(phrase: str) -> str:
    end = _SENTENCE_END.search(phrase)
    return phrase[: end.start()] if end else phrase


def _answer_of_phrase(phrase: str) -> str | None:
    """The answer a marker's phrase states: the whole phrase when it is an answer (a number with
    units, an expression, a name), else the number after its last ``=``, else its first number;
    None when it states none (``clear``, ``Let's think step by step``)."""
    plain = _without_currency(strip_answer(phrase)).rstrip(",;:")
    if not plain:
        return None
    words = _prose_words(plain)
    if _NUMBER_THEN_UNITS.fullmatch(plain) or (words < 2 and _MATH_OR_NAME.search(plain)):
        return plain
    if "=" in plain:
        number = _NUMBER_TOKEN.match(plain.rpartition("=")[2].strip())
        if number:
            return number.group().rstrip(",")
    number = _NUMBER_TOKEN.search(plain)
    return number.group().rstrip(",") if number else None


def _prose_words(answer: str) -> int:
    """How many plain words of two letters or more ``answer`` holds, LaTeX commands and text aside."""
    return len(_PROSE_WORD.findall(_LATEX_TEXT.sub("", answer[:MAX_PHRASE_CHARS])))


def _without_currency(answer: str) -> str:
    return _CURRENCY.sub("", answer).strip()


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of the ``}`` that closes it (unclosed ones are absent); one pass."""
    closing: dict[int, int] = {}
    open_at: list[int] = []
    for match in _BRACE.finditer(text):
        if match.group() == "{":
            open_at.append(match.start())
        elif open_at:
            closing[open_at.pop()] = match.start()
    return closing


def last_boxed(text: str) -> tuple[int, int, str] | None:
    """(start, end, content) of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` in ``text``.

    Only the last ``MAX_BOXES_TRIED`` box commands are tried.
    """
    boxes = list(_BOX_COMMAND.finditer(text))[-MAX_BOXES_TRIED:][::-1]
    closing = _closing_braces(text) if boxes else {}
    for match in boxes:
        open_at = match.end()
        while open_at < len(text) and text[open_at].isspace():
            open_at += 1
        if text.startswith("{", open_at):
            if open_at in closing:
                return match.start(), closing[open_at] + 1, text[open_at + 1 : closing[open_at]]
        elif open_at > match.end() and open_at < len(text):  # "\\boxed 5"
            end = open_at
            while end < len(text) and not text[end].isspace() and text[end] != "$":
                end += 1
            return match.start(), end, text[open_at:end]
    return None


def strip_answer(raw: str) -> str:
    """Remove what is never part of an answer: ``$`` signs, markdown bold, a trailing period,
    LaTeX thin spaces, a whole-answer ``\\boxed{}``; unicode minus becomes ``-``."""
    answer = raw.strip().replace("\u2212", "-").replace("**", "")
    answer = answer.replace("\\$", "").replace("$", "")
    answer = _THIN_SPACE.sub(lambda match: "" if match.group(1) == "!" else " ", answer)
    answer = _without_trailing_periods(answer)
    boxed = last_boxed(answer)
    if boxed is not None and boxed[0] == 0 and boxed[1] == len(answer):
        answer = _without_trailing_periods(boxed[2])
    return answer


def _without_trailing_periods(answer: str) -> str:
    answer = answer.strip()
    while answer.endswith("."):
        answer = answer[:-1].rstrip()
    return answer
