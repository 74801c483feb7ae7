"""The reward server, for real: uvicorn on a free loopback port, called with a real HTTP client
(requests, as OpenRLHF calls it). Concurrent requests, OpenRLHF's /get_reward, malformed and
oversized bodies; the server answers every request after each bad one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from vstar.serve.app import ServerSettings, create_app  # noqa: E402
from vstar.serve.server import ServerThread  # noqa: E402

PROMPT = "2 5 2 3 -> 6\n"
LIMIT = 20_000


@pytest.fixture(scope="module")
def server(micro_verifier):
    app = create_app(micro_verifier, ServerSettings(max_batch=16, wait_ms=20, max_body_bytes=LIMIT, max_sequences=40))
    with ServerThread(app) as running:
        running.batcher = app.state.batcher
        yield running


def post(server, path: str, body=None, **kwargs):
    return requests.post(server.url + path, json=body, timeout=60, **kwargs)


def healthy(server) -> bool:
    return requests.get(server.url + "/health", timeout=30).json()["status"] == "ok"


def test_health_names_the_models_and_variants(server, micro_run):
    assert server.url.startswith("http://127.0.0.1:")
    health = requests.get(server.url + "/health", timeout=30).json()
    assert health["variant"] == "V-STaR" and "V-STaR (DPO reward)" in health["variants"]
    assert health["models"]["verifier"] == str(micro_run / "verifier")


def test_score_gives_the_api_scores(server, micro_verifier):
    completions = ["5+2=7\n7-3=4\n", "?", ""]
    reply = post(server, "/score", {"prompt": PROMPT, "completions": completions, "finished": [True, False, True]})
    assert reply.status_code == 200
    body = reply.json()
    expected = micro_verifier.score(PROMPT, completions, finished=[True, False, True])
    assert body["scores"] == pytest.approx(expected, abs=1e-4) and body["variant"] == "V-STaR"
    assert body["best"] == max(range(3), key=lambda i: expected[i])
    dpo = post(server, "/score", {"prompt": PROMPT, "completions": completions, "variant": "V-STaR (DPO reward)"})
    assert dpo.json()["scores"] == pytest.approx(micro_verifier.score(PROMPT, completions, variant="V-STaR (DPO reward)"),
                                                 abs=1e-4)


def test_get_reward_speaks_openrlhfs_protocol(server, micro_verifier):
    prompts = [PROMPT, "1 2 -> 3\n", "4 4 -> 8\n"]
    queries = ["<s>" + PROMPT + "5+2=7</s><pad><pad>", "1 2 -> 3\n" + "1+2=3", "4 4 -> 8\n" + "4+4=8</s>"]
    reply = post(server, "/get_reward", {"query": queries, "prompts": prompts, "labels": ["6", "3", "8"]})
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"rewards", "scores", "extra_logs"} and body["rewards"] == body["scores"]
    assert body["extra_logs"] == {"finished": [1.0, 0.0, 1.0]}  # one value per query, as OpenRLHF concatenates
    expected = [micro_verifier.score(PROMPT, ["5+2=7"])[0], micro_verifier.score("1 2 -> 3\n", ["1+2=3"], finished=False)[0],
                micro_verifier.score("4 4 -> 8\n", ["4+4=8"])[0]]
    assert body["rewards"] == pytest.approx(expected, abs=1e-4)
    bad = post(server, "/get_reward", {"query": ["no prompt here"], "prompts": [PROMPT]})
    assert bad.status_code == 422 and "query[0] does not contain prompts[0]" in bad.json()["error"]
    old = post(server, "/get_reward", {"query": queries})  # OpenRLHF before it sent prompts
    assert old.status_code == 422 and "field 'prompts': Field required" in old.json()["error"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_scores(server, micro_verifier):
    completions = [f"{i}+{i}={2 * i}\n" for i in range(48)]
    expected = micro_verifier.score(PROMPT, completions)
    before = server.batcher.batches

    def ask(completion: str) -> float:
        reply = post(server, "/score", {"prompt": PROMPT, "completions": [completion]})
        assert reply.status_code == 200
        return reply.json()["scores"][0]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(ask, completions))
    assert got == pytest.approx(expected, abs=1e-4)
    batches = server.batcher.batches - before
    assert batches < len(completions) / 2, batches  # requests shared forward passes


def test_a_lone_request_does_not_wait_for_company(micro_verifier):
    app = create_app(micro_verifier, ServerSettings(max_batch=16, wait_ms=4000))
    with ServerThread(app) as running:
        start = time.perf_counter()
        for completion in ("1", "2", "3"):
            assert post(running, "/score", {"prompt": PROMPT, "completions": [completion]}).status_code == 200
        assert time.perf_counter() - start < 4.0  # each went alone, at once: no 4 s wait for others


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "request body is not valid JSON"),
    (b"", 400, "request body is not valid JSON"),
    (b'["a", "list"]', 422, "expected a JSON object, got list"),
    (json.dumps({"prompt": PROMPT}).encode(), 422, "field 'completions': Field required"),
    (json.dumps({"prompt": 5, "completions": ["x"]}).encode(), 422, "field 'prompt': Input should be a valid string"),
    (json.dumps({"prompt": PROMPT, "completions": ["x", None]}).encode(), 422, "field 'completions.1'"),
    (json.dumps({"prompt": PROMPT, "completions": ["x"], "extra": 1}).encode(), 422, "field 'extra': Extra inputs"),
    (json.dumps({"prompt": PROMPT, "completions": ["x"], "finished": [True, True]}).encode(), 422, "a list of 1"),
    (json.dumps({"prompt": PROMPT, "completions": ["x"], "variant": "ORM"}).encode(), 422, "'ORM': not one of"),
    (json.dumps({"prompt": PROMPT, "completions": ["x" * 400]}).encode(), 422, "max_position_embeddings"),
    ("{\"prompt\": \"\\ud800\"}".encode() + b"\xff", 400, "not valid JSON"),
])
def test_a_bad_request_gets_a_clear_4xx_and_the_server_goes_on(server, body, status, message):
    reply = requests.post(server.url + "/score", data=body, headers={"content-type": "application/json"}, timeout=60)
    assert reply.status_code == status
    assert message in reply.json()["error"]
    assert healthy(server)
    assert post(server, "/score", {"prompt": PROMPT, "completions": ["1"]}).status_code == 200


def test_an_oversized_body_gets_413(server):
    big = {"prompt": PROMPT, "completions": ["x" * 100] * 300}
    assert post(server, "/score", big).status_code == 413
    assert healthy(server)

    def chunks():  # no content-length: the limit holds while reading
        yield b'{"prompt": "' + b"x" * 8000
        for _ in range(5):
            yield b"x" * 8000
        yield b'", "completions": []}'

    reply = requests.post(server.url + "/get_reward", data=chunks(), timeout=60)
    assert reply.status_code == 413 and f"limit of {LIMIT} bytes" in reply.json()["error"]
    many = post(server, "/score", {"prompt": PROMPT, "completions": ["1"] * 41})
    assert many.status_code == 413 and "41 sequences" in many.json()["error"]
    assert post(server, "/best_of_n", {"prompts": [PROMPT] * 3, "n": 16}).status_code == 413
    assert healthy(server)


def test_best_of_n_endpoint_returns_the_pick_and_all_candidates(server, micro_verifier):
    reply = post(server, "/best_of_n", {"prompts": [PROMPT], "n": 3, "seed": 2, "max_new_tokens": 10})
    assert reply.status_code == 200
    (pick,) = reply.json()["picks"]
    scores = [c["score"] for c in pick["candidates"]]
    assert len(scores) == 3 and pick["score"] == max(scores) and pick["best"] == scores.index(max(scores))
    rescored = micro_verifier.score(PROMPT, [c["completion"] for c in pick["candidates"]],
                              finished=[c["finished"] for c in pick["candidates"]])
    assert rescored == pytest.approx(scores, abs=1e-4)
    bad = post(server, "/best_of_n", {"prompts": [PROMPT], "n": 0})
    assert bad.status_code == 422 and "field 'n'" in bad.json()["error"]


def test_vstar_serve_command_listens_on_loopback_only(micro_run):
    process = subprocess.Popen([sys.executable, "-m", "vstar.cli", "serve", "--run", str(micro_run), "--port", "0",
                                "--max-batch", "8", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert first.startswith("vstar: serving ") and " at http://127.0.0.1:" in first, first
        url = first.split(" at ")[1].split()[0]
        assert second.strip() == f"vstar: OpenRLHF: --remote_rm_url {url}/get_reward"
        assert requests.get(url + "/health", timeout=30).json()["max_batch"] == 8
        reply = requests.post(url + "/get_reward", json={"query": [PROMPT + "5+2=7</s>"], "prompts": [PROMPT]},
                              timeout=60)
        assert reply.status_code == 200 and len(reply.json()["rewards"]) == 1
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0


def test_a_taken_port_is_a_clear_error(micro_run, capsys):
    from vstar.cli import main
    from vstar.serve.server import bind

    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert main(["serve", "--run", str(micro_run), "--port", str(port)]) == 2
    finally:
        taken.close()
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
