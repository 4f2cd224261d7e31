"""Model benchmark (issue 3): tokenizer side, label scoring, explanation, memory, head vs LLM.

Measures on synthetic windows (held-out seed) with a checkpoint (default: the packaged demo model):
  - descriptors + micro-gestures + features + encoder + projector for one 2 s window
  - recognition through the LLM (label scoring, cached prefix) for 1 window and a batch of 16
  - the encoder's fast label head for the same
  - explanation: time to first token and to 40 generated tokens
  - resident memory of the loaded model
  - accuracy of the fast head and the LLM label path on the same windows

Budgets (ARCHITECTURE.md): tokenizer side < 10 ms; recognition of 1 window < 80 ms, of 16 < 400 ms
(timed whole: descriptors, encoder and the LLM pass; the LLM pass alone in brackets); 40 tokens < 2 s;
resident < 1.5 GB.

Examples:
  python benchmarks/bench_model.py
  python benchmarks/bench_model.py --model runs/smoke/checkpoint --threads 2 --write BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from report import machine, publish  # noqa: E402


def windows(n: int, seed: int):
    """``n`` labelled windows of synthetic motion (bodies with fixed, different emotions)."""
    from bodytalk.capture import source
    from bodytalk.capture.windowing import windows_of
    from bodytalk.model.skeleton.features import WindowInput

    uri = f"synthetic:?bodies=5&emotion=neutral,happy,sad,angry,fearful&seed={seed}&duration={n // 5 * 0.5 + 3}"
    src = source.create(uri)
    src.open()
    out = [(WindowInput(w.joints, w.confidence, src.fps, src.layout.id), w.labels["emotion"])
           for w in windows_of(src)]
    return out[:n]


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def measure(args) -> list[tuple[str, str, str]]:
    import psutil
    import torch

    from bodytalk.model.registry import load_model

    torch.set_num_threads(args.threads)
    rss0 = psutil.Process().memory_info().rss
    t = time.perf_counter()
    model = load_model(args.model)
    load_s = time.perf_counter() - t
    rss = psutil.Process().memory_info().rss
    data = windows(args.windows, args.seed)
    one, sixteen = [data[0][0]], [w for w, _ in data[:16]]
    rows = [("load checkpoint + base LLM", f"{load_s:.1f} s", ""),
            ("resident memory, loaded model", f"{rss / 2**20:,.0f} MiB (+{(rss - rss0) / 2**20:,.0f})", "< 1.5 GB")]

    def tokenizer_side():
        p = model.prepare(one)
        model.encode(p)

    med = lambda xs: f"{statistics.median(xs):.1f} ms"  # noqa: E731
    rows.append(("descriptors + MGs + features + encoder + projector, 1 window",
                 med(timed(tokenizer_side, args.reps)), "< 10 ms"))
    rows.append(("fast head, 1 window (all of the above included)", med(timed(lambda: model.recognise(one, "head"), args.reps)), ""))
    rows.append(("fast head, batch of 16", med(timed(lambda: model.recognise(sixteen, "head"), args.reps)), ""))
    if model.llm is not None:
        rows += llm_rows(model, one, sixteen, data, args)
    got = model.recognise([w for w, _ in data], "head")
    rows.append((f"accuracy, head path, {len(data)} synthetic windows (seed {args.seed}, not trained on)",
                 f"{np.mean([r.label == y for r, (_, y) in zip(got, data)]):.1%}", ""))
    return rows


def llm_rows(model, one, sixteen, data, args) -> list[tuple[str, str, str]]:
    """Label scoring, explanations and the LLM path's accuracy: with the int8 copies (the default) and
    then with the exact bf16 weights, labels read as constrained decoding does (the default); then
    the int8 copies reading whole answers (training's objective). All in this one run, with how
    often the label paths agree."""
    import dataclasses

    from bodytalk.model.llm import int8_copies

    from bodytalk.model.registry import default_checkpoint

    rows, probs, config = [], {}, model.llm.config
    calibration = int8_copies.load_calibration(args.model or default_checkpoint())
    variants = [("int8 copies", "constrained"), ("exact bf16 weights", "constrained"), ("int8 copies", "answer")]
    for weights, scoring in variants:
        name = weights if scoring == "constrained" else f"{weights}, whole-answer reading"
        (int8_copies.enable(model.llm.lm, act_max=calibration) if weights == "int8 copies"
         else int8_copies.disable(model.llm.lm))
        model.llm.config = dataclasses.replace(config, label_scoring=scoring)
        for case, batch in (("1 window", one), ("batch of 16", sixteen)):
            label_ms: list[float] = []
            total = timed(lambda: label_ms.append(model.recognise(batch, "llm")[0].latency_ms["label"]), args.reps)
            rows.append((f"LLM label scoring, {case} ({name})", f"{statistics.median(total):.1f} ms "
                         f"(LLM pass {statistics.median(label_ms[1:]):.1f})", "< 80 ms" if case == "1 window" else "< 400 ms"))
        if scoring == "constrained":
            rows += explanation_rows(model, one[0], args, weights)
        got = model.recognise([w for w, _ in data], "llm")
        probs[name] = np.array([[r.probs[label] for label in model.labels] for r in got])
        acc = np.mean([r.label == y for r, (_, y) in zip(got, data)])
        rows.append((f"accuracy, LLM path ({name}), {len(data)} synthetic windows (seed {args.seed}, not trained on)",
                     f"{acc:.1%}", ""))
    model.llm.config = config
    int8_copies.enable(model.llm.lm, act_max=calibration)
    base = probs.pop("int8 copies")
    for name, other in probs.items():
        rows.append((f"LLM path, int8 copies vs {name}: same label / largest probability change",
                     f"{np.mean(base.argmax(1) == other.argmax(1)):.1%} / {np.abs(base - other).max():.3f}", ""))
    return rows


def explanation_timing(model, window, reps: int, tokens: int) -> tuple[list[float], list[float], list[float]]:
    """Streamed: time to the first decoded piece and to the end; not streamed: time to the whole
    text. The model is made to generate exactly ``tokens`` tokens (a trained model often ends
    sooner), so the 40-token figure is measured, not extrapolated. The stream's piece 0 is the
    opening ("Sad movement:"), written before any decoding, so the first token is piece 1."""
    model.llm.lm.generation_config.min_new_tokens = tokens      # generate() merges unset fields from here
    firsts, totals, whole = [], [], []
    try:
        for _ in range(reps + 1):                                 # the first round warms up
            t = time.perf_counter()
            first = None
            for i, _piece in enumerate(model.explain_stream(window, model.labels[0], max_new_tokens=tokens)):
                if i == 1:
                    first = time.perf_counter()
            end = time.perf_counter()
            firsts.append(((first or end) - t) * 1e3)
            totals.append((end - t) * 1e3)
            t = time.perf_counter()
            model.explain([window], [model.labels[0]], max_new_tokens=tokens)
            whole.append((time.perf_counter() - t) * 1e3)
    finally:
        model.llm.lm.generation_config.min_new_tokens = None
    return firsts[1:], totals[1:], whole[1:]


def explanation_rows(model, window, args, weights: str) -> list[tuple[str, str, str]]:
    first, total, whole = explanation_timing(model, window, args.reps, args.tokens)
    med = lambda xs: f"{statistics.median(xs):.0f} ms"  # noqa: E731
    return [(f"explanation, streamed: first token ({weights})", med(first), "< 300 ms"),
            (f"explanation, streamed: {args.tokens} tokens ({weights})", med(total), "< 2 s"),
            (f"explanation, whole text: {args.tokens} tokens ({weights})", med(whole), "< 2 s")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder (default: the packaged demo model)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--reps", type=int, default=10, help="repetitions per case; medians are reported")
    p.add_argument("--windows", type=int, default=100, help="windows for the accuracy rows")
    p.add_argument("--seed", type=int, default=1234, help="synthetic seed (the demo model trains on others)")
    p.add_argument("--tokens", type=int, default=40, help="explanation length to report")
    p.add_argument("--write", type=Path, help="replace this run's section of this Markdown file")
    p.add_argument("--section", default="bench_model", help="section name in that file (one per checkpoint)")
    args = p.parse_args(argv)
    header = machine()
    command = " ".join(["python benchmarks/bench_model.py",
                        *(f"--{k} {v}" for k, v in vars(args).items()
                          if k not in ("write", "section") and v is not None)])
    rows = measure(args)
    table = "\n".join([f"Measured {time.strftime('%Y-%m-%d')} on {header}.", f"Command: `{command}`.", "",
                       "| case | median | budget |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)])
    return publish(table, args.write, args.section)


if __name__ == "__main__":
    sys.exit(main())
