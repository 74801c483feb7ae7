"""OpenRLHF's remote reward-model protocol (``openrlhf.cli.serve_rm``, ``--remote_rm_url``).

OpenRLHF's trainers POST ``{"query": [prompt + response, ...], "prompts": [prompt, ...],
"labels": [...]}`` to ``/get_reward`` and read ``{"rewards": [...], "scores": [...],
"extra_logs": {name: [...]}}``, one number per query in each list. A query is the decoded
sequence, special tokens and all, so it may carry padding or a BOS before the prompt and the
end token after the response. The verifier scores (prompt, response, finished): the response is
what follows the prompt in the query, without trailing padding; it finished when it ends with
the end token (the end-of-turn token under a chat template, else EOS), which is then taken off
the text and scored as a token, as everywhere in vstar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vstar.errors import VstarError


@dataclass(frozen=True)
class TokenTexts:
    """The text of the verifier's special tokens that a decoded query may hold."""

    pad: str
    ends: tuple[str, ...]  # end-of-turn / EOS texts, longest first

    @classmethod
    def of(cls, fmt) -> "TokenTexts":
        """From a ``SequenceFormat`` (its tokenizer, end id and stop ids)."""
        tokenizer = fmt.tokenizer
        ids = dict.fromkeys([fmt.end_id, tokenizer.eos_token_id])
        ends = {tokenizer.convert_ids_to_tokens(i) for i in ids if i is not None}
        return cls(pad=tokenizer.pad_token or "", ends=tuple(sorted((e for e in ends if e), key=len, reverse=True)))


def split_query(query: str, prompt: str, texts: TokenTexts, index: int) -> tuple[str, bool]:
    """(response, finished) of one query: the text after ``prompt``, with trailing padding and end
    tokens taken off; finished when there was an end token."""
    start = query.find(prompt)
    if start < 0:
        raise VstarError(f"query[{index}] does not contain prompts[{index}]: each query must be the prompt "
                         "followed by the response.")
    response, finished = query[start + len(prompt):], False
    trailing = [(end, True) for end in texts.ends] + ([(texts.pad, False)] if texts.pad else [])
    while True:
        found = next(((text, is_end) for text, is_end in trailing if response.endswith(text)), None)
        if found is None:
            return response, finished
        response = response[: -len(found[0])]
        finished = finished or found[1]


def split_queries(queries: Sequence[str], prompts: Sequence[str], texts: TokenTexts) -> tuple[list[str], list[bool]]:
    """``split_query`` of each (query, prompt) pair."""
    if len(queries) != len(prompts):
        raise VstarError(f"query and prompts: {len(queries)} queries but {len(prompts)} prompts; "
                         "send one prompt per query.")
    split = [split_query(q, p, texts, i) for i, (q, p) in enumerate(zip(queries, prompts))]
    return [response for response, _ in split], [finished for _, finished in split]


def reward_response(rewards: Sequence[float], finished: Sequence[bool]) -> dict:
    """The body OpenRLHF reads: rewards, the same numbers as scores (for its filters), and per-query
    logs (whether each response finished)."""
    return {"rewards": list(rewards), "scores": list(rewards),
            "extra_logs": {"finished": [float(f) for f in finished]}}
