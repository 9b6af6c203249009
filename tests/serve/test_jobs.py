"""Job endpoints through FastAPI's TestClient: summarize, classify, quality, background jobs, the registry."""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest

from slmkit.testing import TOY_TEXTS

DIALOGUE = ("#Person1#: Hi, I'd like to return these shoes. They are too small.\n"
            "#Person2#: Do you have the receipt?\n#Person1#: Yes, here it is.")


def test_summarize_lead_and_prompted_and_fine_tuned(client):
    lead = client.post("/v1/summarize", json={"dialogues": [DIALOGUE], "method": "lead", "language": "en"})
    assert lead.status_code == 200, lead.text
    assert lead.json()["summaries"] == ["Hi, I'd like to return these shoes. They are too small. Do you have the "
                                        "receipt?"]
    body = {"dialogues": [DIALOGUE, DIALOGUE], "model": "tiny", "method": "zero-shot", "max_new_tokens": 6}
    prompted = client.post("/v1/summarize", json=body)
    assert prompted.status_code == 200, prompted.text
    out = prompted.json()
    assert out["language"] == "en" and len(out["summaries"]) == 2
    assert client.post("/v1/summarize", json=body).json()["summaries"] == out["summaries"]  # seeded
    tuned = client.post("/v1/summarize", json={"dialogues": [DIALOGUE], "model": "runs/ft", "max_new_tokens": 6})
    assert tuned.status_code == 200, tuned.text
    assert tuned.json()["model"] == "runs/ft"


def test_classify_labels_probabilities_and_words(client):
    response = client.post("/v1/classify", json={"model": "clf/reviews", "texts": ["A wonderful film.", "Awful."],
                                                 "explain": True})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2
    for result in results:
        assert result["label"] in ("positive", "negative")
        assert set(result["probabilities"]) == {"positive", "negative"}
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    words = results[0]["words"]
    assert [w["text"] for w in words] == ["A", "wonderful", "film", "."]
    assert all("A wonderful film."[w["start"]:w["end"]] == w["text"] for w in words)
    plain = client.post("/v1/classify", json={"model": "clf/reviews", "texts": ["Awful."]}).json()["results"][0]
    assert plain.get("words") is None and plain["probabilities"] == results[1]["probabilities"]


@pytest.fixture(scope="module")
def scorer_served(tmp_path_factory, app_factory):
    """A served folder holding a tiny quality scorer pair (trained in seconds)."""
    from fastapi.testclient import TestClient

    from slmkit.quality import QualityConfig, train_scorer
    from slmkit.train import ScratchConfig, TrainConfig

    root = tmp_path_factory.mktemp("served-quality")
    config = QualityConfig(route="scratch", scratch=ScratchConfig(vocab_size=400, hidden_size=32, num_layers=1,
                                                                  num_heads=2, intermediate_size=64),
                           training=TrainConfig(objective="documents", method="full", max_steps=2, batch_size=4,
                                                max_length=64, report_to="none", precision="fp32"), seed=0)
    train_scorer(TOY_TEXTS * 3, root / "scorers" / "toy", config, progress=False)
    with TestClient(app_factory(root), raise_server_exceptions=False) as test_client:
        yield test_client


def test_quality_score(scorer_served):
    response = scorer_served.post("/v1/quality/score", json={"model": "scorers/toy", "texts": TOY_TEXTS[:3]})
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert len(rows) == 3
    for row in rows:
        assert row["reject_reason"] is None
        assert row["S"] == pytest.approx(row["forward_loss"] - row["reverse_loss"], abs=1e-4)
    kinds = {e["name"]: e["kind"] for e in scorer_served.get("/v1/registry").json()["entries"]}
    assert kinds["scorers/toy"] == "scorer"


def test_background_summarize_job_with_progress_and_download(client):
    table = pd.DataFrame({"fname": [f"d{i}" for i in range(10)], "dialogue": [DIALOGUE] * 10})
    upload = {"file": ("dialogues.csv", table.to_csv(index=False).encode(), "text/csv")}
    started = client.post("/v1/jobs/summarize", files=upload, data={"method": "lead", "language": "en"})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["total"] == 10
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "done" and job["done"] == 10, job
    result = client.get(job["result_url"])
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(result.content))
    assert list(frame.columns) == ["fname", "summary"] and list(frame["fname"]) == list(table["fname"])
    assert any(j["id"] == job["id"] for j in client.get("/v1/jobs").json()["jobs"])


def test_background_job_rejects_bad_tables(client):
    bad = {"file": ("d.csv", b"id,text\n1,hello\n", "text/csv")}
    response = client.post("/v1/jobs/summarize", files=bad, data={"method": "lead"})
    assert response.status_code == 400 and "dialogue" in response.json()["error"]["message"]
    response = client.post("/v1/jobs/summarize", files={"file": ("d.exe", b"x", "application/octet-stream")})
    assert response.status_code == 400 and ".csv" in response.json()["error"]["message"]
    assert client.get("/v1/jobs/0123456789abcdef").status_code == 404
    assert client.get("/v1/jobs/..%2F..%2Fetc/result").status_code == 404


def test_registry_lists_artifacts_with_configs_metrics_and_history(client):
    entries = {e["name"]: e for e in client.get("/v1/registry").json()["entries"]}
    assert entries["runs/ft"]["kind"] == "run" and entries["runs/ft"]["metrics"]["train_loss"] == 2.5
    assert entries["clf/reviews"]["kind"] == "classifier"
    assert entries["clf/reviews"]["metrics"]["train"]["accuracy"] == 1.0
    assert entries["clf/reviews"]["config"]["classes"] == ["negative", "positive"]
    assert entries["tiny"]["kind"] == "model" and entries["gemma3-270m"]["kind"] == "builtin"
    assert "runs/ft/model" not in entries  # an artifact's inner folders are not listed on their own
    detail = client.get("/v1/registry/entry", params={"name": "runs/ft"}).json()
    assert [h["step"] for h in detail["history"]] == [1, 2, 3]
    assert client.get("/v1/registry/file", params={"name": "runs/ft", "file": "../../etc/passwd"}).status_code == 400
    assert client.get("/v1/registry/entry", params={"name": "../served0"}).status_code == 400


def test_web_page_and_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "slmkit" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/openapi.json").json()["paths"]["/v1/classify"]


def test_micro_batcher_merges_concurrent_requests():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from slmkit.serve._batching import MicroBatcher

    calls = []

    def double(items):
        time.sleep(0.02)
        calls.append(len(items))
        return [2 * x for x in items]

    async def main(max_items):
        batcher = MicroBatcher(ThreadPoolExecutor(1), wait_s=0.005, max_items=max_items)
        outs = await asyncio.gather(*(batcher.submit("k", [i, i + 100], double) for i in range(8)))
        return outs, batcher.stats.to_dict()

    outs, stats = asyncio.run(main(32))
    assert outs == [[2 * i, 2 * (i + 100)] for i in range(8)]  # each request gets its own outputs, in order
    assert stats["requests"]["k"] == 8 and stats["model_calls"]["k"] < 8
    calls.clear()
    outs_off, stats_off = asyncio.run(main(1))
    assert outs_off == outs and stats_off["model_calls"]["k"] == 8 and calls == [2] * 8


def test_concurrent_http_requests_share_model_calls(live_server):
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def post(i):
        body = json.dumps({"model": "clf/reviews", "texts": [f"text number {i}"]}).encode()
        request = urllib.request.Request(f"{live_server.url}/v1/classify", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status

    post(-1)  # load the classifier first
    before = json.load(urllib.request.urlopen(f"{live_server.url}/v1/stats"))["batching"]
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(post, range(32))) == [200] * 32
    after = json.load(urllib.request.urlopen(f"{live_server.url}/v1/stats"))["batching"]
    requests = after["requests"]["classify"] - before["requests"].get("classify", 0)
    calls = after["model_calls"]["classify"] - before["model_calls"].get("classify", 0)
    assert requests == 32 and calls < 32


def test_a_rejected_upload_leaves_no_job_folder_and_names_the_clients_file(served_dir, app_factory, tmp_path):
    from fastapi.testclient import TestClient

    jobs = tmp_path / "jobs"
    with TestClient(app_factory(served_dir, jobs_dir=str(jobs)), raise_server_exceptions=False) as client:
        bad = {"file": ("mine.csv", b"fname,dialogue,dialogue\n1,a,b\n", "text/csv")}
        response = client.post("/v1/jobs/summarize", files=bad, data={"method": "lead"})
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and "repeated" in message and "upload 'mine.csv'" in message
    assert str(jobs) not in message and not [p for p in jobs.rglob("*") if p.is_file()]


def test_jobs_outlive_a_restart_and_an_unfinished_one_resumes_from_its_last_chunk(served_dir, app_factory, tmp_path):
    import json
    import shutil

    from fastapi.testclient import TestClient

    def wait(client, job_id):
        deadline = time.monotonic() + 60
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return job

    jobs = tmp_path / "jobs"
    table = pd.DataFrame({"fname": [f"d{i}" for i in range(12)], "dialogue": [DIALOGUE] * 12})
    upload = {"file": ("dialogues.csv", table.to_csv(index=False).encode(), "text/csv")}
    with TestClient(app_factory(served_dir, jobs_dir=str(jobs))) as client:
        finished = client.post("/v1/jobs/summarize", files=upload, data={"method": "lead", "language": "en"}).json()
        assert wait(client, finished["id"])["status"] == "done"
    # A second job, as a server killed after its first chunk left it: job.json "running" at 8 of 12.
    killed = jobs / "0123456789abcdef"
    killed.mkdir()
    shutil.copy(jobs / finished["id"] / "input.csv", killed / "input.csv")
    record = json.loads((jobs / finished["id"] / "job.json").read_text())
    (killed / "job.json").write_text(json.dumps(record | {"id": killed.name, "status": "running", "done": 8}))
    (killed / "partial.json").write_text(json.dumps(["made before the kill"] * 8))
    with TestClient(app_factory(served_dir, jobs_dir=str(jobs))) as client:
        assert {j["id"] for j in client.get("/v1/jobs").json()["jobs"]} == {finished["id"], killed.name}
        assert client.get(f"/v1/jobs/{finished['id']}/result").status_code == 200  # still downloadable
        resumed = wait(client, killed.name)
        assert resumed["status"] == "done" and resumed["done"] == 12, resumed
        result = pd.read_csv(io.BytesIO(client.get(resumed["result_url"]).content))
    assert list(result["summary"][:8]) == ["made before the kill"] * 8  # kept, not made again
    assert result["summary"][8] != "made before the kill" and not (killed / "partial.json").exists()
