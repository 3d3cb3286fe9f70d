"""The benchmark's own parts: the naive server really runs the bundle's weights, the load generator
counts what a keep-alive server answers, and the report renders its tables and verdicts."""

from __future__ import annotations

import asyncio

import pytest

from bench import loadgen, report, soak
from bench.texts import sample_texts
from service.bundle import load_bundle

pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["tiny-en", "tiny-zh"])
def test_naive_torch_model_rebuilt_from_onnx_reproduces_the_golden_logits(tiny_store, name):
    from bench.naive_torch_server import GOLDEN_TOLERANCE, TorchModel

    model = TorchModel(load_bundle(tiny_store / name / "1"))
    assert model.worst_golden_difference <= GOLDEN_TOLERANCE


def test_naive_torch_model_handles_stacked_unidirectional_last_pooling(tiny_bundle, tmp_path):
    from bench.naive_torch_server import GOLDEN_TOLERANCE, TorchModel

    folder = tiny_bundle(
        tmp_path, "tiny-stacked", num_layers=2, bidirectional=False, pooling="last", epochs=2
    )
    assert TorchModel(load_bundle(folder)).worst_golden_difference <= GOLDEN_TOLERANCE


def test_loadgen_counts_every_answer_of_a_keep_alive_server():
    body = b'{"ok":true}'
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    seen_bodies = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            seen_bodies.append(await reader.readexactly(length))
            writer.write(answer)
        writer.close()

    async def scenario() -> loadgen.Tally:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        requests = loadgen.encode_requests("127.0.0.1", "/classify", [b'{"text":"a"}', b'{"text":"bb"}'])
        async with server:
            return await loadgen.drive("127.0.0.1", port, requests, concurrency=4, duration=0.3, warmup=0.05)

    tally = asyncio.run(scenario())
    summary = loadgen.summarize(tally, 0.3, texts_per_request=1)
    assert summary["ok"] > 0 and summary["errors"] == 0 and summary["statuses"] == {"200": summary["ok"]}
    assert summary["p50_ms"] <= summary["p99_ms"]
    assert set(seen_bodies) == {b'{"text":"a"}', b'{"text":"bb"}'}


def test_report_states_each_target_with_its_verdict():
    def row(server, concurrency, texts_per_s, p50=1.0, p99=50.0):
        return {
            "server": server,
            "model": "m",
            "concurrency": concurrency,
            "requests_per_s": texts_per_s,
            "texts_per_s": texts_per_s,
            "p50_ms": p50,
            "p90_ms": p50,
            "p99_ms": p99,
            "errors": 0,
            "server_cpu_pct": 100.0,
            "client_cpu_pct": 20.0,
            "client_us_per_request": 50.0,
            "peak_rss_mb": 100.0,
        }

    results = {
        "models": ["m"],
        "concurrency": [1, 64],
        "load": [
            row("trivial", 64, 6000),
            row("service", 1, 900, p50=1.2),
            row("service", 64, 1500),
            row("naive-torch", 64, 500),
        ],
        "ceilings": [
            {
                "model": "m",
                "rows": [
                    {"batch_size": 1, "texts_per_s": 1800, "call_p50_ms": 0.5},
                    {"batch_size": 8, "texts_per_s": 2500, "call_p50_ms": 3.0},
                ],
            }
        ],
        "servers": [
            {
                "server": "service",
                "cold_start_s": 1.5,
                "rss_after_start_mb": [90.0],
                "peak_rss_mb_per_process": [110.0],
            }
        ],
    }
    lines = report.ratios(results)
    assert any("**0.60×** the in-process ceiling" in line and "**missed**" in line for line in lines)
    assert any("service ÷ naive-torch at C=64 = **3.00×** — target ≥ 3×: met" in line for line in lines)
    assert any("cold start 1.50 s — target < 3 s: met" in line for line in lines)
    assert any("drive about 20,000 req/s" in line and "13× below" in line for line in lines)
    table = report.load_table(results["load"])
    assert table.splitlines()[0].startswith("| server") and len(table.splitlines()) == 2 + len(
        results["load"]
    )


def test_report_without_the_ceiling_still_compares_the_servers():
    def row(server, texts_per_s):
        figures = {"requests_per_s": texts_per_s, "texts_per_s": texts_per_s, "p99_ms": 3.0, "errors": 0}
        return {"server": server, "model": "m", "concurrency": 64, "p50_ms": 1.0, "p90_ms": 2.0, **figures}

    results = {
        "setup": {
            "when": "now",
            "cpu": "cpu",
            "cpus_online": 2,
            "loadavg_before": "1",
            "loadavg_after": "1",
            "server_cpus": "0",
            "client_cpus": "1",
            "texts_per_request": 1,
            "duration_s": 1,
            "warmup_s": 1,
            "text_sources": [],
            "versions": "",
            "command": "python -m bench --no-ceiling",
        },  # fmt: skip
        "models": ["m"],
        "concurrency": [64],
        "load": [row("service", 1200), row("litserve", 400), row("naive-torch", 300)],
        "ceilings": [],
        "servers": [],
    }
    text = report.markdown_report(results)  # --no-ceiling once crashed here
    assert "(not measured: --no-ceiling)" in text
    assert "m: service ÷ litserve at C=64 = **3.00×** — target ≥ 2×: met" in text
    assert "m: service ÷ naive-torch at C=64 = **4.00×** — target ≥ 3×: met" in text


def test_report_reads_the_batch_sizes_the_service_formed_at_the_highest_concurrency():
    buckets = {"1.0": 10, "2.0": 20, "4.0": 50, "8.0": 100, "16.0": 180, "32.0": 200, "+Inf": 200}
    rows = [
        {
            "server": "service",
            "model": "m",
            "concurrency": 64,
            "batch_sizes": {**buckets, "sum": 2100, "count": 200},
        },
        {
            "server": "service",
            "model": "m",
            "concurrency": 1,
            "batch_sizes": {"1.0": 5, "+Inf": 5, "count": 5},
        },
    ]
    assert report.batch_size_lines(rows) == [
        "m: batches the service formed at C=64 (200 batches, 10.5 texts per batch on average): "
        "1: 5 %, 2: 5 %, 3-4: 15 %, 5-8: 25 %, 9-16: 40 %, 17-32: 10 %"
    ]


def test_loadgen_reads_chunked_answers_to_their_last_chunk():
    """Streamed answers (/embed, /hidden-states) come chunked, without Content-Length."""
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    complete = head + b'5\r\n{"a":\r\n3\r\n[1]\r\n1\r\n}\r\n0\r\n\r\n'
    assert loadgen._body_end(complete + b"HTTP/1.1 200", complete.find(b"\r\n\r\n")) == len(complete)
    for cut in (len(head), len(complete) - 3):  # no chunk yet; all but the end of the last chunk
        assert loadgen._body_end(complete[:cut], complete.find(b"\r\n\r\n")) == -1
    with pytest.raises(ValueError, match="neither Content-Length nor a chunked body"):
        loadgen._body_end(b"HTTP/1.1 200 OK\r\n\r\n", 15)


def test_soak_mix_has_every_route_in_its_share(tiny_store):
    samples = [sample_texts(load_bundle(tiny_store / name / "1"), 20) for name in ("tiny-en", "tiny-zh")]
    requests = soak.mixed_requests(samples, {route for route, _ in soak.MIX}, total=1000)
    paths = [request.split(b" ", 2)[1].decode() for request in requests]
    for route, share in soak.MIX:
        assert paths.count(route) == round(1000 * share)
    only = soak.mixed_requests(samples, {"/tokenize"}, total=100)
    assert all(request.startswith(b"POST /tokenize ") for request in only) and len(only) == 100


@pytest.mark.e2e
def test_soak_drives_a_real_server_on_every_route_and_samples_its_memory(tiny_store, tmp_path):
    sampler, summary = soak.run(tiny_store, tmp_path, 2.0, clients=4, texts=20, models=("tiny-en", "tiny-zh"))
    assert summary["errors"] == 0 and summary["ok"] > 20
    workers = sampler.workers()
    assert len(workers) == 1  # one worker: the supervisor-less single process
    (points,) = workers.values()
    assert len(points) >= 2 and all(rss > 60 and 0 < anonymous < rss for _, rss, anonymous in points)
    table = soak.report(sampler, summary, limit_mb=10_000)
    assert "| 1 |" in table and "| yes |" in table
    assert soak.report(sampler, summary, limit_mb=1).count("| NO |") == 1


def test_the_scoring_bench_skips_a_way_whose_extra_is_missing_and_says_how_to_add_it(monkeypatch, capsys):
    from bench import scoring

    extras = {"ray": ("no_such_module_here", "pip install -e '.[ray]'"), "spark": ("json", "unused")}
    monkeypatch.setattr(scoring, "EXTRAS", extras)

    assert scoring.installed_ways({"ray", "spark", "http"}) == {"spark", "http"}
    said = capsys.readouterr().err
    assert "skipping ray: no_such_module_here is not installed (pip install -e '.[ray]')" in said
    assert "spark" not in said
