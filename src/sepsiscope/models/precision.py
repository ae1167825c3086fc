"""Numeric precision: bf16 autocast where the hardware computes it natively, fp32 elsewhere.

On CPUs without AVX-512-BF16 or AMX (AVX2 only), bf16 is emulated and slower than fp32, so
'auto' picks fp32 there; on CPUs with them bf16 is about 2-3x faster.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sepsiscope.errors import InputError

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX-512-BF16 or AMX), where bf16 pays off.

    False too when the instruction set is capped below AVX-512 for PyTorch
    (``ATEN_CPU_CAPABILITY=avx2`` or ``default``) or oneDNN (``ONEDNN_MAX_CPU_ISA`` /
    ``DNNL_MAX_CPU_ISA`` = ``AVX2`` or lower): bf16 would then be emulated (how an AVX2 machine is
    reproduced on a newer one, docs/benchmarks.md).
    """
    return not _isa_capped_below_avx512() and _native_bf16()


def _native_bf16() -> bool:
    try:
        cpu = torch._C._cpu
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags


def _isa_capped_below_avx512() -> bool:
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA", "")
    onednn = onednn.upper()
    return aten in ("avx2", "default") or onednn in ("SSE41", "AVX", "AVX2", "AVX2_VNNI")


def use_bf16(precision: str, device: torch.device | str) -> bool:
    """Resolve ``precision`` ('auto', 'fp32', 'bf16') to bf16 autocast on or off for ``device``.

    'auto' means bf16 on CUDA GPUs that support it and on CPUs with native bf16, else fp32.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    if precision != "auto":
        return precision == "bf16"
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return kind == "cpu" and cpu_supports_bf16()


def precision_reason(precision: str, device: torch.device | str) -> str:
    """Why :func:`use_bf16` chose what it did, in words for a log line."""
    bf16 = use_bf16(precision, device)
    chosen = "bf16" if bf16 else "fp32"
    if precision != "auto":
        return f"{chosen} (as asked)"
    if torch.device(device).type == "cuda":
        support = "supports bf16" if bf16 else "has no bf16 (or no CUDA device is available)"
        return f"{chosen} (auto: this GPU {support})"
    if bf16:
        return f"{chosen} (auto: this CPU computes bf16 natively, AVX-512-BF16 or AMX)"
    return (f"{chosen} (auto: no native bf16 on this CPU or it is capped below AVX-512; bf16 "
            "would be emulated and slower)")  # fmt: skip
