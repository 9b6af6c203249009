"""Fixtures for the serve tests: a served folder of tiny random-weight artifacts, the app, a live server."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

DIALOGUE = ("#Person1#: Hi, I'd like to return these shoes. They are too small.\n"
            "#Person2#: Do you have the receipt?\n#Person1#: Yes, here it is.")


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory, tiny_causal_dir, tiny_encoder_dir):
    """tiny/ (causal model), enc/ (encoder), runs/ft (a finished summarization run), clf/reviews (classifier)."""
    import pandas as pd

    from slmkit.classify import EmbeddingCache, LMClassifier
    from slmkit.data import write_json

    root = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_causal_dir, root / "tiny")
    shutil.copytree(tiny_encoder_dir, root / "enc")
    run = root / "runs" / "ft"
    shutil.copytree(tiny_causal_dir, run / "model")
    write_json(run / "slmkit_run.json", {
        "status": "done", "task": "summarize", "method": "full", "kind": "causal",
        "task_info": {"prompt": "slmkit.summarize.build_prompt", "language": "en", "decode": {"max_new_tokens": 8}},
        "metrics": {"train_loss": 2.5, "final_eval": {"eval_loss": 2.7}}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.6, "eval_loss": 2.9}, {"step": 3, "loss": 2.4})))
    frame = pd.read_csv(__import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "data"
                        / "sentences_en.csv")
    clf = LMClassifier(str(root / "tiny"), template="Review: {text}\nAnswer:", pooling="mean", layers=(-1,), cv=3,
                       cache=EmbeddingCache(None), random_state=0).fit(frame["text"].tolist(), frame["label"])
    clf.save(root / "clf" / "reviews")
    write_json(root / "clf" / "reviews" / "metrics.json", {"train": {"accuracy": 1.0}})
    (root / "outside-secret.txt").write_text("secret")
    return root


def make_app(served_dir, **options):
    from slmkit.serve import ServeConfig, create_app

    return create_app(ServeConfig(served_dir=str(served_dir), default_model="tiny", max_new_tokens=32, **options))


@pytest.fixture(scope="session")
def client(served_dir):
    from fastapi.testclient import TestClient

    with TestClient(make_app(served_dir, max_request_mb=1.0, max_batch=16, max_text_chars=5000),
                    raise_server_exceptions=False) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn on 127.0.0.1 at a free port, in a thread of the test process."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def app_factory():
    """`app_factory(served_dir, **ServeConfig fields)` -> a fresh app (own state, own limits)."""
    return make_app


@pytest.fixture(scope="session")
def server_factory():
    """`with server_factory(app) as server:` runs uvicorn on 127.0.0.1 at a free port; `server.url`."""
    return LiveServer


@pytest.fixture(scope="session")
def live_server(served_dir):
    with LiveServer(make_app(served_dir, max_request_mb=1.0)) as server:
        yield server
