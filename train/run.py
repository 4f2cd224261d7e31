"""``bodytalk train``: run one training stage from a committed config file.

    bodytalk train --config tiny_pretrain                       # a committed config by name
    bodytalk train --config pretrain_supervised --out runs/sup optim.epochs=20
    bodytalk train --config my.yaml data.split.kind=logo data.split.fold=bow runtime.threads=1
    bodytalk train --config bandai --folds all --out runs/bandai-folds            # every fold, then a summary
    bodytalk train --config bandai --folds all --paths descriptors               # baseline (a) only, no training
    bodytalk train --config bandai_full --out runs/bandai_full   # all of ds1, nothing held out (non-commercial)
    bodytalk train --config bandai_head --folds all --paths head --choose a: --choose b:optim.epochs=30
                                         # each fold chooses a or b on its own training side (train/nested.py)
    torchrun --nproc-per-node 4 -m bodytalk.train.run --config pretrain_stb   # DDP, same config

The config's ``stage:`` picks the stage module from ``STAGES``; each stage module has a ``Config``
dataclass and ``run(cfg, out) -> run folder``. Overrides are ``dotted.key=value`` (value in YAML).
An interrupted run resumes from its last finished epoch when started again with the same command.
Every dataset must end: ``synthetic:`` without ``duration`` or a live sensor is refused up front.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from bodytalk.train import config
from bodytalk.train.config import ConfigError
from bodytalk.train.data import DatasetError
from bodytalk.train.labels import LabelError
from bodytalk.train.splits import SplitError

# stage -> module with `Config` and `run(cfg, out=None) -> Path`. The later stages add themselves here.
STAGES: dict[str, str] = {
    "pretrain": "bodytalk.train.pretrain",
    "align": "bodytalk.train.align",
    "instruct": "bodytalk.train.instruct",
    "pipeline": "bodytalk.train.pipeline",   # several stages in a row (smoke, bandai)
    "mg_probe": "bodytalk.train.mg_probe",   # learned micro-gesture head vs the rules (issue 7)
}


def stage_config(raw: dict, name: str):
    """(stage module, validated config) of a config mapping read from the config ``name``."""
    stage = raw.get("stage")
    if stage not in STAGES:
        raise ConfigError(f"{name}: stage {stage!r} is not one of {', '.join(STAGES)}")
    module = importlib.import_module(STAGES[stage])
    return module, config.parse(module.Config, raw, where=str(config.resolve_path(name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bodytalk train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config YAML, or a committed config name")
    parser.add_argument("--out", help="run folder (default: the config's `out`)")
    parser.add_argument("--folds", metavar="all|V1,V2",
                        help="leave-one-group-out sweep (train/folds.py): train and evaluate every fold of the "
                             "config's logo split ('all') or these held-out values, into OUT/<value>/, then "
                             "OUT/summary.md and OUT/confusion.png, the pooled confusion matrices (default OUT: the "
                             "config's out + '-folds')")
    parser.add_argument("--paths", help="with --folds: label paths to score, default llm,head,descriptors; "
                                        "'descriptors' alone trains nothing")
    parser.add_argument("--jobs", type=int, default=1,
                        help="with --folds: folds trained at once, each in its own process with the config's "
                             "runtime.threads, or its share of the cores when N x threads would be more than "
                             "the machine has (default 1)")
    parser.add_argument("--explain", type=int, metavar="N",
                        help="with --folds and the llm path: explanations generated and graded by the "
                             "grounding check per fold (default 12)")
    parser.add_argument("--choose", action="append", metavar="NAME:key=value ...",
                        help="with --folds, twice or more (once with --shift): candidate settings (overrides "
                             "on top of the config's); each fold chooses one on validation values of its own training side, then trains "
                             "it and is scored on the held-out value (train/nested.py). OUT/nested.md compares "
                             "the choices with each candidate used everywhere. 'NAME:' alone: the config as it is")
    parser.add_argument("--inner", type=int, default=2, metavar="K",
                        help="with --choose: values of each fold's training side held out together to validate "
                             "on (default 2)")
    parser.add_argument("--inner-seed", type=int, default=0, metavar="N",
                        help="with --choose: which values of each fold's training side are drawn (default 0)")
    parser.add_argument("--shift", metavar="TAU,TAU,...",
                        help="with --choose and --paths head: label-shift values (train/label_shift.py: a bias "
                             "against labels that cover more contents than others) each fold chooses among on its "
                             "validation values too, applied to the trained head without training again, e.g. 0,1,2,3")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    args = parser.parse_args(argv)
    if (args.paths or args.jobs != 1 or args.explain is not None or args.choose) and not args.folds:
        parser.error("--paths, --jobs, --explain and --choose go with --folds (bodytalk eval scores one checkpoint)")
    if args.shift and not args.choose:
        parser.error("--shift goes with --choose (give the config as it is with --choose NAME:)")
    if args.jobs < 1 or (args.explain or 0) < 0 or args.inner < 1:
        parser.error("--jobs and --inner must be >= 1 and --explain >= 0")
    from bodytalk.model.checkpoint import CheckpointError   # here: torch is not needed for --help
    try:
        if args.folds:
            from bodytalk.train import folds
            sweep = folds.SweepConfig.from_cli(args.config, args.overrides, args.folds,
                                               args.paths or ("head" if args.choose else None), args.out,
                                               args.jobs, args.explain)
            command = "bodytalk train " + shlex.join(argv or sys.argv[1:])
            if args.choose:
                from bodytalk.train import nested
                from bodytalk.train.label_shift import parse_grid
                try:
                    shift = parse_grid(args.shift) if args.shift else ()
                except ValueError as err:
                    parser.error(str(err))
                choose = nested.NestedConfig(sweep, tuple(map(nested.Candidate.parse, args.choose)), args.inner,
                                             args.inner_seed, shift)
                print(f"settings chosen fold by fold: {nested.run(choose, command) / 'nested.md'}")
            else:
                print(f"fold sweep: {folds.sweep(sweep, command) / 'summary.md'}")
            return 0
        module, cfg = stage_config(config.load_raw(args.config, args.overrides), args.config)
        out = module.run(cfg, out=args.out)
    except (ConfigError, DatasetError, LabelError, SplitError, FileNotFoundError, CheckpointError) as err:
        # FileNotFoundError: a missing init checkpoint or base model (BaseModelNotFound) names what to do
        print(f"bodytalk train: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bodytalk train: interrupted; run the same command again to resume from the last epoch",
              file=sys.stderr)
        return 130
    print(f"run folder: {out}  (model checkpoint: {out / 'checkpoint'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
