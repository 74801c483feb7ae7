"""Sample real model outputs on GSM8K and MATH-500 problems: the raw half of the math checker's regression set.

    python scripts/math_outputs_generate.py [--out runs/math_outputs] [--data ../shared/data]

SmolLM2-135M-Instruct (``vstar.models.pretrained``, Apache-2.0) answers problems in
several prompt styles (``STYLES``), each once greedily and once sampled at temperature
0.7. Every batch is appended to ``<out>/raw.jsonl`` as soon as it is done, so a killed
run resumes where it stopped (run the same command again); ``<out>/settings.json``
records the model, seed, problem selection and decoding settings. Same settings, same
batches, same seeds: the rows are reproducible up to the floating-point order of the
CPU kernels. ``scripts/math_outputs_label.py`` labels the rows.

Problems: the GSM8K test problems with the fewest solution steps (the model's best
chance of being right; ``--gsm8k-problems``), and the MATH-500 level-1 problems
(``--math-problems``). The first round is the first ``--first-round-batches`` batches,
taken in turn from each (style, decoding): 12 gives one batch of each.

Then, as the model is rarely right (a few percent), a second round samples ``--resample``
more outputs at temperature 0.7 (decoding ``resampled``) for each (style, problem) where
an output of the first round names the gold answer in its last 300 characters: the
model's best chances to be right again. Every row is a real, unedited output; the
second round only chooses which prompts get more samples.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODEL = "smollm2-135m-instruct"
SEED = 17
TEMPERATURE = 0.7
TOP_P = 1.0
FEW_SHOT_ROWS = 4  # worked GSM8K training solutions shown before each few-shot question

# style -> (data set, how the prompt is built, what the user is told after the question)
STYLES = {
    "gsm8k_fewshot": ("gsm8k", "few_shot", ""),
    "gsm8k_chat_own_words": ("gsm8k", "chat", "Solve this step by step and answer in your own words."),
    "gsm8k_chat_boxed": ("gsm8k", "chat", "Solve this step by step. Put the final answer in \\boxed{}."),
    "gsm8k_chat_answer_is": ("gsm8k", "chat", "Solve this step by step, then end with 'The answer is N.'"),
    "math_chat_boxed": ("math500", "chat", "Solve this step by step. Put the final answer in \\boxed{}."),
    "math_chat_own_words": ("math500", "chat", "Solve this step by step and answer in your own words."),
}
DECODINGS = ("greedy", "sampled")
RESAMPLED = "resampled"
MAX_NEW_TOKENS = {"few_shot": 200, "chat": 256}
STOP_STRINGS = {"few_shot": ["\nQuestion:", "\n\n\n"], "chat": []}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gsm8k_problems(data: Path, count: int) -> list[dict]:
    """The ``count`` GSM8K test problems with the fewest calculator steps (ties: file order)."""
    rows = read_jsonl(data / "gsm8k" / "test.jsonl")
    steps = [row["answer"].count("<<") for row in rows]
    chosen = sorted(range(len(rows)), key=lambda index: (steps[index], index))[:count]
    return [
        {"problem_id": f"gsm8k/test/{index}", "question": rows[index]["question"],
         "gold": rows[index]["answer"].rpartition("####")[2].strip()}
        for index in sorted(chosen)
    ]


def math_problems(data: Path, count: int) -> list[dict]:
    """The first ``count`` MATH-500 problems of level 1 (file order)."""
    rows = [row for row in read_jsonl(data / "math500" / "test.jsonl") if row["level"] == 1][:count]
    return [{"problem_id": f"math500/{row['unique_id']}", "question": row["problem"], "gold": row["answer"]}
            for row in rows]


def few_shot_prefix(data: Path) -> str:
    """GSM8K's own format (calculator annotations and ``#### X`` kept): the first training rows."""
    rows = read_jsonl(data / "gsm8k" / "train.jsonl")[:FEW_SHOT_ROWS]
    return "".join(f"Question: {row['question']}\nAnswer: {row['answer']}\n\n" for row in rows)


def build_prompt(tokenizer, style: str, question: str) -> str:
    _, kind, instruction = STYLES[style]
    if kind == "few_shot":  # after few_shot_prefix(), which decode() runs once per batch
        return f"Question: {question}\nAnswer:"
    content = f"{question}\n\n{instruction}"
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)


def plan_jobs(args: argparse.Namespace) -> list[dict]:
    """Every (style, decoding, problem) job, in a fixed order."""
    problems = {"gsm8k": gsm8k_problems(args.data, args.gsm8k_problems),
                "math500": math_problems(args.data, args.math_problems)}
    jobs = []
    for style, (dataset, _, _) in STYLES.items():
        for decoding in DECODINGS:
            for problem in problems[dataset]:
                jobs.append({"id": f"{style}/{decoding}/{problem['problem_id']}", "style": style,
                             "decoding": decoding, **problem})
    return jobs


def names_gold(completion: str, gold: str) -> bool:
    """Whether the end of ``completion`` (its last 300 characters) writes the gold answer."""
    completion = completion[-300:]
    numbers = {number.replace(",", "") for number in re.findall(r"\d[\d,]*(?:\.\d+)?", completion)}
    return gold.replace(",", "") in numbers or (not gold.replace(",", "").isdigit() and gold in completion)


def resample_jobs(jobs: list[dict], first_round: list[dict], samples: int) -> list[dict]:
    """``samples`` more sampled jobs for each (style, problem) whose first-round outputs name the gold."""
    chosen = {(row["style"], row["problem_id"]) for row in first_round if names_gold(row["completion"], row["gold"])}
    seen, extra = set(), []
    for job in jobs:
        key = (job["style"], job["problem_id"])
        if key in chosen and key not in seen:
            seen.add(key)
            extra += [{**job, "id": f"{job['style']}/{RESAMPLED}/{job['problem_id']}/{index}", "decoding": RESAMPLED}
                      for index in range(samples)]
    return extra


def batches_of(jobs: list[dict], size: int) -> list[list[dict]]:
    """Batches of one style and decoding each, taken in turn from each (style, decoding), so that
    a run stopped early still holds every style."""
    groups: dict[tuple[str, str], list[list[dict]]] = {}
    for job in jobs:
        group = groups.setdefault((job["style"], job["decoding"]), [[]])
        if len(group[-1]) == size:
            group.append([])
        group[-1].append(job)
    rounds = max(len(group) for group in groups.values())
    return [group[turn] for turn in range(rounds) for group in groups.values() if turn < len(group)]


def decode(model, tokenizer, prompts: list[str], max_new_tokens: int, stop: list[str], sampled: bool,
           seed: int, shared_prefix: str = "") -> list[tuple[list[int], bool]]:
    """(new token ids, finished) for each ``shared_prefix + prompt``: greedy or sampled, with a KV
    cache; the prefix is run once for the batch, and a row that ends (EOS or a stop string)
    leaves the batch at once, so the others run at its size."""
    import torch
    from transformers import DynamicCache

    rows = tokenizer([shared_prefix + prompt for prompt in prompts], add_special_tokens=False)["input_ids"]
    shared = 0  # tokens that every row starts with: run once, then copied into each row's cache
    if shared_prefix:
        shared = min(len(rows[0]), *(len(row) for row in rows)) - 1
        for row in rows[1:]:
            shared = next((i for i in range(shared) if row[i] != rows[0][i]), shared)
    width = max(len(row) - shared for row in rows)
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(row) + shared) + row[shared:] for row in rows])
    mask = torch.tensor([[0] * (width - len(row) + shared) + [1] * (len(row) - shared) for row in rows])
    positions = (mask.cumsum(-1) - 1).clamp(min=0) + shared
    generator = torch.Generator().manual_seed(seed)
    cache = DynamicCache()
    if shared:  # [shared tokens][left padding][the rest of the row]: the padding is masked out
        model(input_ids=torch.tensor([rows[0][:shared]]), past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(len(prompts))
        mask = torch.cat([torch.ones(len(prompts), shared, dtype=mask.dtype), mask], dim=1)
    live = list(range(len(prompts)))  # prompt index of each row still in the batch
    tokens: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True).logits[:, -1]
    last_position = positions[:, -1]
    for _ in range(max_new_tokens):
        if sampled:
            probabilities = torch.softmax(logits.float() / TEMPERATURE, dim=-1)
            chosen = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
        else:
            chosen = logits.argmax(-1)
        kept = []
        for row, (index, token) in enumerate(zip(live, chosen.tolist())):
            if token == tokenizer.eos_token_id:
                finished[index] = True
                continue
            tokens[index].append(token)
            if stop and any(s in tokenizer.decode(tokens[index][-16:]) for s in stop):
                finished[index] = True
                continue
            kept.append(row)
        if not kept:
            break
        if len(kept) < len(live):
            keep = torch.tensor(kept)
            cache.batch_select_indices(keep)
            mask, chosen, last_position = mask[keep], chosen[keep], last_position[keep]
            live = [live[row] for row in kept]
        mask = torch.cat([mask, torch.ones(len(live), 1, dtype=mask.dtype)], dim=1)
        last_position = last_position + 1
        logits = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=last_position[:, None],
                       past_key_values=cache, use_cache=True).logits[:, -1]
    return list(zip(tokens, finished))


def generate_batch(model, tokenizer, batch: list[dict], prefix: str, batch_seed: int) -> list[dict]:
    import torch

    kind = STYLES[batch[0]["style"]][1]
    prompts = [build_prompt(tokenizer, job["style"], job["question"]) for job in batch]
    stop = STOP_STRINGS[kind]
    with torch.no_grad():
        outputs = decode(model, tokenizer, prompts, MAX_NEW_TOKENS[kind], stop, batch[0]["decoding"] != "greedy",
                         batch_seed, shared_prefix=prefix if kind == "few_shot" else "")
    rows = []
    for job, (tokens, finished) in zip(batch, outputs):
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        stopped_at = min((text.find(s) for s in stop if s in text), default=-1)
        rows.append({**{key: job[key] for key in ("id", "style", "decoding", "problem_id", "gold")},
                     "completion": text[:stopped_at] if stopped_at >= 0 else text, "tokens": len(tokens),
                     "finished": finished, "batch_seed": batch_seed})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/math_outputs"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--gsm8k-problems", type=int, default=100)
    parser.add_argument("--math-problems", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--first-round-batches", type=int, default=12,
                        help="batches of the first round (12: one per style and decoding)")
    parser.add_argument("--resample", type=int, default=6, help="second-round samples per promising prompt")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--styles", nargs="*", default=None, help="only these styles (default: all)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop after this many new batches")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vstar.models.pretrained import converted_checkpoint

    torch.set_num_threads(args.threads)  # on a shared 2-core machine, 1 is several times faster
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"model": MODEL, "seed": SEED, "temperature": TEMPERATURE, "top_p": TOP_P,
                "max_new_tokens": MAX_NEW_TOKENS, "stop_strings": STOP_STRINGS, "styles": STYLES,
                "few_shot_rows": FEW_SHOT_ROWS, "gsm8k_problems": args.gsm8k_problems,
                "math_problems": args.math_problems, "batch_size": args.batch_size, "resample": args.resample,
                "first_round_batches": args.first_round_batches,
                "torch": torch.__version__}
    (args.out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    raw = args.out / "raw.jsonl"

    path = converted_checkpoint(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prefix = few_shot_prefix(args.data)
    first_batches = batches_of(plan_jobs(args), args.batch_size)[: args.first_round_batches]
    jobs = [job for batch in first_batches for job in batch]
    new_batches = run_batches(model, tokenizer, first_batches, prefix, raw, args, 0)
    first_round = [json.loads(line) for line in raw.read_text().splitlines()]
    if len({row["id"] for row in first_round} & {job["id"] for job in jobs}) < len(jobs):
        return  # the first round is not complete (--max-batches or --styles)
    extra = resample_jobs(jobs, first_round, args.resample)
    print(f"second round: {len(extra)} jobs for prompts whose outputs name the gold answer", flush=True)
    run_batches(model, tokenizer, batches_of(extra, args.batch_size), prefix, raw, args, new_batches, seed_offset=10_000)


def run_batches(model, tokenizer, batches: list[list[dict]], prefix: str, raw: Path, args: argparse.Namespace,
                new_batches: int, seed_offset: int = 0) -> int:
    """Generate the batches not yet in ``raw`` (appending each when done); the count of new batches."""
    done = {json.loads(line)["id"] for line in raw.read_text().splitlines()} if raw.exists() else set()
    for number, batch in enumerate(batches):
        if all(job["id"] in done for job in batch) or (args.styles and batch[0]["style"] not in args.styles):
            continue
        if args.max_batches is not None and new_batches >= args.max_batches:
            break
        started = time.time()
        rows = generate_batch(model, tokenizer, batch, prefix, SEED * 100_003 + seed_offset + number)
        with raw.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows if row["id"] not in done)
        new_batches += 1
        tokens = sum(row["tokens"] for row in rows)
        print(f"batch {number + 1}/{len(batches)} {batch[0]['style']} {batch[0]['decoding']}: {len(rows)} rows, "
              f"{tokens} tokens in {time.time() - started:.0f} s", flush=True)
    return new_batches

if __name__ == "__main__":
    main()
