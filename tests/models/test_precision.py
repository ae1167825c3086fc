"""Precision 'auto': bf16 only where the CPU computes it natively and nothing caps the ISA."""

from __future__ import annotations

import pytest

from sepsiscope.errors import InputError
from sepsiscope.models import precision


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ATEN_CPU_CAPABILITY", "avx2"), ("ATEN_CPU_CAPABILITY", "default"),
     ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("DNNL_MAX_CPU_ISA", "avx2_vnni")],
)  # fmt: skip
def test_an_isa_capped_below_avx512_means_fp32(monkeypatch, variable, value):
    monkeypatch.setattr(precision, "_native_bf16", lambda: True)
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    assert precision.use_bf16("auto", "cpu")  # native bf16, nothing capped
    assert precision.precision_reason("auto", "cpu").startswith("bf16 (auto: this CPU computes")
    monkeypatch.setenv(variable, value)
    assert not precision.cpu_supports_bf16() and not precision.use_bf16("auto", "cpu")
    assert "would be emulated and slower" in precision.precision_reason("auto", "cpu")
    assert precision.use_bf16("bf16", "cpu")  # asked for explicitly: still honoured
    assert precision.precision_reason("bf16", "cpu") == "bf16 (as asked)"


def test_unknown_precision_is_refused():
    with pytest.raises(InputError, match="unknown precision"):
        precision.use_bf16("fp16", "cpu")
