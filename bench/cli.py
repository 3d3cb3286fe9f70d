"""``python -m bench``: start each server on loopback, drive it at several concurrencies, print the tables.

Servers, in this order, each started fresh (its cold start measured) and killed afterwards:
``trivial`` (FastAPI returning a constant: the load generator's proof), ``service`` (this service, default
settings; its ``/v2`` infer route is driven too, and the same over gRPC unless ``--no-grpc``),
``fastapi-ort`` (FastAPI + onnxruntime, one request at a time), ``litserve`` (LitServe with its dynamic
batching, onnxruntime), ``naive-torch`` (FastAPI + torch eager); on request ``service-nobatch``
(LSTM_SERVICE_BATCHING=false) and any ``--service-variant``. Then the in-process ceiling. The server side
always runs on ``--server-cpus`` and the load generator on ``--client-cpus``. Text sets: each model's test
split, and the short news snippets (paragraphs of 5-60 words) on the news model."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench import ensemble, grpc_client, oip_client, report, scoring, soak
from bench.servers import RunningServer, ServerSpec, free_port, pinned, process_tree, python_command, running
from bench.texts import TextSample, latest_bundle, sample_texts, snippet_texts
from service.bundle import list_models

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ("review-sentiment-zh", "news-topic")
SERVERS = ("trivial", "service", "fastapi-ort", "litserve", "naive-torch")
OTHER_SERVERS = ("service-nobatch",)
SNIPPETS_MODEL = "news-topic"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cpus = (
        sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [-1]
    )  # Linux pins; others not
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument(
        "--models", help=f"comma-separated (default: {', '.join(DEFAULT_MODELS)}, else every model)"
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="which servers to run, comma-separated")
    parser.add_argument("--concurrency", default="1,8,64", help="closed-loop connections, comma-separated")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each step")
    parser.add_argument("--texts", type=int, default=2000, help="texts sampled from each model's test split")
    parser.add_argument("--texts-per-request", type=int, default=1, help="texts in each request body")
    parser.add_argument("--server-cpus", default=str(cpus[0]), help="CPUs for servers and the ceiling")
    parser.add_argument("--client-cpus", default=str(cpus[-1]), help="CPUs for the load generator")
    parser.add_argument(
        "--service-variant",
        action="append",
        default=[],
        metavar="NAME:K=V,...",
        help="an extra service run with these environment variables, e.g. wait0:LSTM_SERVICE_MAX_WAIT_MS=0",
    )
    parser.add_argument(
        "--service-command",
        default=f"{shlex.quote(sys.executable)} -m service",
        help="how to start the service (the bench appends: serve --model-store S --host H --port P)",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the in-process ceiling")
    parser.add_argument(
        "--no-grpc", action="store_true", help="skip the gRPC row (OIP v2 over gRPC, bench.grpc_client)"
    )
    parser.add_argument(
        "--scoring-rows",
        type=int,
        default=200_000,
        help="rows of the scoring section (bench.scoring); 0: skip",
    )
    parser.add_argument(
        "--no-snippets", action="store_true", help=f"skip the short news snippets on {SNIPPETS_MODEL}"
    )
    parser.add_argument(
        "--no-ensemble",
        action="store_true",
        help="skip an ensemble's cost per text beside one model's (bench.ensemble; needs torch)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=60.0,
        help="last, the service's memory under a mix of every route for this long (bench.soak; 0: skip)",
    )
    parser.add_argument("--out", type=Path, help="folder for logs and results (default: runs/bench/<time>)")
    return parser.parse_args(argv)


def _cpu_set(text: str) -> set[int]:
    return {int(cpu) for cpu in text.split(",") if cpu.strip() and int(cpu) >= 0}


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / ticks


def _server_specs(args: argparse.Namespace, store: Path) -> list[ServerSpec]:
    variants = {"service": {}, "service-nobatch": {"LSTM_SERVICE_BATCHING": "false"}}
    for variant in args.service_variant:
        name, _, assignments = variant.partition(":")
        variants[f"service-{name}"] = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    wanted = args.servers.split(",") + [f"service-{v.partition(':')[0]}" for v in args.service_variant]
    specs = []
    for name in wanted:
        port = free_port()
        if name == "trivial":
            command = python_command(
                "-m",
                "uvicorn",
                "bench.trivial_server:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            )
            specs.append(ServerSpec(name, command, port))
        elif name in variants:
            serve = ["serve", "--model-store", str(store), "--host", "127.0.0.1", "--port", str(port)]
            command = shlex.split(args.service_command) + serve
            environment = dict(variants[name])
            if name == "service" and not args.no_grpc:  # the gRPC row's port, served beside HTTP
                environment[grpc_client.GRPC_PORT_VARIABLE] = str(free_port())
            specs.append(ServerSpec(name, command, port, env=environment))
        elif name in ("naive-torch", "fastapi-ort", "litserve"):
            module = {
                "naive-torch": "bench.naive_torch_server",
                "fastapi-ort": "bench.ort_server",
                "litserve": "bench.litserve_server",
            }[name]
            command = python_command("-m", module, "--model-store", str(store), "--port", str(port))
            specs.append(ServerSpec(name, command, port))
        else:
            raise SystemExit(
                f"unknown server {name!r}; choose from {', '.join(SERVERS + OTHER_SERVERS)} "
                "or add --service-variant"
            )
    return specs


def _classify_once(port: int, body: bytes) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/classify", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _batch_sizes(port: int, model: str) -> dict[str, float]:
    """``lstm_service_batch_size`` for ``model``: its cumulative buckets (upper bound -> batches), ``sum``
    (texts) and ``count`` (batches)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("lstm_service_batch_size_") and f'model="{model}"' in line:
            labels, value = line.rsplit(" ", 1)
            kind = labels.split("{", 1)[0].rsplit("_", 1)[1]
            if kind == "bucket":
                key = labels.split('le="', 1)[1].split('"', 1)[0]
            elif kind in ("sum", "count"):
                key = kind
            else:  # _created
                continue
            buckets[key] = buckets.get(key, 0.0) + float(value)
    return buckets


def _drive(
    server: RunningServer,
    bodies_file: Path,
    concurrency: int,
    args: argparse.Namespace,
    client: tuple[str, ...] = ("-m", "bench.loadgen"),
    port: int | None = None,
) -> dict:
    """One closed-loop step from the client CPUs; adds the server's and client's CPU use to the result."""
    command = python_command(
        *client, "--port", str(port or server.spec.port), "--requests", str(bodies_file),
        "--concurrency", str(concurrency), "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--texts-per-request", str(args.texts_per_request),
    )  # fmt: skip
    pids = process_tree(server.process.pid)
    server_cpu, client_cpu = _cpu_seconds(pids), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    finished = subprocess.run(
        command,
        capture_output=True,
        timeout=args.warmup + args.duration + 90,
        preexec_fn=pinned(_cpu_set(args.client_cpus)),
        check=False,
    )
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{finished.stderr.decode(errors='replace')[-2000:]}")
    result = json.loads(finished.stdout)
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_seconds = (client_after.ru_utime - client_cpu.ru_utime) + (
        client_after.ru_stime - client_cpu.ru_stime
    )
    server_seconds = _cpu_seconds(pids) - server_cpu
    result["server_cpu_pct"] = 100 * server_seconds / wall
    # Robust to a busy machine: what the server got done per second of CPU it was given.
    texts = result["answered_ok_total"] * args.texts_per_request
    result["texts_per_cpu_s"] = texts / server_seconds if server_seconds > 0 else None
    result["client_cpu_pct"] = 100 * client_seconds / wall
    # An upper bound (it includes the client's start-up): the client's own cost per request.
    result["client_us_per_request"] = 1e6 * client_seconds / max(result["answered_ok_total"], 1)
    result["peak_rss_mb"] = server.memory_mb()["peak_rss_mb"]
    return result


def _run_server(
    spec: ServerSpec, samples: list[TextSample], files: dict[str, Path], args, out: Path
) -> tuple[dict, list[dict], dict]:
    """Start one server, check it answers, drive every model at every concurrency, stop it."""
    rows, answers = [], {}
    with running(spec, _cpu_set(args.server_cpus), out) as server:
        info = {
            "server": spec.name,
            "cold_start_s": server.cold_start_s,
            "rss_after_start_mb": server.per_process_rss_mb(),
        }
        print(
            f"{spec.name}: ready in {server.cold_start_s:.2f} s, RSS {info['rss_after_start_mb']} MB",
            flush=True,
        )
        for sample in samples[:1] if spec.name == "trivial" else samples:
            answers[sample.label] = [
                _classify_once(spec.port, body)["results"][0]["label"]
                for body in sample.request_bodies()[:20]
            ]
            for concurrency in args.concurrency_levels:
                row = {"server": spec.name, "model": sample.label, "concurrency": concurrency}
                before = _batch_sizes(spec.port, sample.model) if spec.name.startswith("service") else None
                row.update(_drive(server, files[sample.label], concurrency, args))
                if before is not None:  # the batches this step formed, from the service's own /metrics
                    after = _batch_sizes(spec.port, sample.model)
                    row["batch_sizes"] = {bound: after[bound] - before.get(bound, 0) for bound in after}
                rows.append(row)
                print(report.load_table([row]).splitlines()[-1], flush=True)
            # The same texts over the Open Inference Protocol, sent as tritonclient sends them.
            if spec.name == "service":
                for concurrency in args.concurrency_levels:
                    row = {"server": oip_client.ROW_NAME, "model": sample.label, "concurrency": concurrency}
                    row.update(
                        _drive(server, files[sample.label], concurrency, args, oip_client.LOADGEN_MODULE)
                    )
                    rows.append(row)
                    print(report.load_table([row]).splitlines()[-1], flush=True)
            # And over gRPC (the same process, its own port), as tritonclient.grpc sends them.
            if grpc_client.GRPC_PORT_VARIABLE in spec.env:
                grpc_port = int(spec.env[grpc_client.GRPC_PORT_VARIABLE])
                for concurrency in args.concurrency_levels:
                    row = {"server": grpc_client.ROW_NAME, "model": sample.label, "concurrency": concurrency}
                    module = grpc_client.LOADGEN_MODULE
                    row.update(_drive(server, files[sample.label], concurrency, args, module, grpc_port))
                    rows.append(row)
                    print(report.load_table([row]).splitlines()[-1], flush=True)
        memory = server.memory_mb()
        info["peak_rss_mb_per_process"] = [memory["largest_peak_rss_mb"]]
    return info, rows, answers


def _run_ceiling(store: Path, sample: TextSample, out: Path, args) -> dict:
    texts_file = out / f"texts-{sample.label.replace(' ', '-')}.json"
    texts_file.write_text(json.dumps(sample.texts, ensure_ascii=False), encoding="utf-8")
    command = python_command(
        "-m",
        "bench.ceiling",
        "--model-store",
        str(store),
        "--model",
        sample.model,
        "--texts",
        str(texts_file),
    )
    finished = subprocess.run(
        command, capture_output=True, timeout=300, preexec_fn=pinned(_cpu_set(args.server_cpus)), check=False
    )
    if finished.returncode != 0:
        raise RuntimeError(f"the ceiling run failed:\n{finished.stderr.decode(errors='replace')[-2000:]}")
    return {**json.loads(finished.stdout), "model": sample.label}


def _setup(args, samples: list[TextSample], argv: list[str] | None) -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("onnxruntime", "torch", "fastapi", "uvicorn")
    )
    return {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cpus_online": os.cpu_count(),
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
        "duration_s": args.duration,
        "texts_per_request": args.texts_per_request,
        "warmup_s": args.warmup,
        "text_sources": [f"{sample.label}: {sample.source}" for sample in samples],
        "versions": f"Python {platform.python_version()}, {versions}",
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _agreement_notes(answers: dict[str, dict[str, list[str]]]) -> list[str]:
    notes = []
    for model, labels in answers.get("service", {}).items():
        naive = answers.get("naive-torch", {}).get(model)
        if naive:
            same = sum(a == b for a, b in zip(labels, naive, strict=False))
            notes.append(
                f"{model}: the service and naive-torch chose the same label for {same}/{len(labels)} "
                "sample texts (same weights)"
            )
    return notes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM must unwind like Ctrl-C, so every server's `finally` kills its process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.concurrency_levels = [int(level) for level in args.concurrency.split(",")]
    store = args.model_store.resolve()
    available = list_models(store)
    names = (
        args.models.split(",")
        if args.models
        else [n for n in DEFAULT_MODELS if n in available] or sorted(available)
    )
    if not names:
        raise SystemExit(f"no model in {store}; train the defaults (`make models`) or pass --model-store")
    out = args.out or REPO / "runs" / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    samples = [sample_texts(latest_bundle(store, name), args.texts) for name in names]
    if SNIPPETS_MODEL in names and not args.no_snippets:
        snippets = snippet_texts(latest_bundle(store, SNIPPETS_MODEL), args.texts)
        if snippets is not None:
            samples.append(snippets)
    files = {}
    for sample in samples:
        files[sample.label] = out / f"bodies-{sample.label.replace(' ', '-')}.jsonl"
        files[sample.label].write_bytes(b"\n".join(sample.request_bodies(args.texts_per_request)) + b"\n")
    results = {"setup": _setup(args, samples, argv), "models": names, "concurrency": args.concurrency_levels}
    results.update(load=[], servers=[], ceilings=[])
    answers, failures = {}, []
    for spec in _server_specs(args, store):
        try:
            info, rows, answers[spec.name] = _run_server(spec, samples, files, args, out)
        except (
            RuntimeError,
            OSError,
            ValueError,
            KeyError,
            subprocess.TimeoutExpired,
        ) as error:  # the others still run
            print(f"{spec.name} FAILED: {error}", file=sys.stderr, flush=True)
            failures.append(f"{spec.name} failed: {str(error).splitlines()[0]} (log: {out / spec.name}.log)")
            continue
        results["servers"].append(info)
        results["load"] += rows
    if not args.no_ceiling:
        for sample in samples:
            results["ceilings"].append(_run_ceiling(store, sample, out, args))
    if args.soak_seconds > 0 and "service" in args.servers.split(","):
        sampler, summary = soak.run(
            store, out, args.soak_seconds, service_command=args.service_command, models=tuple(names)
        )
        results["soak"] = {"duration_s": args.soak_seconds, "table": soak.report(sampler, summary, 150.0)}
    results["setup"]["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    load = results["load"]
    results["notes"] = _agreement_notes(answers) + oip_client.notes(load) + grpc_client.notes(load) + failures
    if _cpu_set(args.server_cpus) & _cpu_set(args.client_cpus):
        results["notes"].append("server and load generator shared CPUs: the figures understate the server")
    markdown = report.markdown_report(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (out / "results.md").write_text(markdown)
    print("\n" + markdown)
    if args.scoring_rows > 0 and SNIPPETS_MODEL in names:  # a whole corpus: bench.scoring, every way
        scored = scoring.run(store, SNIPPETS_MODEL, args.scoring_rows, os.cpu_count() or 1, out,
                             {"ray", "spark", "http"}, args.duration)  # fmt: skip
        (out / "scoring.json").write_text(json.dumps(scored, indent=1))
        print("\n## Scoring a corpus\n\n" + scoring.table(scored, args.scoring_rows))
    if not args.no_ensemble:  # an ensemble of seeds in one graph against one model (trains two briefly)
        try:
            import torch  # noqa: F401  # the train extra
        except ImportError:
            print("\n## An ensemble's cost per text\n\nskipped: training needs torch (make train-setup)")
        else:
            ensembles = ensemble.run()
            (out / "ensemble.json").write_text(json.dumps(ensembles, indent=1))
            print("\n## An ensemble's cost per text\n\n" + ensemble.table(ensembles))
    print(f"(logs, results.json and results.md in {out})")
