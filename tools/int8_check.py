"""Whether this CPU's int8 kernels compute the int8 model's products exactly.

    scripts/int8-check [--json] [--save vectors.npy | --compare vectors.npy]
    scripts/as-cpu avx512 scripts/int8-check   # as an AVX-512 CPU without VNNI (natively: scripts/as-cpu)
    qemu-x86_64 -cpu max .venv/bin/python -m tools.int8_check   # an AVX2 CPU, emulated (slow)

onnxruntime multiplies u8 activations by s8 weights with a kernel chosen by CPU: AMX and
AVX-512 VNNI ones sum in int32, exactly; the AVX2 and AVX-512 ones without VNNI add
pairs of products in int16 with saturation (vpmaddubsw), which 8-bit weights overflow.
The export quantises weights to 7 bits (search/embedding/onnx_export.py) so that no pair can. This
runs one MatMulInteger of the model's shape with each weight width and counts the
results that differ from exact integer arithmetic: 0 for 7 bits on every CPU.

`--save` also embeds a few seed paragraphs with the default model and keeps the vectors;
`--compare` embeds them again (on another CPU, or under qemu) and reports the cosines.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def mismatches(bits: int, rows: int = 64, inner: int = 384, cols: int = 1536, seed: int = 0) -> int:
    """How many of a u8 x s8 product's int32 results differ from exact arithmetic here,
    with weights of `bits` bits as onnxruntime's quantiser makes them: -128..127 for 8,
    -64..64 for 7 (reduce_range), where a pair of products is at most 2 * 255 * 64 = 32,640,
    inside int16."""
    import onnxruntime
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    activations = rng.integers(0, 256, (rows, inner), dtype=np.uint8)
    limit = 2 ** (bits - 1)
    weights = rng.integers(-limit, min(limit, 127) + 1, (inner, cols), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "za", "zb"], ["Y"])], "product",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [rows, inner])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [rows, cols])],
        [helper.make_tensor("B", TensorProto.INT8, [inner, cols], weights.tobytes(), raw=True),
         helper.make_tensor("za", TensorProto.UINT8, [], [128]), helper.make_tensor("zb", TensorProto.INT8, [], [0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    computed = session.run(None, {"A": activations})[0]
    exact = (activations.astype(np.int64) - 128) @ weights.astype(np.int64)
    return int((computed != exact).sum())


def cpu_flags() -> list[str]:
    """The CPU's int8-relevant instruction sets, from /proc/cpuinfo (as the kernel reports
    them: under an emulator, those of the host)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "avx_vnni"))


def cpuid_features() -> list[str]:
    """The same, as this process's CPUID reports them (numpy's detection): under
    scripts/as-cpu, the CPU it describes rather than the host's."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return []
    return sorted(f for f, on in __cpu_features__.items() if on and ("512" in f or "VNNI" in f or f == "AVX2"))


def seed_paragraphs(count: int) -> list[str]:
    """The first `count` paragraphs of the seed articles, in file order."""
    from pathlib import Path

    seeds = Path(__file__).resolve().parent.parent / "seeds"
    lines = [line.strip() for path in sorted(seeds.glob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 8]
    return lines[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="int8-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="embed --texts seed paragraphs and save the vectors (.npy)")
    parser.add_argument("--compare", metavar="FILE", help="embed them again and compare with the saved vectors")
    parser.add_argument("--texts", type=int, default=12, help="how many seed paragraphs (default 12: qemu is slow)")
    args = parser.parse_args(argv)
    size = 64 * 1536
    result = {"results": size, "differ_8bit_weights": mismatches(8), "differ_7bit_weights": mismatches(7),
              "cpu_flags": cpu_flags(), "cpuid": cpuid_features()}
    if args.save or args.compare:
        from search.embedding.embedder import get_embedder

        vectors = get_embedder().embed(seed_paragraphs(args.texts))
        if args.save:
            np.save(args.save, vectors)
        else:
            saved = np.load(args.compare, allow_pickle=False)
            cosine = (saved * vectors).sum(axis=1)
            result.update({"texts": len(vectors), "cosine_min": round(float(cosine.min()), 8),
                           "max_abs_difference": float(np.abs(saved - vectors).max())})
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v}" for k, v in result.items()))
    return 0 if result["differ_7bit_weights"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
