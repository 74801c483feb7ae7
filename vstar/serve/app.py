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
from vstar.serve.verifier import best_index, finished_flags

log = logging.getLogger("vstar.serve")


@dataclass(frozen=True)
class ServerSettings:
    max_batch: int = 32  # sequences scored together from concurrent requests (1: no batching)
    wait_ms: float = 5.0  # how long the model thread waits for more requests to batch
    max_body_bytes: int = 32 << 20  # larger request bodies get 413 (an RL batch of 8k queries fits)
    max_sequences: int = 16384  # completions per /score or /get_reward request, n x prompts per /best_of_n
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
    routes = Routes(verifier, Batcher(verifier, settings.max_batch, settings.wait_ms), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        routes.batcher.start()
        fmt = await asyncio.wrap_future(routes.batcher.submit(CallJob(lambda v: v.scorer("verifier").format)))
        routes.texts = TokenTexts.of(fmt)
        yield
        routes.batcher.stop()

    app = FastAPI(title="vstar verifier", lifespan=lifespan)
    app.state.batcher = routes.batcher
    app.add_exception_handler(RequestError, request_error)
    app.add_api_route("/health", routes.health, methods=["GET"])
    for path, handler in (("/score", routes.score), ("/get_reward", routes.get_reward),
                          ("/best_of_n", routes.best_of_n)):
        app.add_api_route(path, counted(routes.batcher, handler), methods=["POST"])
    return app


def counted(batcher: Batcher, handler):
    """``handler``, its request counted as coming until it queues its job (the model thread waits to
    batch only while requests are coming)."""

    async def run(request: Request):
        with batcher.request():
            return await handler(request)

    return run


async def request_error(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


class Routes:
    """The endpoints, over one verifier and its model thread."""

    def __init__(self, verifier, batcher: Batcher, settings: ServerSettings):
        self.verifier = verifier
        self.batcher = batcher
        self.settings = settings
        self.texts: TokenTexts | None = None  # the verifier's special tokens, once it is loaded

    async def health(self) -> dict:
        return {"status": "ok", "variants": self.verifier.variants, "variant": self.settings.variant,
                "max_batch": self.settings.max_batch, "batches": self.batcher.batches,
                "models": {name: path for name, path in self.verifier.paths.items() if path}}

    async def score(self, request: Request) -> dict:
        """``{"prompt", "completions", "finished"?, "variant"?}`` -> ``{"variant", "scores", "best"}``."""
        body = await read_body(request, ScoreRequest, self.settings)
        variant = call_checked(self.verifier.check_variant, body.variant or self.settings.variant)
        count_sequences(len(body.completions), self.settings)
        flags = call_checked(finished_flags, body.finished, len(body.completions))
        scores = await run_job(self.batcher, ScoreJob([body.prompt] * len(flags), body.completions, flags, variant))
        return {"variant": variant, "scores": scores, "best": best_index(scores) if scores else None}

    async def get_reward(self, request: Request) -> dict:
        """OpenRLHF's ``{"query", "prompts", ...}`` -> ``{"rewards", "scores", "extra_logs"}``."""
        body = await read_body(request, RewardRequest, self.settings)
        count_sequences(len(body.query), self.settings)
        responses, finished = call_checked(split_queries, body.query, body.prompts, self.texts)
        if body.finished is not None:
            finished = call_checked(finished_flags, body.finished, len(responses))
        rewards = await run_job(self.batcher, ScoreJob(body.prompts, responses, finished, self.settings.variant))
        return reward_response(rewards, finished)

    async def best_of_n(self, request: Request) -> dict:
        """``{"prompts", "n", "variant"?, "seed"?, "temperature"?, "max_new_tokens"?}`` -> ``{"variant", "picks"}``."""
        body = await read_body(request, BestOfNRequest, self.settings)
        variant = call_checked(self.verifier.check_variant, body.variant or self.settings.variant)
        count_sequences(len(body.prompts) * body.n, self.settings)

        def pick(verifier) -> list:
            return verifier.best_of_n(body.prompts, body.n, variant=variant, seed=body.seed,
                                      temperature=body.temperature, max_new_tokens=body.max_new_tokens)

        picks = await run_job(self.batcher, CallJob(pick))
        return {"variant": variant, "picks": [p.to_record() for p in picks]}


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
