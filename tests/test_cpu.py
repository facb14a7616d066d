"""The default model embeds the same on every CPU: this one, and this one described by CPUID
as one without VNNI, AMX and BF16 (scripts/as-cpu), whose int8 kernels onnxruntime then
picks and runs natively."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _can_mask() -> str | None:
    if shutil.which("gcc") is None:
        return "no gcc to build tools/cpu_mask"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        if "cpuid_fault" not in f.read().split():
            return "this CPU (or its hypervisor) has no CPUID faulting"
    return None


pytestmark = pytest.mark.skipif(_can_mask() is not None, reason=str(_can_mask()))


def _as_cpu(mask: str, saved: Path) -> dict:
    done = subprocess.run([str(ROOT / "scripts" / "as-cpu"), mask, sys.executable, "-m", "tools.int8_check",
                           "--json", "--compare", str(saved), "--texts", "24"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_cpu_without_vnni_embeds_bit_for_bit_the_same(embedder, tmp_path):
    from tools.int8_check import seed_paragraphs

    saved = tmp_path / "vectors.npy"
    np.save(saved, embedder.embed(seed_paragraphs(24)))
    seen = _as_cpu("avx512", saved)
    assert "AVX512F" in seen["cpuid"] and not any("VNNI" in f for f in seen["cpuid"])
    # the mask took: 8-bit weights overflow the kernel now chosen, as on such a CPU
    assert seen["differ_8bit_weights"] > 0 and seen["differ_7bit_weights"] == 0
    assert seen["texts"] == 24 and seen["max_abs_difference"] == 0.0


def test_an_avx2_cpu_embeds_within_rounding(embedder, tmp_path):
    from tools.int8_check import seed_paragraphs

    saved = tmp_path / "vectors.npy"
    np.save(saved, embedder.embed(seed_paragraphs(24)))
    seen = _as_cpu("avx2", saved)
    assert seen["cpuid"] == ["AVX2"]
    assert seen["differ_7bit_weights"] == 0
    # AVX2's fp32 kernels round layer norms and softmax differently: 0.9987 measured
    assert seen["cosine_min"] > 0.995
