"""The real `openai` client against a live uvicorn server on 127.0.0.1 (tiny random-weight models)."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def oai(live_server):
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_builtins_and_served_folders(oai):
    ids = {m.id for m in oai.models.list()}
    assert {"gemma3-270m", "tiny", "enc", "runs/ft"} <= ids
    assert "clf/reviews" not in ids  # classifiers are not language models; they are in /v1/registry
    assert oai.models.retrieve("tiny").id == "tiny"


def test_completions(oai):
    out = oai.completions.create(model="tiny", prompt=["Hello there", "Good morning"], max_tokens=4, seed=1)
    assert [c.index for c in out.choices] == [0, 1]
    assert all(isinstance(c.text, str) and c.finish_reason in ("stop", "length") for c in out.choices)
    assert out.usage.prompt_tokens > 0
    again = oai.completions.create(model="tiny", prompt=["Hello there", "Good morning"], max_tokens=4, seed=1)
    assert [c.text for c in again.choices] == [c.text for c in out.choices]  # greedy by default: deterministic


def test_chat_completion_and_streaming(oai):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
    whole = oai.chat.completions.create(model="tiny", messages=messages, max_tokens=6)
    assert whole.choices[0].message.role == "assistant"
    assert isinstance(whole.choices[0].message.content, str)
    chunks = list(oai.chat.completions.create(model="tiny", messages=messages, max_tokens=6, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert len({c.id for c in chunks}) == 1
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert isinstance(streamed, str)


def test_streaming_completion(oai):
    chunks = list(oai.completions.create(model="tiny", prompt="Once upon", max_tokens=5, stream=True))
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_embeddings_float_and_base64(oai):
    import numpy as np

    out = oai.embeddings.create(model="enc", input=["a cat", "a dog"], encoding_format="float")
    vectors = np.array([d.embedding for d in out.data])
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    default = oai.embeddings.create(model="enc", input="a cat")  # the client asks for base64 and decodes it
    assert np.allclose(default.data[0].embedding, vectors[0], atol=1e-5)


def test_unknown_model_and_bad_values_are_client_errors(oai):
    with pytest.raises(openai.NotFoundError, match="unknown model 'nope'"):
        oai.completions.create(model="nope", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="max_tokens=100000 is over"):
        oai.completions.create(model="tiny", prompt="x", max_tokens=100000)
    with pytest.raises(openai.BadRequestError, match="messages"):
        oai.chat.completions.create(model="tiny", messages=[])
    assert oai.models.retrieve("tiny").id == "tiny"  # still serving


def test_api_key_is_required_when_set(served_dir, app_factory, server_factory):
    with server_factory(app_factory(served_dir, api_key="s3cret")) as server:
        anonymous = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="missing or wrong API key"):
            anonymous.models.list()
        keyed = openai.OpenAI(base_url=f"{server.url}/v1", api_key="s3cret", max_retries=0)
        assert any(m.id == "tiny" for m in keyed.models.list())
