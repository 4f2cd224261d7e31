"""Int8 copies of the LLM's weights for the decoding steps of an explanation (issue 3: 40 tokens < 2 s).

Why: a decoding step multiplies one row per window by every weight matrix, so it costs the time to
stream the weights from memory, not arithmetic. Measured on the 2-core Xeon (AMX) we serve from, one
[rows, 576] x [576, 1536] product, weights coming from DRAM (40 matrices in turn, 2 threads): 1 row
bf16 229 us, fp32 204 us, int8 weight-only 80 us; 8 rows 265 / 365 / 206 us; 16 rows 246 / 480 /
366 us. So the int8 copy serves inputs of at most `max_rows` rows (the decoding steps), and the bf16
weights, where the AMX kernels win, everything longer (label scoring, the explanation prompt).
benchmarks/bench_model.py reports a decoding step both ways (BENCHMARKS.md).

Quantisation is symmetric, per output channel, of the *effective* weight: for a LoRA layer the base
weight plus the adapter's delta in float32, so the adapter is not lost to rounding as it would be in a
bf16 merge. Greedy text may differ from the bf16 text after some tokens (a different but equally
plausible continuation); label scores never change.

Only generation uses the copies: SkeletonLLM.generate runs its passes inside `decoding()`, and a
layer takes the int8 path only there. A row count alone would not tell a decoding step from label
scoring, whose output head sees B * (1 + T) rows: 3 single-token labels of 1 window are 4 rows.

Only layers whose forward is exactly "input times one weight matrix, plus bias" get a copy: plain
nn.Linear and peft lora.Linear with vanilla adapters (no DoRA or other variant, no lora_bias, not
fan_in_fan_out). Any other layer, peft tuner or not, keeps its exact forward.

The copies are buffers that are not part of any state dict (checkpoints and adapters save exactly as
before), they are bypassed while gradients are on or the module is in training mode, and they are
snapshots: after the weights change (training, another adapter) they are stale, so call `enable`
again (EmotionModel.load enables after the weights are final).
"""
from __future__ import annotations

import contextlib
import contextvars
import types
from collections.abc import Iterator

import torch
from torch import Tensor, nn

MAX_ROWS = 8    # above this many rows the bf16 kernel is faster (see the figures above)
# A context variable, not a module flag: a server may score labels on one thread while another
# generates, and only the generating thread may use the copies. A new thread starts without it, so
# the thread that runs generate() must enter `decoding()` itself (llm._stream does).
_DECODING = contextvars.ContextVar("bodytalk_int8_decoding", default=False)


@contextlib.contextmanager
def decoding() -> Iterator[None]:
    """Within this block, in this thread, layers with int8 copies use them for few-row inputs."""
    token = _DECODING.set(True)
    try:
        yield
    finally:
        _DECODING.reset(token)


def available(lm: nn.Module) -> bool:
    """Int8 decoding needs a bf16 model on CPU and torch's weight-only int8 kernel."""
    weight = lm.get_input_embeddings().weight
    return (weight.dtype == torch.bfloat16 and weight.device.type == "cpu"
            and hasattr(torch.ops.aten, "_weight_int8pack_mm"))


def enable(lm: nn.Module, max_rows: int = MAX_ROWS) -> int:
    """Give every plain linear layer of `lm` (vanilla-LoRA-wrapped or not, the output head included)
    an int8 copy of its current effective weight, used for inputs of at most `max_rows` rows inside
    `decoding()`. Returns the number of layers; 0 when not `available`.

    The copies do not follow later weight changes: call `enable` again after training or swapping
    an adapter (it drops the old copies first)."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, not {max_rows}")
    disable(lm)
    if not available(lm):
        return 0
    layers = _linear_layers(lm)
    for module in layers:
        weight, bias = _effective(module)                                   # [out, in] float32
        scales = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0          # [out]
        module.register_buffer("int8_weight", torch.round(weight / scales[:, None]).to(torch.int8),
                               persistent=False)
        module.register_buffer("int8_scales", scales.to(torch.bfloat16), persistent=False)
        module.register_buffer("int8_bias", None if bias is None else bias.to(torch.bfloat16), persistent=False)
        module.int8_max_rows = max_rows
        module.forward = types.MethodType(_dispatch(type(module).forward), module)
    return len(layers)


def disable(lm: nn.Module) -> None:
    """Back to the plain forward of every layer `enable` touched."""
    for module in lm.modules():
        if hasattr(module, "int8_max_rows"):
            del module.forward, module.int8_max_rows
            del module.int8_weight, module.int8_scales, module.int8_bias


def _dispatch(plain):
    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        # The kernel wants a bf16 CPU input whose last dimension is contiguous (it raises otherwise).
        if (not _DECODING.get() or args or kwargs or self.training or torch.is_grad_enabled()
                or x.dtype != torch.bfloat16 or x.device.type != "cpu" or x.stride(-1) != 1
                or x.numel() // x.shape[-1] > self.int8_max_rows):
            return plain(self, x, *args, **kwargs)
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), self.int8_weight, self.int8_scales)
        if self.int8_bias is not None:
            y = y + self.int8_bias
        return y.reshape(*x.shape[:-1], y.shape[-1])
    return forward


def _linear_layers(lm: nn.Module) -> list[nn.Module]:
    """The layers `foldable` accepts, but not the linears inside any peft tuner layer: a tuner that
    is not foldable (DoRA, IA3, ...) transforms its base layer's input or output, so its base layer
    must keep its exact weight too."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    tuned = [m for m in lm.modules() if isinstance(m, BaseTunerLayer)]
    inside = {id(sub) for m in tuned for sub in m.modules() if sub is not m}
    return [m for m in lm.modules() if id(m) not in inside and foldable(m)]


def foldable(module: nn.Module) -> bool:
    """Whether `module` computes x @ W.T + b for one weight W that `_effective` can build: a plain
    nn.Linear, or a peft lora.Linear over one whose adapters all add scaling * B @ A (no DoRA or other
    variant, no bias on B, weights not stored transposed)."""
    if isinstance(module, nn.Linear):
        return type(module).forward is nn.Linear.forward and module.weight.is_floating_point()
    from peft.tuners.lora import Linear as LoraLinear

    if type(module) is not LoraLinear or module.fan_in_fan_out or not foldable(module.get_base_layer()):
        return False
    variants = getattr(module, "lora_variant", {})                          # peft >= 0.15
    return not any(variants.get(name) is not None or module.use_dora.get(name)
                   or getattr(module, "lora_bias", {}).get(name) for name in module.lora_A)


@torch.no_grad()
def _effective(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The weight [out, in] a `foldable` module applies (float32) and its bias."""
    if isinstance(module, nn.Linear):
        return module.weight.float(), module.bias
    base = module.get_base_layer()
    weight = base.weight.float()
    if not module.merged and not module.disable_adapters:
        for name in module.active_adapters:
            if name in module.lora_A:
                weight = weight + module.get_delta_weight(name).float()
    return weight, base.bias
