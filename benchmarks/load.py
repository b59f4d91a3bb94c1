"""Load benchmark of the HTTP service, with the bare model measured in the same run.

Starts `python -m serving` as a subprocess on loopback (newest release under models/releases,
or --models-dir) and measures, each scenario bounded in time and in requests:

- single-message requests from 1, 16 and 64 closed-loop clients (each sends its next request
  when the answer arrives);
- a fixed request rate (open loop; latency counted from the scheduled send time, so a stall
  is not hidden by the generator waiting for it);
- 32-message requests;
- the same with batching off (a second server with QUNGUARD_MAX_BATCH=1);
- overload: 500 closed-loop clients; 503s are counted (a client pauses 50 ms after one, as a
  bot honouring Retry-After would, only shorter) and every accepted answer is checked;
- the bare ONNX model (tokenise + run) and the in-process pipeline (analyse + model + fusion)
  at batch 32, so the ratios are measured side by side on the same machine.

The default client speaks HTTP/1.1 over raw asyncio keep-alive connections: on a 2-core
machine the load generator shares the CPU with the server, and httpx costs several times more
CPU per request (`--client httpx` measures that; the table reports the generator's CPU per
request).

    .venv/bin/python -m benchmarks.load --out benchmarks/results/load.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.arguments import at_least_one, more_than_zero
from models.paths import DATA_DIR, REPO_ROOT
from models.release import RELEASES_DIR, list_releases

API_KEY = "bench-key"
HOST = "127.0.0.1"
OVERLOAD_PAUSE_S = 0.05

FALLBACK_TEXTS = [
    "明天上午九点开会, 大家准时",
    "收到, 谢谢老师",
    "今晚吃什么呀",
    "小区明天停水, 大家提前接水",
    "加我微信领取福利, 兼职日结",
    "代购面膜, 需要的私聊我 vx: abc12345",
    "帮我砍一刀, 拼多多助力, 谢谢",
    "快递到了, 取件码 6-2-3031",
    "周末有人去爬山吗? 早上七点小区门口集合",
    "这个价格太贵了吧, 上次才 89 块",
]


# ----------------------------------------------------------------------------- messages


def load_texts(limit: int = 3000, seed: int = 0) -> list[str]:
    """A realistic mix: the project's hand-written corpus (mostly 5 to 60 characters)."""
    texts: list[str] = []
    for path in sorted((DATA_DIR / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                text = json.loads(line).get("text")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(text, str) and text:
                texts.append(text)
    if len(texts) < 100:
        texts = FALLBACK_TEXTS * 10
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def payloads(texts: list[str], per_request: int, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        messages = [
            {"id": f"m{i}-{j}", "text": texts[(i * per_request + j) % len(texts)]}
            for j in range(per_request)
        ]
        out.append(json.dumps({"messages": messages}, ensure_ascii=False).encode("utf-8"))
    return out


# ----------------------------------------------------------------------------- clients


class RawConnection:
    """One HTTP/1.1 keep-alive connection; POSTs to /v1/classify and reads the answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = (
            f"POST /v1/classify HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        length = int(lower[at + 15 : lower.find(b"\r\n", at)]) if at >= 0 else 0
        data = await self.reader.readexactly(length)
        if b"connection: close" in lower:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


class HttpxConnection:
    """The same through httpx (one AsyncClient per server), for comparing client CPU cost."""

    clients: dict[int, Any] = {}

    def __init__(self, port: int) -> None:
        import httpx

        if port not in HttpxConnection.clients:
            HttpxConnection.clients[port] = httpx.AsyncClient(
                base_url=f"http://{HOST}:{port}",
                headers={"Authorization": f"Bearer {API_KEY}"},
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
                timeout=60,
            )
        self.client = HttpxConnection.clients[port]

    async def open(self) -> None:
        return None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self.client.post(
            "/v1/classify", content=body, headers={"Content-Type": "application/json"}
        )
        return response.status_code, response.content

    async def close(self) -> None:
        return None


Connection = RawConnection | HttpxConnection


# ----------------------------------------------------------------------------- measuring


@dataclass
class Outcome:
    """One scenario's measurements."""

    name: str
    clients: str
    per_request: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    rejected_latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def msgs_per_s(self) -> float:
        return self.ok * self.per_request / self.seconds if self.seconds else 0.0

    def row(self) -> list[str]:
        requests = sum(self.statuses.values())
        cpu = f"{self.client_cpu / requests * 1e6:.0f}" if requests else "-"
        server = f"{self.server_cpu / max(1, self.ok * self.per_request) * 1e6:.0f}"
        return [
            self.name,
            self.clients,
            str(self.per_request),
            str(requests),
            f"{self.msgs_per_s:,.0f}",
            _ms(percentile(self.latencies, 50)),
            _ms(percentile(self.latencies, 99)),
            str(self.statuses[503]),
            _ms(percentile(self.rejected_latencies, 99)) if self.rejected_latencies else "-",
            str(len(self.failures)),
            server,
            cpu,
        ]


HEADER = [
    "scenario",
    "clients",
    "msgs/req",
    "requests",
    "msgs/s",
    "p50 ms",
    "p99 ms",
    "503s",
    "503 p99 ms",
    "failed",
    "server CPU µs/msg",
    "client CPU µs/req",
]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def check_answer(status: int, data: bytes, per_request: int) -> str | None:
    """Why an answer is wrong, or None. 503 (overloaded) is an answer, not a failure."""
    if status == 503:
        return None
    if status != 200:
        return f"status {status}: {data[:200]!r}"
    try:
        results = json.loads(data)["results"]
    except (ValueError, KeyError, TypeError):
        return f"unreadable body {data[:200]!r}"
    if len(results) != per_request:
        return f"{len(results)} results for {per_request} messages"
    return None


async def closed_loop(
    conns: list[Connection],
    bodies: list[bytes],
    per_request: int,
    duration: float,
    max_requests: int,
    outcome: Outcome,
    warmup: float = 0.5,
) -> None:
    """Each connection sends its next request when its answer has arrived."""
    clock = time.perf_counter  # uvloop's loop.time() has millisecond resolution
    cycle = _cycle(bodies)
    begin = clock() + warmup
    end = begin + duration
    sent = 0

    async def client(conn: Connection) -> None:
        nonlocal sent
        while clock() < end and sent < max_requests:
            body = next(cycle)
            started = clock()
            try:
                status, data = await conn.post(body)
            except (OSError, asyncio.IncompleteReadError) as exc:
                status, data = 0, repr(exc).encode()
                await conn.close()
            finished = clock()
            if started < begin:
                continue
            sent += 1
            outcome.statuses[status] += 1
            problem = check_answer(status, data, per_request) if status else data.decode()
            if problem:
                outcome.failures.append(problem)
            elif status == 503:
                outcome.rejected_latencies.append(finished - started)
                await asyncio.sleep(OVERLOAD_PAUSE_S)
            else:
                outcome.latencies.append(finished - started)

    await asyncio.gather(*(client(c) for c in conns))
    outcome.seconds = clock() - begin


async def open_loop(
    pool: list[Connection],
    new_connection: Callable[[], Connection],
    bodies: list[bytes],
    rate: float,
    duration: float,
    outcome: Outcome,
) -> None:
    """Requests at a fixed rate whatever the answers do; latency from the scheduled time."""
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    cycle = _cycle(bodies)
    idle = list(pool)
    total = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []

    async def one(scheduled: float) -> None:
        conn = idle.pop() if idle else new_connection()
        try:
            status, data = await conn.post(next(cycle))
        except (OSError, asyncio.IncompleteReadError) as exc:
            outcome.failures.append(repr(exc))
            await conn.close()
            return
        outcome.statuses[status] += 1
        problem = check_answer(status, data, 1)
        if problem:
            outcome.failures.append(problem)
        elif status == 200:
            outcome.latencies.append(clock() - scheduled)
        idle.append(conn)

    start = clock() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    outcome.seconds = clock() - start
    pool[:] = idle


def _cycle(items: list[bytes]) -> Iterator[bytes]:
    while True:
        yield from items


# ----------------------------------------------------------------------------- server


class Server:
    """`python -m serving` in a subprocess on a free loopback port."""

    def __init__(self, models_dir: Path, env: dict[str, str], log_dir: Path) -> None:
        self.port = _free_port()
        self.models_dir = models_dir
        self.env = {
            **os.environ,
            "QUNGUARD_API_KEYS": API_KEY,
            "QUNGUARD_LOG_LEVEL": "warning",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
            **env,
        }
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "serving",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--models-dir",
            str(self.models_dir),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError as exc:  # 503 while loading; the reason when failed
                reason = json.loads(exc.read() or b"{}").get("error", {}).get("message", "")
                if reason.startswith("no model"):
                    self.__exit__()
                    raise RuntimeError(reason) from exc
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("server not ready after 180 s")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (Linux /proc)."""
        assert self.process is not None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- scenarios


@dataclass
class Plan:
    duration: float
    max_requests: int
    rate: float
    overload_clients: int
    batch_clients: int
    client: str


async def run_server_scenarios(
    server: Server, plan: Plan, texts: list[str], label: str, full: bool
) -> list[Outcome]:
    single = payloads(texts, 1, 2000)
    batch32 = payloads(texts, 32, 200)
    factory: Callable[[], Connection] = (
        (lambda: RawConnection(server.port))
        if plan.client == "raw"
        else (lambda: HttpxConnection(server.port))
    )
    outcomes: list[Outcome] = []

    async def measure(outcome: Outcome, run: Callable[[], Awaitable[None]]) -> None:
        cpu, server_cpu = time.process_time(), server.cpu_seconds()
        await run()
        outcome.client_cpu = time.process_time() - cpu
        outcome.server_cpu = server.cpu_seconds() - server_cpu
        outcomes.append(outcome)
        print(" | ".join(outcome.row()), file=sys.stderr)

    async def closed(name: str, clients: int, bodies: list[bytes], per: int) -> None:
        conns = [factory() for _ in range(clients)]
        await _open_all(conns)
        outcome = Outcome(f"{name}{label}", str(clients), per)
        await measure(
            outcome,
            lambda: closed_loop(conns, bodies, per, plan.duration, plan.max_requests, outcome),
        )
        await asyncio.gather(*(c.close() for c in conns))

    concurrencies = (1, 16, 64) if full else (64,)
    for clients in concurrencies:
        await closed("single message", clients, single, 1)
    if full:
        pool = [factory() for _ in range(32)]
        await _open_all(pool)
        outcome = Outcome(f"fixed rate {plan.rate:,.0f} req/s{label}", "open loop", 1)
        await measure(
            outcome,
            lambda: open_loop(pool, factory, single, plan.rate, plan.duration, outcome),
        )
        await asyncio.gather(*(c.close() for c in pool))
    await closed("32-message requests", plan.batch_clients, batch32, 32)
    if full:
        await closed("overload", plan.overload_clients, single, 1)
    return outcomes


async def _open_all(conns: list[Connection]) -> None:
    limit = asyncio.Semaphore(64)

    async def opened(conn: Connection) -> None:
        async with limit:
            await conn.open()

    await asyncio.gather(*(opened(c) for c in conns))


def in_process(folder: Path, texts: list[str], duration: float) -> list[tuple[str, float]]:
    """Messages per second in this process, one thread, batches of 32: the bare model on
    batches as they come and on batches of similar length, and the whole pipeline."""
    from models.text.pipeline import analyze, model_text
    from serving.engine import load_engine

    engine = load_engine(folder, intra_op_threads=1)
    batches = [texts[i : i + 32] for i in range(0, len(texts) - 31, 32)]
    model_batches = [[model_text(analyze(t)) for t in batch] for batch in batches]
    by_length = sorted((t for batch in model_batches for t in batch), key=len)
    sorted_batches = [by_length[i : i + 32] for i in range(0, len(by_length) - 31, 32)]
    engine.classify(batches[0])
    runs: list[tuple[str, Callable[[list[str]], object], list[list[str]]]] = [
        ("bare ONNX model (tokenise + run), batch 32", engine.model.predict_proba, model_batches),
        (
            "bare ONNX model, batch 32 of similar lengths",
            engine.model.predict_proba,
            sorted_batches,
        ),
        ("in-process analyse + model + fusion, batch 32", engine.classify, batches),
    ]
    results = []
    for name, run, inputs in runs:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < duration:
            run(inputs[done % len(inputs)])
            done += 1
        results.append((name, done * 32 / (time.perf_counter() - start)))
    return results


def cpu_model() -> str:
    """The processor's name, as figures from different machines are not comparable."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def markdown(outcomes: list[Outcome], reference: list[tuple[str, float]], notes: list[str]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(o.row()) + " |" for o in outcomes]
    lines += ["", "| in-process reference | msgs/s |", "|---|---|"]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in reference]
    return "\n".join(lines + [""] + notes) + "\n"


def targets(outcomes: list[Outcome], reference: list[tuple[str, float]]) -> list[str]:
    by_name = {o.name: o for o in outcomes}
    bare = reference[0][1]
    on64 = next(o for o in outcomes if o.name == "single message" and o.clients == "64")
    off64 = by_name["single message (batching off)"]
    sorted_bare = reference[1][1]
    rate = next(o for o in outcomes if o.name.startswith("fixed rate"))
    batch32 = by_name["32-message requests"]
    overload = by_name["overload"]
    p99 = percentile(rate.latencies, 99) or 0.0
    checks = [
        (
            "64 single-message clients ≥ 2,000 msgs/s",
            on64.msgs_per_s >= 2000,
            f"{on64.msgs_per_s:,.0f}",
        ),
        ("p99 ≤ 50 ms at a fixed rate", p99 <= 0.05, f"{p99 * 1000:.1f} ms"),
        (
            "32-message requests ≥ 70% of the bare model",
            batch32.msgs_per_s >= 0.7 * bare,
            f"{batch32.msgs_per_s / bare:.0%}; {batch32.msgs_per_s / sorted_bare:.0%} of it on "
            "batches of similar length",
        ),
        (
            "batching ≥ 2× batching off at 64 clients",
            on64.msgs_per_s >= 2 * off64.msgs_per_s,
            f"{on64.msgs_per_s / max(off64.msgs_per_s, 1):.1f}×",
        ),
        (
            "overload: 503s faster than accepted answers (p99 < their p50), none failed",
            bool(overload.rejected_latencies)
            and not overload.failures
            and (percentile(overload.rejected_latencies, 99) or 0.0)
            < (percentile(overload.latencies, 50) or 0.0),
            f"{overload.statuses[503]} × 503, p99 "
            f"{_ms(percentile(overload.rejected_latencies, 99))} ms against "
            f"{_ms(percentile(overload.latencies, 50))} ms, {len(overload.failures)} failed",
        ),
    ]
    return [f"- {'PASS' if ok else 'MISS'}: {what} ({value})" for what, ok, value in checks]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=RELEASES_DIR)
    parser.add_argument("--duration", type=more_than_zero, default=5.0, help="seconds per scenario")
    parser.add_argument(
        "--max-requests", type=at_least_one, default=200_000, help="cap per scenario"
    )
    parser.add_argument("--rate", type=more_than_zero, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--overload-clients", type=at_least_one, default=500)
    parser.add_argument(
        "--batch-clients", type=at_least_one, default=8, help="clients of 32-msg requests"
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)

    releases = list_releases(args.models_dir)
    if not releases:
        raise SystemExit(f"no release under {args.models_dir}")
    plan = Plan(
        args.duration,
        args.max_requests,
        args.rate,
        args.overload_clients,
        args.batch_clients,
        args.client,
    )
    texts = load_texts()
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run

    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="qunguard-bench-") as tmp:
        with Server(args.models_dir, {}, Path(tmp)) as server:
            outcomes += runner(run_server_scenarios(server, plan, texts, "", True))
        with Server(args.models_dir, {"QUNGUARD_MAX_BATCH": "1"}, Path(tmp)) as server:
            outcomes += runner(run_server_scenarios(server, plan, texts, " (batching off)", False))
    reference = in_process(releases[-1], texts, args.duration)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    notes = [
        f"Release {releases[-1].name} under {args.models_dir}; {os.cpu_count()} CPUs "
        f"({cpu_model()}) shared by "
        f"server and load generator ({args.client} client); {args.duration:g} s per scenario; "
        f"32-message requests from {args.batch_clients} clients; load average at the end "
        f"{load} (other work on the machine skews the figures).",
        "",
        *targets(outcomes, reference),
    ]
    table = markdown(outcomes, reference, notes)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
