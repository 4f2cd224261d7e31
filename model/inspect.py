"""``bodytalk model info [CKPT] [--json]``: what a checkpoint holds (no argument: the demo's model).

Prints labels, the base-model reference, layouts (the layout-embedding vocabulary), parameter
counts, skeleton tokens per window, LoRA settings, the adapter, size, and training provenance
(split, metrics) when recorded.
"""
from __future__ import annotations

import argparse
import json
import logging

from bodytalk.model import checkpoint
from bodytalk.model.registry import default_checkpoint
from bodytalk.model.weights import BaseModelNotFound, resolve_base

log = logging.getLogger("bodytalk.model")


def _short(value) -> str:
    """One line per meta entry: long lists (a split's clip ids) become counts."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = {k: (f"[{len(v)} items]" if isinstance(v, list) and len(v) > 6 else v) for k, v in value.items()}
    return json.dumps(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bodytalk model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    info = sub.add_parser("info", help="show a checkpoint")
    info.add_argument("ckpt", nargs="?", default=None, help="checkpoint folder (default: the demo model)")
    info.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
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
            ("size", f"{d['size_mb']} MB")]
    rows += [(k, _short(v)) for k, v in d["meta"].items() if k not in ("history", "run")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
