"""The reward server's HTTP API (FastAPI): /health, /score, /best_of_n and OpenRLHF's /get_reward.

Every request body is read with a size limit (413 past it), parsed as JSON (400 when it is not)
and checked against its request model (422 naming the field); a request the model cannot
score (too long for it, an unknown variant) gets 422 with the reason. Scoring requests go to
the ``Batcher``'s queue, so concurrent requests share forward passes. Errors answer
``{"error": message}``; the server goes on answering after each.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vstar.errors import VstarError
from vstar.scoring.variants import PAPER_SCORE
from vstar.serve.batching import Batcher, CallJob, ScoreJob
from vstar.serve.rewards import TokenTexts, reward_response, split_queries
from vstar.serve.verifier import finished_flags

log = logging.getLogger("vstar.serve")


@dataclass(frozen=True)
class ServerSettings:
    max_batch: int = 32  # sequences scored together from concurrent requests (1: no batching)
    wait_ms: float = 5.0  # how long the model thread waits for more requests to batch
    max_body_bytes: int = 1 << 20  # larger request bodies get 413
    max_sequences: int = 1024  # completions per /score or /get_reward request, n x prompts per /best_of_n
    variant: str = PAPER_SCORE  # the score /get_reward returns and /score uses by default


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScoreRequest(Strict):
    prompt: str
    completions: list[str]
    finished: bool | list[bool] = True
    variant: str | None = None


class BestOfNRequest(Strict):
    prompts: list[str]
    n: int = Field(ge=1)
    variant: str | None = None
    seed: int = 0
    temperature: float | None = Field(default=None, ge=0)
    max_new_tokens: int | None = Field(default=None, ge=1)


class RewardRequest(BaseModel):
    """OpenRLHF's body; its other fields (labels, metas, ...) are accepted and not used."""

    model_config = ConfigDict(extra="allow", strict=True)
    query: list[str]
    prompts: list[str]
    finished: list[bool] | None = None


def create_app(verifier, settings: ServerSettings = ServerSettings()) -> FastAPI:
    """The app; its lifespan starts the model thread, loads the verifier, and stops the thread."""
    verifier.check_variant(settings.variant)
    batcher = Batcher(verifier, settings.max_batch, settings.wait_ms)
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        fmt = await asyncio.wrap_future(batcher.submit(CallJob(lambda v: v.scorer("verifier").format)))
        state["texts"] = TokenTexts.of(fmt)
        yield
        batcher.stop()

    app = FastAPI(title="vstar verifier", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.get("/health")
    async def health():
        return {"status": "ok", "variants": verifier.variants, "variant": settings.variant,
                "max_batch": settings.max_batch, "batches": batcher.batches,
                "models": {name: path for name, path in verifier.paths.items() if path}}

    @app.post("/score")
    async def score(request: Request):
        body = await read_body(request, ScoreRequest, settings)
        variant = check_variant(verifier, body.variant or settings.variant)
        count_sequences(len(body.completions), settings)
        flags = call_checked(finished_flags, body.finished, len(body.completions))
        scores = await run_job(batcher, ScoreJob([body.prompt] * len(flags), body.completions, flags, variant))
        best = max(range(len(scores)), key=lambda i: (scores[i], -i)) if scores else None
        return {"variant": variant, "scores": scores, "best": best}

    @app.post("/get_reward")
    async def get_reward(request: Request):
        body = await read_body(request, RewardRequest, settings)
        count_sequences(len(body.query), settings)
        responses, finished = call_checked(split_queries, body.query, body.prompts, state["texts"])
        if body.finished is not None:
            finished = call_checked(finished_flags, body.finished, len(responses))
        rewards = await run_job(batcher, ScoreJob(body.prompts, responses, finished, settings.variant))
        return reward_response(rewards, finished)

    @app.post("/best_of_n")
    async def best_of_n(request: Request):
        body = await read_body(request, BestOfNRequest, settings)
        variant = check_variant(verifier, body.variant or settings.variant)
        count_sequences(len(body.prompts) * body.n, settings)

        def pick(v):
            return v.best_of_n(body.prompts, body.n, variant=variant, seed=body.seed, temperature=body.temperature,
                               max_new_tokens=body.max_new_tokens)

        picks = await run_job(batcher, CallJob(pick))
        return {"variant": variant, "picks": [p.to_record() for p in picks]}

    return app


async def read_body(request: Request, model: type[BaseModel], settings: ServerSettings) -> BaseModel:
    """The request's JSON body as ``model``: 413 past ``max_body_bytes``, 400 if not JSON, 422 if
    a field is missing or wrong."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise RequestError(413 if declared.isdigit() else 400,
                           f"request body of {declared} bytes: more than the limit of {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise RequestError(413, f"request body over the limit of {limit} bytes")
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise RequestError(422, f"request body: expected a JSON object, got {type(parsed).__name__}")
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise RequestError(422, "; ".join(field_problem(error) for error in exc.errors())) from None


def field_problem(error: dict) -> str:
    """One pydantic error as ``field 'completions.2': Input should be a valid string``."""
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"field '{where}': {error['msg']}"


def check_variant(verifier, variant: str) -> str:
    return call_checked(verifier.check_variant, variant)


def count_sequences(count: int, settings: ServerSettings) -> None:
    if count > settings.max_sequences:
        raise RequestError(413, f"{count} sequences in one request: more than the limit of {settings.max_sequences}")


def call_checked(function, *args):
    """``function(*args)``, a ``VstarError`` turned into 422."""
    try:
        return function(*args)
    except VstarError as exc:
        raise RequestError(422, str(exc)) from None


async def run_job(batcher: Batcher, job):
    """The job's result from the model thread; a ``VstarError`` there is 422, anything else 500."""
    try:
        return await asyncio.wrap_future(batcher.submit(job))
    except VstarError as exc:
        raise RequestError(422, str(exc)) from None
    except Exception as exc:
        log.exception("request failed on the model thread")
        raise RequestError(500, f"internal error: {type(exc).__name__}: {exc}") from None
