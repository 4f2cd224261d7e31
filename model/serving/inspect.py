"""``bodytalk model info [CKPT] [--json]``: what a checkpoint holds (no argument: the demo's model).
``bodytalk model calibrate [CKPT] [--data URI] [--windows N]``: record the input maxima that let the
MLP's down projection take int8 copies too (model/llm/int8_copies.py), in the checkpoint folder.

Prints labels, the base-model reference, layouts (the layout-embedding vocabulary), parameter
counts, skeleton tokens per window, LoRA settings, the adapter, size, the LLM's label bias and the
explanation cues when measured or learned, and training provenance (split, metrics) when recorded.
"""
from __future__ import annotations

import argparse
import json
import logging

from bodytalk.model import checkpoint
from bodytalk.model.registry import default_checkpoint
from bodytalk.model.text.evidence_text import DIRECTION_MARKS
from bodytalk.model.llm.weights import BaseModelNotFound, resolve_base

log = logging.getLogger("bodytalk.model")


def _short(value) -> str:
    """One line per meta entry: long lists (a split's clip ids) become counts."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = {k: (f"[{len(v)} items]" if isinstance(v, list) and len(v) > 6 else v) for k, v in value.items()}
    return json.dumps(value)


CALIBRATION_DATA = "synthetic:?bodies=4&duration=12&seed=99"


def calibrate(ckpt, data: str, count: int) -> int:
    """Label scoring of `count` windows of `data` with the exact weights, recording the down
    projections' input maxima into the checkpoint (EmotionModel.load uses them)."""
    from bodytalk.capture import source
    from bodytalk.capture.windowing import windows_of
    from bodytalk.model.llm import int8_copies
    from bodytalk.model.skeleton.features import WindowInput
    from bodytalk.model.inference import EmotionModel

    if count < 1:
        log.error("--windows must be >= 1")
        return 2
    try:
        model = EmotionModel.load(ckpt, int8=False)
        src = source.create(data)
        src.open()
    except (FileNotFoundError, ValueError, source.SourceError, BaseModelNotFound) as err:
        log.error("%s", err)
        return 2
    if model.llm is None:
        log.error("%s has no LLM to calibrate", ckpt)
        return 2
    try:
        wins = [WindowInput(w.joints, w.confidence, src.fps, src.layout.id)
                for _, w in zip(range(count), windows_of(src))]
    finally:
        src.close()
    maxima = int8_copies.calibrate(model.llm.lm, lambda: [model.recognise(wins[i:i + 16], "llm")
                                                          for i in range(0, len(wins), 16)])
    path = int8_copies.save_calibration(ckpt, maxima)
    print(f"{len(maxima)} layers calibrated on {len(wins)} windows of {data}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bodytalk model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    info = sub.add_parser("info", help="show a checkpoint")
    info.add_argument("ckpt", nargs="?", default=None, help="checkpoint folder (default: the demo model)")
    info.add_argument("--json", action="store_true", help="print JSON")
    cal = sub.add_parser("calibrate", help="record int8 calibration maxima in a checkpoint folder")
    cal.add_argument("ckpt", nargs="?", default=None, help="checkpoint folder (default: the demo model)")
    cal.add_argument("--data", default=CALIBRATION_DATA,
                     help="windows to calibrate on, any source URI (default: synthetic bodies, %(default)s)")
    cal.add_argument("--windows", type=int, default=32, help="how many windows (default %(default)s)")
    args = p.parse_args(argv)
    if args.cmd == "calibrate":
        return calibrate(args.ckpt or default_checkpoint(), args.data, args.windows)
    try:
        d = checkpoint.describe(args.ckpt or default_checkpoint())
    except (FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 2
    if d["base_model"]:
        try:
            d["base_model_path"] = str(resolve_base(d["base_model"]))
        except BaseModelNotFound as err:
            d["base_model_path"] = f"missing: {err}"
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    rows = [("checkpoint", d["path"]), ("labels", ", ".join(d["labels"])),
            ("base model", f"{d['base_model']}  ({d.get('base_model_path', 'encoder-only')})"),
            ("encoder", f"{d['encoder_params']:,} parameters"), ("projector", f"{d['projector_params']:,} parameters"),
            ("skeleton tokens", f"{d['skeleton_tokens']} per window ({d['evidence_tokens']} of them from the descriptors)"),
            ("LoRA", f"r {d['llm']['lora_r']}, alpha {d['llm']['lora_alpha']}, dropout {d['llm']['lora_dropout']} on "
                     f"{', '.join(d['llm']['lora_targets'])}" if d["llm"] else "-"),
            ("adapter", d["adapter"] or "none (base LLM as is)"), ("layouts", ", ".join(d["layouts"])),
            ("size", f"{d['size_mb']} MB"),
            ("label bias", ", ".join(f"{lab} {b:+.2f}" for lab, b in zip(d["labels"], d["label_bias"]))
             if d["label_bias"] else "none (the LLM's label scores as they are)"),
            ("explanation cues", "; ".join(f"{lab}: " + ", ".join(f"{n} {DIRECTION_MARKS[s]}" for n, s in cues)
                                           for lab, cues in d["label_cues"].items())
             if d["label_cues"] else "the literature's (evidence_text.LABEL_CUES)")]
    rows += [(k, _short(v)) for k, v in d["meta"].items() if k not in ("history", "run")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
