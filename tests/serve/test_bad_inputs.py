"""Every endpoint refuses bad input with a 4xx and a message that names the problem, and keeps serving."""

from __future__ import annotations

import pytest

DIALOGUE = "#Person1#: Hello.\n#Person2#: Hi there."
GOOD = {
    "/v1/completions": {"model": "tiny", "prompt": "Hello", "max_tokens": 2},
    "/v1/chat/completions": {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    "/v1/embeddings": {"model": "enc", "input": ["Hello"]},
    "/v1/summarize": {"model": "tiny", "dialogues": [DIALOGUE], "method": "lead"},
    "/v1/classify": {"model": "clf/reviews", "texts": ["Hello"]},
    "/v1/quality/score": {"model": "scorers/none", "texts": ["Hello"]},
}
TEXT_FIELD = {"/v1/completions": "prompt", "/v1/chat/completions": "messages", "/v1/embeddings": "input",
              "/v1/summarize": "dialogues", "/v1/classify": "texts", "/v1/quality/score": "texts"}
ENDPOINTS = list(GOOD)


def error_of(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in response.text
    return body["error"]["message"]


@pytest.fixture(autouse=True)
def still_serving(client):
    yield
    assert client.get("/health").json() == {"status": "ok"}
    ok = client.post("/v1/classify", json=GOOD["/v1/classify"])
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_malformed_json(client, path):
    message = error_of(client.post(path, content=b'{"model": "tiny", ', headers={"content-type": "application/json"}),
                       400)
    assert "malformed JSON" in message


@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_that_is_not_an_object(client, path):
    assert "valid dictionary" in error_of(client.post(path, json=["a", "list"]), 400)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_wrong_types(client, path):
    field = TEXT_FIELD[path]
    body = {**GOOD[path], field: 42}
    assert field in error_of(client.post(path, json=body), 400)
    body = {**GOOD[path], "model": {"name": "tiny"}}
    assert "model" in error_of(client.post(path, json=body), 400)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_empty_texts(client, path):
    field = TEXT_FIELD[path]
    empty = [{"role": "user", "content": " "}] if field == "messages" else ["  "]
    response = client.post(path, json={**GOOD[path], field: empty})
    if field == "messages":  # an empty chat turn is allowed (OpenAI allows it), the whole list is not
        response = client.post(path, json={**GOOD[path], field: []})
    message = error_of(response, 400)
    assert field in message and ("empty" in message or "at least 1" in message)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_ten_megabyte_body(client, path):
    body = b'{"texts": ["' + b"a" * (10 * 1024 * 1024) + b'"]}'
    message = error_of(client.post(path, content=body, headers={"content-type": "application/json"}), 413)
    assert "larger than the server's limit of 1 MB" in message


@pytest.mark.parametrize("path", ENDPOINTS)
def test_over_long_text_and_too_many_texts(client, path):
    field = TEXT_FIELD[path]
    long = "a " * 3000  # 6000 characters, over the fixture's 5000
    value = [{"role": "user", "content": long}] if field == "messages" else [long]
    assert "the limit is 5,000" in error_of(client.post(path, json={**GOOD[path], field: value}), 413)
    many = [{"role": "user", "content": "hi"}] * 17 if field == "messages" else ["hi"] * 17
    assert "the limit is 16 per request" in error_of(client.post(path, json={**GOOD[path], field: many}), 413)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("name", ["../outside-secret.txt", "/etc/passwd", "clf/../../x", "~/.ssh", "C:\\x",
                                  "clf\\..\\..\\x"])
def test_path_like_artifact_names(client, path, name):
    message = error_of(client.post(path, json={**GOOD[path], "model": name}), 400)
    assert "relative to the served directory" in message


@pytest.mark.parametrize("path", ENDPOINTS)
def test_unknown_model(client, path):
    message = error_of(client.post(path, json={**GOOD[path], "model": "no-such-model"}), 404)
    assert "'no-such-model'" in message and "known:" in message


def test_wrong_kind_of_artifact(client):
    message = error_of(client.post("/v1/classify", json={"model": "tiny", "texts": ["x"]}), 404)
    assert "unknown classifier artifact 'tiny'" in message and "clf/reviews" in message
    message = error_of(client.post("/v1/completions", json={"model": "clf/reviews", "prompt": "x"}), 404)
    assert "unknown model 'clf/reviews'" in message


def test_out_of_range_options(client):
    message = error_of(client.post("/v1/summarize", json={**GOOD["/v1/summarize"], "method": "magic"}), 400)
    assert "method" in message and "few-shot" in message
    message = error_of(client.post("/v1/completions", json={**GOOD["/v1/completions"], "max_tokens": 1000}), 400)
    assert "max_tokens=1000 is over the server's limit of 32" in message
    assert "temperature" in error_of(client.post("/v1/completions", json={**GOOD["/v1/completions"],
                                                                          "temperature": -1}), 400)
    message = error_of(client.post("/v1/classify", json={**GOOD["/v1/classify"], "explian": True}), 400)
    assert "explian: Extra inputs are not permitted" in message


def test_unknown_route_and_method(client):
    assert "no endpoint" in error_of(client.post("/v1/nope", json={}), 404)
    assert "not allowed" in error_of(client.get("/v1/classify"), 405)


def test_missing_api_key_on_every_endpoint(served_dir, app_factory):
    from fastapi.testclient import TestClient

    with TestClient(app_factory(served_dir, api_key="k3y"), raise_server_exceptions=False) as keyed:
        for path, body in GOOD.items():
            assert "missing or wrong API key" in error_of(keyed.post(path, json=body), 401)
            assert "missing or wrong API key" in error_of(keyed.post(path, json=body, headers={"X-API-Key": "no"}),
                                                          401)
        for path in ("/v1/models", "/v1/registry", "/v1/jobs", "/v1/stats"):
            assert keyed.get(path).status_code == 401
            assert keyed.get(path, headers={"Authorization": "Bearer k3y"}).status_code == 200
        ok = keyed.post("/v1/classify", json=GOOD["/v1/classify"], headers={"X-API-Key": "k3y"})
        assert ok.status_code == 200, ok.text
        assert keyed.get("/").status_code == 200  # the page itself holds no data; it asks for the key


def test_ten_megabyte_upload_to_a_live_server(live_server):
    """Over a real socket the 413 arrives too (the body is drained), and the server keeps serving."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{live_server.url}/v1/classify", data=b"x" * (10 * 1024 * 1024),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert "larger than the server's limit" in json.loads(caught.value.read())["error"]["message"]
    with urllib.request.urlopen(f"{live_server.url}/health", timeout=10) as response:
        assert response.status == 200


def test_a_prompt_over_the_context_and_an_overflowing_seed_are_clear_400s(client):
    lm_limit = 512  # the tiny model's position limit
    long = "word " * (lm_limit + 50)
    message = error_of(client.post("/v1/completions", json={"model": "tiny", "prompt": long, "max_tokens": 4}), 400)
    assert "over the model's context of 512 tokens" in message
    message = error_of(client.post("/v1/chat/completions", json={
        "model": "tiny", "messages": [{"role": "user", "content": long}]}), 400)
    assert "over the model's context" in message
    assert "seed" in error_of(client.post("/v1/completions", json={**GOOD["/v1/completions"], "seed": 2**70}), 400)
