"""Int8 copies of the LLM's linear layers, for inference on CPU (issue 3's speed budgets).

Two kinds, one per kind of pass, both built from the *effective* weight (for a LoRA layer the base
weight plus the adapter's delta, in float32, so the adapter is not lost to rounding):

- weight-only int8 (torch's _weight_int8pack_mm) for inputs of at most `max_rows` rows: the
  decoding steps of an explanation, which cost the time to stream the weights once per token;
- dynamic int8 (fbgemm's quantized linear: weights per output channel, activations quantised per
  call) for longer inputs: label scoring and the explanation prompt, which cost arithmetic, and
  int8 arithmetic is what these CPUs do fastest (VNNI).

Which kind wins depends on the rows per product: weight-only int8 for a few rows (decoding), dynamic
int8 for many (BENCHMARKS.md has the per-product timings on the CPU we serve from).

The dynamic kind quantises activations with one scale per call, which the MLP's down projection
does not survive as it is: its inputs (SiLU(gate) * up) have outlier channels, and with every layer
dynamic the label probabilities moved far (BENCHMARKS.md). So a layer whose name ends with a
`keep_exact` entry gets a dynamic copy only when calibration maxima of its input channels are given (`calibrate`, stored in a checkpoint as
CALIBRATION_FILE): then its channels are smoothed first (SmoothQuant: x / s and W * s, s = xmax^a /
wmax^(1-a)), which spreads the outliers into the weights. Without them it stays exact. Smoothed, the
down projection moves the probabilities less than kept exact, and is faster (README, BENCHMARKS.md).

Label scoring feeds a model whose every linear layer has copies float32 activations (`score_dtype`):
the dynamic products take and give float32, so bf16 activations cost two conversions per layer and
bf16 attention and element-wise ops are slower than float32 ones on CPUs without bf16 units.

Passes choose with a context (a context variable: a server scores labels on one thread while
another generates; a new thread starts outside both):
  decoding()  generation: few rows -> weight-only copy, more -> dynamic copy
  scoring()   label scoring: dynamic copies only
Outside both, or with gradients on, or in training mode, every layer computes with its exact weight.

Only layers whose forward is exactly "input times one weight matrix, plus bias" get copies: plain
nn.Linear and peft lora.Linear with vanilla adapters (no DoRA or other variant, no lora_bias, not
fan_in_fan_out). The copies are not part of any state dict, and they are snapshots: after the
weights change (training, another adapter), call `enable` again (EmotionModel.load enables after
the weights are final).
"""
from __future__ import annotations

import contextlib
import contextvars
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

MAX_ROWS = 8                    # above this many rows weight-only int8 loses to the other kernels
KEEP_EXACT = ("down_proj",)     # layers without a dynamic copy unless calibrated (outlier activations)
SMOOTH_ALPHA = 0.7              # migration strength: of 0.5 / 0.7 / 0.85, 0.7 moved the probabilities least
CALIBRATION_FILE = "int8_calibration.safetensors"   # in a checkpoint folder: layer name -> input maxima
_MODE = contextvars.ContextVar("bodytalk_int8_mode", default=None)   # None | "decode" | "score"


@contextlib.contextmanager
def _mode(mode: str) -> Iterator[None]:
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def decoding() -> contextlib.AbstractContextManager:
    """Generation, in this thread: weight-only copies for few rows, dynamic copies for more."""
    return _mode("decode")


def scoring() -> contextlib.AbstractContextManager:
    """Label scoring, in this thread: dynamic copies (never the weight-only ones)."""
    return _mode("score")


def available(lm: nn.Module) -> bool:
    """Int8 copies need a bf16 model on CPU and torch's weight-only int8 kernel."""
    weight = lm.get_input_embeddings().weight
    return (weight.dtype == torch.bfloat16 and weight.device.type == "cpu"
            and hasattr(torch.ops.aten, "_weight_int8pack_mm"))


def dynamic_available() -> bool:
    """fbgemm's dynamic quantized linear (the x86 / fbgemm quantized engines)."""
    return bool({"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines))


def calibrate(lm: nn.Module, run: Callable[[], object], keep_exact: tuple[str, ...] = KEEP_EXACT) -> dict[str, Tensor]:
    """Per-input-channel maxima of |x| [in] of the `keep_exact` layers over the passes `run` makes
    (e.g. label scoring of some windows), with the exact weights: for `enable(act_max=...)`."""
    disable(lm)
    maxima: dict[str, Tensor] = {}

    def hook(name):
        def record(_module, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1]).abs().amax(0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x
        return record

    hooks = [m.register_forward_pre_hook(hook(name)) for name, m in lm.named_modules()
             if name.endswith(tuple(keep_exact)) and foldable(m)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return maxima


def save_calibration(folder: str | Path, maxima: dict[str, Tensor]) -> Path:
    from safetensors.torch import save_file

    path = Path(folder) / CALIBRATION_FILE
    save_file({k: v.contiguous() for k, v in maxima.items()}, str(path))
    return path


def load_calibration(folder: str | Path) -> dict[str, Tensor] | None:
    """A checkpoint's calibration maxima, or None when it has none (its down projections stay exact)."""
    from safetensors.torch import load_file

    path = Path(folder) / CALIBRATION_FILE
    return load_file(str(path)) if path.is_file() else None


def enable(lm: nn.Module, max_rows: int = MAX_ROWS, dynamic: bool = True,
           keep_exact: tuple[str, ...] = KEEP_EXACT, act_max: dict[str, Tensor] | None = None) -> int:
    """Give every plain linear layer of `lm` (vanilla-LoRA-wrapped or not, the output head included)
    int8 copies of its current effective weight: weight-only (inputs of <= `max_rows` rows in
    `decoding()`) and, with `dynamic`, dynamic (longer inputs, and label scoring) -- for a layer whose
    name ends with a `keep_exact` entry only when `act_max` (from `calibrate`) has its input maxima.
    Returns the number of layers; 0 when not `available`. Drops earlier copies first: call it again
    after the weights change."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, not {max_rows}")
    disable(lm)
    if not available(lm):
        return 0
    dynamic = dynamic and dynamic_available()
    names = {id(m): name for name, m in lm.named_modules()}
    layers = _linear_layers(lm)
    for module in layers:
        weight, bias = _effective(module)                                   # [out, in] float32
        scales = _scales(weight)                                            # [out]
        module.register_buffer("int8_weight", torch.round(weight / scales[:, None]).to(torch.int8),
                               persistent=False)
        module.register_buffer("int8_scales", scales.to(torch.bfloat16), persistent=False)
        module.register_buffer("int8_bias", None if bias is None else bias.to(torch.bfloat16), persistent=False)
        name = names[id(module)]
        exact = name.endswith(tuple(keep_exact))
        maxima = (act_max or {}).get(name) if exact and dynamic else None
        smooth = None if maxima is None else (maxima.float().clamp_min(1e-5) ** SMOOTH_ALPHA / weight.abs().amax(0)
                                              .clamp_min(1e-5) ** (1 - SMOOTH_ALPHA)).clamp_min(1e-5)   # [in]
        module.int8_packed = (None if not dynamic or (exact and smooth is None)
                              else _pack(weight if smooth is None else weight * smooth[None, :], bias))
        module.register_buffer("int8_smooth", None if smooth is None else (1 / smooth).to(torch.bfloat16),
                               persistent=False)                                          # [in]: x / s
        module.int8_max_rows = max_rows
        module.forward = types.MethodType(_dispatch(type(module).forward), module)
    inside = {id(sub) for m in layers for sub in m.modules()}
    lm.int8_float_scoring = dynamic and all(id(m) in inside for m in lm.modules() if isinstance(m, nn.Linear))
    return len(layers)


def score_dtype(lm: nn.Module) -> torch.dtype:
    """The dtype label scoring should feed `lm`: float32 when every linear layer has int8 copies (the
    dynamic products take and give float32, so bf16 activations would be converted twice per layer),
    else the model's own."""
    dtype = lm.get_input_embeddings().weight.dtype
    return torch.float32 if getattr(lm, "int8_float_scoring", False) and dtype == torch.bfloat16 else dtype


def disable(lm: nn.Module) -> None:
    """Back to the plain forward of every layer `enable` touched."""
    lm.int8_float_scoring = False
    for module in lm.modules():
        if hasattr(module, "int8_max_rows"):
            del module.forward, module.int8_max_rows, module.int8_packed
            del module.int8_weight, module.int8_scales, module.int8_bias, module.int8_smooth


def _scales(weight: Tensor) -> Tensor:
    """Symmetric per-output-channel int8 scales of a weight [out, in] -> [out]."""
    return weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0


def _pack(weight: Tensor, bias: Tensor | None):
    """fbgemm's packed form of the per-output-channel int8 weight."""
    zero = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():   # torch 2.13 flags quantized tensors for eventual removal; pinned
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(weight, _scales(weight).double(), zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.float())


def _dispatch(plain):
    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        mode = _MODE.get()
        # The kernels want a CPU input whose last dimension is contiguous (the int8 one raises otherwise).
        if (mode is None or args or kwargs or self.training or torch.is_grad_enabled()
                or x.dtype not in (torch.bfloat16, torch.float32) or x.device.type != "cpu" or x.stride(-1) != 1):
            return plain(self, x, *args, **kwargs)
        if x.dtype == torch.float32 and (mode != "score" or self.int8_packed is None):
            # float32 activations (score_dtype) through a layer without a dynamic copy: its exact weight.
            return plain(self, x.to(torch.bfloat16)).float()
        rows = x.reshape(-1, x.shape[-1])                                   # [N, in]
        if mode == "decode" and rows.shape[0] <= self.int8_max_rows:
            y = torch.ops.aten._weight_int8pack_mm(rows, self.int8_weight, self.int8_scales)
            if self.int8_bias is not None:
                y = y + self.int8_bias
        elif self.int8_packed is not None:
            if self.int8_smooth is not None:
                rows = rows * self.int8_smooth                               # the copy holds W * s
            # reduce_range=False: full 8-bit activations (7-bit doubled the label-probability error).
            y = torch.ops.quantized.linear_dynamic(rows.float(), self.int8_packed, False).to(x.dtype)
        else:
            return plain(self, x, *args, **kwargs)
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
