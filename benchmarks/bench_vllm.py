"""The same workload through the transformers backend and the vLLM backend (in-process), in one run.

Per backend, on one checkpoint (default: the packaged demo model; its adapter is merged for vLLM):
  - load time and resident memory added
  - LLM label scoring for 1 window and a batch of 16 (recognise, path "llm", everything included),
    on fresh windows every time
  - explanation: time to the first streamed piece and to 40 tokens
and the ratio vLLM / transformers, plus how far the two backends' label probabilities are apart on
the same 16 windows (bfloat16: rounding differs, see model/llm/vllm.py).

Needs the vllm extra (`pip install "bodytalk[vllm]"`, see README). Both backends get the same
threads; vLLM's OpenMP binding is off by default (--bind restores it), because a bound, spinning
thread per core is 10-30x slower on a machine that other processes share.

Examples:
  python benchmarks/bench_vllm.py
  python benchmarks/bench_vllm.py --model runs/smoke/checkpoint --threads 2 --write BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_model import timed, windows  # noqa: E402
from report import machine, publish  # noqa: E402


def load(backend: str, path):
    import psutil

    from bodytalk.model.registry import load_model

    rss0, t = psutil.Process().memory_info().rss, time.perf_counter()
    model = load_model(path, backend=backend)
    if model.llm is None:
        raise SystemExit(f"{path or 'the demo model'}: no LLM to compare: pass --model with a checkpoint that has "
                         "one (e.g. runs/bandai/checkpoint), and `bodytalk models pull` its base")
    return model, time.perf_counter() - t, psutil.Process().memory_info().rss - rss0


def measure(model, data, args) -> dict[str, float]:
    """Medians over repetitions, each on windows the backend has not seen: vLLM's prefix cache would
    otherwise answer a repeated window from its cached prompt."""
    fresh = iter(data)
    take = lambda n: [next(fresh) for _ in range(n)]  # noqa: E731
    label_one = timed(lambda: model.recognise(take(1), "llm"), args.reps)
    label_16 = timed(lambda: model.recognise(take(16), "llm"), args.reps)
    firsts, totals, tokens = [], [], []
    for window in take(args.reps):
        t, first, pieces = time.perf_counter(), None, []
        for piece in model.explain_stream(window, model.labels[0], max_new_tokens=args.tokens):
            first = first or time.perf_counter()
            pieces.append(piece)
        end = time.perf_counter()
        firsts.append(((first or end) - t) * 1e3)
        totals.append((end - t) * 1e3)
        tokens.append(max(1, len(model.llm.tokenizer("".join(pieces), add_special_tokens=False)["input_ids"])))
    n = statistics.median(tokens)
    return {"label, 1 window": statistics.median(label_one), "label, batch of 16": statistics.median(label_16),
            "explanation: first piece": statistics.median(firsts),
            f"explanation: {args.tokens} tokens (scaled from the tokens generated)": statistics.median(totals) / n
            * args.tokens, "tokens generated": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder (default: the packaged demo model)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, both backends")
    p.add_argument("--bind", action="store_true", help="keep vLLM's default OpenMP thread binding")
    p.add_argument("--reps", type=int, default=5, help="repetitions per case; medians are reported")
    p.add_argument("--seed", type=int, default=1234, help="synthetic seed")
    p.add_argument("--tokens", type=int, default=40, help="explanation length to report")
    p.add_argument("--write", type=Path, help="replace this run's section of this Markdown file")
    p.add_argument("--section", default="bench_vllm", help="section name in that file")
    args = p.parse_args(argv)
    if not args.bind:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    import torch
    import vllm

    torch.set_num_threads(args.threads)
    header = machine(f"; torch {torch.__version__}, vllm {vllm.__version__}")
    command = " ".join(["python benchmarks/bench_vllm.py", *(f"--{k} {v}" for k, v in vars(args).items()
                                                             if k not in ("write", "section") and v not in (None, False))])
    data = [w for w, _ in windows(17 * (args.reps + 1) + args.reps, args.seed)]
    results, loads, probs = {}, {}, {}
    for backend in ("transformers", "vllm"):
        model, seconds, rss = load(backend, args.model)
        loads[backend] = f"{seconds:.1f} s, +{rss / 2**20:,.0f} MiB"
        results[backend] = measure(model, data, args)
        probs[backend] = model.recognise(data[:16], "llm")
        getattr(model.llm, "close", lambda: None)()
        del model
    rows = [("load (resident memory added)", loads["transformers"], loads["vllm"], "")]
    tokens = {backend: results[backend].pop("tokens generated") for backend in results}
    rows += [(case, f"{ms:.0f} ms", f"{results['vllm'][case]:.0f} ms", f"{results['vllm'][case] / ms:.1f}x")
             for case, ms in results["transformers"].items()]
    rows.append(("tokens generated per explanation (median)", f"{tokens['transformers']:.0f}", f"{tokens['vllm']:.0f}", ""))
    same = sum(a.label == b.label for a, b in zip(probs["vllm"], probs["transformers"]))
    apart = max(abs(a.probs[k] - b.probs[k]) for a, b in zip(probs["vllm"], probs["transformers"]) for k in a.probs)
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {header}; load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}.", f"Command: `{command}`.", "",
        "| case | transformers | vLLM (in-process) | vLLM / transformers |", "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows), "",
        f"Same label on {same} of 16 windows; label probabilities at most {apart:.3f} apart."])
    return publish(table, args.write, args.section)


if __name__ == "__main__":
    sys.exit(main())
