"""Training: ``bodytalk train --config FILE`` runs one stage (``run.STAGES``) from a committed config.

Shared plumbing every stage reuses:
  config.py   YAML -> typed config dataclasses, dotted ``key=value`` overrides
  data.py     dataset specs -> labelled unified windows with clip ids and groups (labels.py: where
              labels come from; readers.py: source -> windows, .npz cache; windowset.py: the
              windows, their clips and subsets)
  splits.py   leak-free splits by clip / leave-one-group-out, recorded in checkpoints and results
  views.py    windows -> encoder inputs (one or two seeded augmented views) as a torch Dataset
  augment.py  standard and micro-gesture skeleton augmentations
  losses.py   NT-Xent, Spatial-Temporal-Balanced dual-stream loss, CLIP-style skeleton-text loss
  loop.py     Trainer: optimiser + LR schedule, determinism, progress, DDP, checkpoint and resume
  rundir.py   the run folder (resolved config, metrics.jsonl, curves.png, state, checkpoint)
Stages: pretrain.py (encoder pre-training: supervised or STB), align.py (skeleton-language
contrastive alignment; text_encoder.py: MiniLM or the LLM's embeddings), instruct.py (LoRA
instruction tuning: recognition + grounded explanation targets), pipeline.py (stages in a row:
smoke, bandai); warmstart.py: what a later stage starts from and records.
Evaluation: evaluate.py (``bodytalk eval``), baselines.py (label paths), report.py (JSON/MD/PNG).
"""
