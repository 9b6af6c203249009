"""What a generation reply depends on: its own request only (seed, budget), never on what shared its batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def test_a_sampled_reply_does_not_depend_on_the_requests_beside_it(served_dir, app_factory):
    from fastapi.testclient import TestClient

    body = {"model": "tiny", "prompt": "The cat sat", "max_tokens": 8, "temperature": 1.0, "seed": 5}
    with TestClient(app_factory(served_dir, batch_wait_ms=300)) as client:
        def text(_):
            return client.post("/v1/completions", json=body).json()["choices"][0]["text"]

        alone = text(0)
        with ThreadPoolExecutor(2) as pool:  # arrive within one batching window
            together = list(pool.map(text, range(2)))
    assert together == [alone, alone]


def test_chat_without_max_tokens_may_use_the_servers_budget(served_dir, app_factory):
    from fastapi.testclient import TestClient

    def reply(client, **budget):
        body = {"model": "tiny", "messages": [{"role": "user", "content": "Tell me a story"}], "temperature": 0}
        response = client.post("/v1/chat/completions", json=body | budget)
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    with TestClient(app_factory(served_dir)) as client:  # --max-new-tokens 32 in make_app
        unset, full, sixteen = reply(client), reply(client, max_tokens=32), reply(client, max_tokens=16)
    assert unset == full != sixteen  # OpenAI chat has no 16-token default


def test_a_fine_tuned_summarizer_keeps_to_the_requested_budget(served_dir, app_factory):
    from fastapi.testclient import TestClient

    dialogue = "#Person1#: Hello there, how are you today?\n#Person2#: Fine, thanks. And you?"
    with TestClient(app_factory(served_dir)) as client:
        def summary(budget):
            response = client.post("/v1/summarize", json={"model": "runs/ft", "dialogues": [dialogue],
                                                          "method": "zero-shot", "max_new_tokens": budget})
            assert response.status_code == 200, response.text
            return response.json()["summaries"][0]

        short, trained = summary(2), summary(8)
    assert short != trained and len(short) < len(trained)  # the run trained with 8: 2 is honoured, not raised


def test_a_stream_never_sends_a_stop_string_split_over_pieces(served_dir, app_factory):
    # A stand-in LM whose stream gives the reply token by token, so "world foo" arrives in two pieces.
    import json

    import torch
    from fastapi.testclient import TestClient

    from slmkit.models._base import cut_at_stop
    from slmkit.testing import make_tokenizer

    tokenizer = make_tokenizer()
    reply = "hello world foo bar baz"

    class Streaming:
        spec = type("Spec", (), {"name": "stand-in"})

        def __init__(self):
            self.tokenizer = tokenizer

        def generate(self, prompts, params, batch_size=1):
            streamer = params.extra.get("streamer")
            if streamer is not None:
                streamer.put(torch.tensor([tokenizer(prompts[0])["input_ids"]]))
                for token in tokenizer(reply, add_special_tokens=False)["input_ids"]:
                    streamer.put(torch.tensor([token]))
                streamer.end()
            return [cut_at_stop(reply, params.stop)]

        def count_tokens(self, texts):
            return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    app = app_factory(served_dir)
    app.state.slmkit._objects[("lm", str(served_dir / "tiny"))] = Streaming()
    with TestClient(app) as client:
        for stop in ("world foo", "foo bar", "zzz"):
            body = {"model": "tiny", "prompt": "x", "max_tokens": 30, "stop": stop}
            whole = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
            with client.stream("POST", "/v1/completions", json=body | {"stream": True}) as stream:
                chunks = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
            assert "".join(c["choices"][0]["text"] for c in chunks) == whole, stop


def test_usage_counts_the_generated_ids(served_dir, app_factory):
    from fastapi.testclient import TestClient

    from slmkit.models import GenerationParams, load_model

    lm = load_model(str(served_dir / "tiny"), dtype="float32")
    prompts = ["The cat sat", "Stock prices rose"]
    expected = lm.generate_detailed(prompts, GenerationParams(max_new_tokens=9), batch_size=2)
    with TestClient(app_factory(served_dir)) as client:
        reply = client.post("/v1/completions", json={"model": "tiny", "prompt": prompts, "max_tokens": 9}).json()
    assert [c["text"] for c in reply["choices"]] == [g.text for g in expected]
    assert [c["finish_reason"] for c in reply["choices"]] == [g.finish_reason for g in expected]
    assert reply["usage"]["completion_tokens"] == sum(g.n_tokens for g in expected)


def test_classifiers_on_one_model_share_one_loaded_copy(served_dir, app_factory, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    served = tmp_path / "served"
    shutil.copytree(served_dir, served, symlinks=True)
    shutil.copytree(served / "clf" / "reviews", served / "clf" / "reviews2")
    app = app_factory(served)
    with TestClient(app) as client:
        for name in ("clf/reviews", "clf/reviews2"):
            response = client.post("/v1/classify", json={"model": name, "texts": ["great film"]})
            assert response.status_code == 200, response.text
    state = app.state.slmkit
    first, second = (state._objects[("classifier", str(served / "clf" / n))] for n in ("reviews", "reviews2"))
    assert first.cache is second.cache and len(first.cache.loaded_models()) == 1


def test_a_stream_that_waits_longer_than_a_poll_still_ends_with_done(served_dir, app_factory, monkeypatch):
    import json
    import time

    import torch
    from fastapi.testclient import TestClient

    from slmkit.testing import make_tokenizer

    tokenizer = make_tokenizer()

    class Slow:  # its first piece comes after many polls (a model thread busy with other work)
        spec = type("Spec", (), {"name": "stand-in"})
        tokenizer = make_tokenizer()

        def generate(self, prompts, params, batch_size=1):
            streamer = params.extra["streamer"]
            time.sleep(0.5)
            streamer.put(torch.tensor([tokenizer(prompts[0])["input_ids"]]))
            for token in tokenizer("late but whole", add_special_tokens=False)["input_ids"]:
                streamer.put(torch.tensor([token]))
            streamer.end()
            return ["late but whole"]

        def count_tokens(self, texts):
            return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    monkeypatch.setattr("slmkit.serve._routes_openai.STREAM_POLL_S", 0.02)
    app = app_factory(served_dir)
    app.state.slmkit._objects[("lm", str(served_dir / "tiny"))] = Slow()
    with TestClient(app) as client:
        body = {"model": "tiny", "prompt": "x", "max_tokens": 30, "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as stream:
            lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(json.loads(line[6:])["choices"][0]["text"] for line in lines[:-1])
    assert text == "late but whole"
