"""Memory under mixed load: every worker's resident memory while clients use every text route at once.

``python -m bench.soak`` (and ``python -m bench`` as its last step, for ``--soak-seconds``) starts the
service with ``--workers`` workers (default 1, which then takes all the traffic) and the default models,
then drives it with ``--clients`` closed-loop connections for ``--duration`` seconds with this mix of
requests: 60 % ``/classify`` of 1–8 texts (either model), 15 % ``/tokenize``, 15 % ``/embed`` of a text
with 5 nearest neighbours, 10 % ``/hidden-states``. It samples each worker's RSS every second and prints,
per worker, the RSS when ready, the peak, the RSS at the end, when the peak was first reached and the RSS
every 30 s (a peak reached early and held is a working set; one still climbing at the end is a leak).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import drive, encode_requests, summarize
from bench.servers import ServerSpec, free_port, process_tree, running
from bench.texts import TextSample, latest_bundle, sample_texts

REPO = Path(__file__).resolve().parent.parent
MODELS = ("review-sentiment-zh", "news-topic")
# (route, share of requests)
MIX = (("/classify", 0.60), ("/tokenize", 0.15), ("/embed", 0.15), ("/hidden-states", 0.10))


def _bodies(route: str, samples: list[TextSample], count: int, rng: random.Random) -> list[bytes]:
    bodies = []
    for _ in range(count):
        sample = rng.choice(samples)
        body: dict[str, object] = {"model": sample.model}
        if route == "/classify":
            body["texts"] = rng.sample(sample.texts, rng.randint(1, 8))
        else:
            body["text"] = rng.choice(sample.texts)
        if route == "/embed":
            body["neighbors"] = 5
        bodies.append(json.dumps(body, ensure_ascii=False).encode())
    return bodies


def mixed_requests(
    samples: list[TextSample], routes: set[str], total: int = 4000, seed: int = 13
) -> list[bytes]:
    """``total`` whole HTTP requests to ``routes`` in the proportions of :data:`MIX`, shuffled (seeded)."""
    rng = random.Random(seed)
    mix = [(route, share) for route, share in MIX if route in routes]
    total_share = sum(share for _, share in mix)
    requests: list[bytes] = []
    for route, share in ((route, share / total_share) for route, share in mix):
        requests += encode_requests("127.0.0.1", route, _bodies(route, samples, round(total * share), rng))
    rng.shuffle(requests)
    return requests


@dataclass
class RssSampler:
    """Each worker's RSS and its anonymous part in MB, sampled every ``interval`` seconds on a thread.

    RSS also counts the pages of the libraries' files mapped in (onnxruntime's alone is about 20 MB): the
    workers share those, and how many are mapped depends on what the page cache holds (a fresh install maps
    about 10 MB more than one whose files were partly evicted). The anonymous part is the worker's own."""

    root: int
    interval: float = 1.0
    series: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self, started: float) -> None:
        for pid in process_tree(self.root):  # the supervisor and its workers, or the one process
            rss, anonymous = _status_mb(pid, "VmRSS"), _status_mb(pid, "RssAnon")
            if rss:
                self.series.setdefault(pid, []).append((time.monotonic() - started, rss, anonymous))

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self._sample(started)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def workers(self, min_mb: float = 60.0) -> dict[int, list[tuple[float, float, float]]]:
        """The serving processes: the supervisor and its resource tracker are small helpers, not workers."""
        return {pid: points for pid, points in self.series.items() if max(p[1] for p in points) >= min_mb}


def _status_mb(pid: int, key: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _every(points: list[tuple[float, float, float]], step: float) -> str:
    """The RSS of the first sample at or after each multiple of ``step`` seconds."""
    picked, due = [], 0.0
    for at, rss, _ in points:
        if at >= due:
            picked.append(f"{rss:.0f}")
            due += step
    return " ".join(picked)


def report(sampler: RssSampler, summary: dict, limit_mb: float) -> str:
    lines = [
        "| worker | RSS when ready | peak RSS | RSS at the end | peak first reached | under "
        f"{limit_mb:.0f} MB | anonymous when ready / at peak | RSS every 30 s (MB) |",
        "| --- | --: | --: | --: | --: | --- | --: | --- |",
    ]
    for index, (_, points) in enumerate(sorted(sampler.workers().items()), start=1):
        peak = max(point[1] for point in points)
        first_peak = next(at for at, rss, _ in points if rss == peak)
        anonymous_peak = max(point[2] for point in points)
        lines.append(
            f"| {index} | {points[0][1]:.0f} MB | {peak:.0f} MB | {points[-1][1]:.0f} MB | "
            f"{first_peak:.0f} s | {'yes' if peak < limit_mb else 'NO'} | "
            f"{points[0][2]:.0f} / {anonymous_peak:.0f} MB | {_every(points, 30.0)} |"
        )
    lines.append("")
    lines.append(
        f"{summary['requests']:,} answers in the window, {summary['errors']} errors, statuses "
        f"{summary['statuses']}, {summary['requests_per_s']:.0f} requests/s"
    )
    return "\n".join(lines)


def run(
    store: Path,
    out: Path,
    duration: float,
    *,
    workers: int = 1,
    clients: int = 12,
    routes: set[str] | None = None,
    texts: int = 500,
    service_command: str = f"{shlex.quote(sys.executable)} -m service",
    models: tuple[str, ...] = MODELS,
) -> tuple[RssSampler, dict]:
    """Start the service, drive the mix for ``duration`` seconds while sampling RSS, stop it."""
    samples = [sample_texts(latest_bundle(store, name), texts) for name in models]
    requests = mixed_requests(samples, routes or {route for route, _ in MIX})
    port = free_port()
    command = [
        *shlex.split(service_command),
        *("serve", "--model-store", str(store), "--port", str(port), "--workers", str(workers)),
    ]
    with running(ServerSpec("service-soak", command, port), None, out) as server:
        sampler = RssSampler(server.process.pid)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        tally = asyncio.run(drive("127.0.0.1", port, requests, clients, duration, 0.0))
        sampler.stop()
        thread.join()
    return sampler, summarize(tally, duration, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--workers", type=int, default=1, help="1: one worker takes all the traffic")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--duration", type=float, default=240.0, help="seconds of load")
    parser.add_argument("--limit-mb", type=float, default=150.0, help="the per-worker budget to report")
    parser.add_argument(
        "--routes",
        default=",".join(route for route, _ in MIX),
        help="only these routes of the mix, comma-separated (to find which one costs the memory)",
    )
    parser.add_argument("--texts", type=int, default=500, help="texts sampled from each model's test split")
    parser.add_argument(
        "--service-command",
        default=f"{shlex.quote(sys.executable)} -m service",
        help="how to start the service (the soak appends: serve --model-store S --port P --workers N)",
    )
    parser.add_argument("--out", type=Path, help="folder for the server's log (default: runs/soak/<time>)")
    args = parser.parse_args(argv)
    routes = set(args.routes.split(","))
    unknown = routes - {route for route, _ in MIX}
    if unknown:
        parser.error(f"unknown routes {sorted(unknown)}; the mix has {[route for route, _ in MIX]}")
    out = args.out or REPO / "runs" / "soak" / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    sampler, summary = run(
        args.model_store,
        out,
        args.duration,
        workers=args.workers,
        clients=args.clients,
        routes=routes,
        texts=args.texts,
        service_command=args.service_command,
    )
    text = report(sampler, summary, args.limit_mb)
    (out / "soak.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
