"""Whether this CPU's int8 kernels compute the int8 model's products exactly.

    scripts/int8-check [--json] [--save vectors.npy | --compare vectors.npy] [--speed]
    scripts/as-cpu avx512 scripts/int8-check   # as an AVX-512 CPU without VNNI (natively: scripts/as-cpu)
    qemu-x86_64 -cpu max .venv/bin/python -m tools.int8_check   # an AVX2 CPU, emulated (slow)

onnxruntime multiplies u8 activations by s8 weights with a kernel chosen by CPU: AMX and
AVX-512 VNNI ones sum in int32, exactly; the AVX2 and AVX-512 ones without VNNI add
pairs of products in int16 with saturation (vpmaddubsw), which 8-bit weights overflow.
The export quantises weights to 7 bits (search/embedding/onnx_export.py) so that no pair can. This
runs one MatMulInteger of the model's shape with each weight width and counts the
results that differ from exact integer arithmetic: 0 for 7 bits on every CPU.

`--speed` also times those products against fp32 ones of the same shapes, one thread:
the ceiling on what int8 can gain over the fp32 model on this CPU (without VNNI the
integer kernel needs two multiplying instructions where VNNI needs one).

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
    rng = np.random.default_rng(seed)
    activations = rng.integers(0, 256, (rows, inner), dtype=np.uint8)
    limit = 2 ** (bits - 1)
    weights = rng.integers(-limit, min(limit, 127) + 1, (inner, cols), dtype=np.int8)
    computed = _product_session(weights).run(None, {"A": activations})[0]
    exact = (activations.astype(np.int64) - 128) @ weights.astype(np.int64)
    return int((computed != exact).sum())


def _product_session(weights: np.ndarray, threads: int = 0):
    """onnxruntime running one product by `weights` (int8: MatMulInteger of u8 activations
    with zero point 128; float32: MatMul), on `threads` threads (0: its default)."""
    import onnxruntime
    from onnx import TensorProto, helper

    inner, cols = weights.shape
    if weights.dtype == np.int8:
        node = helper.make_node("MatMulInteger", ["A", "B", "za", "zb"], ["Y"])
        types = TensorProto.UINT8, TensorProto.INT32, TensorProto.INT8
        constants = [helper.make_tensor("za", TensorProto.UINT8, [], [128]),
                     helper.make_tensor("zb", TensorProto.INT8, [], [0])]
    else:
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        types, constants = (TensorProto.FLOAT,) * 3, []
    graph = helper.make_graph(
        [node], "product", [helper.make_tensor_value_info("A", types[0], ["rows", inner])],
        [helper.make_tensor_value_info("Y", types[1], ["rows", cols])],
        [helper.make_tensor("B", types[2], [inner, cols], weights.tobytes(), raw=True), *constants])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


# The model's products for a text of 32, 128 and 256 pieces: attention's projections
# (384 -> 384) and the feed-forward layers' (384 -> 1536 -> 384).
SHAPES = [(rows, inner, cols) for rows in (32, 128, 256) for inner, cols in ((384, 384), (384, 1536), (1536, 384))]


def speed(repeats: int = 200) -> dict:
    """The integer products against fp32 ones of the same shapes (onnxruntime's MatMul, and
    torch's, which the fp32 model runs on), one thread each: medians in microseconds, and
    the int8 kernel's multiply-adds a second over torch's over all shapes."""
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows_out, int8_total, torch_total = [], 0.0, 0.0
    for rows, inner, cols in SHAPES:
        integer = _product_session(rng.integers(-64, 65, (inner, cols), dtype=np.int8), threads=1)
        floats = rng.standard_normal((inner, cols)).astype(np.float32)
        fp32 = _product_session(floats, threads=1)
        a8 = rng.integers(0, 256, (rows, inner), dtype=np.uint8)
        a32 = rng.standard_normal((rows, inner)).astype(np.float32)
        at, bt = torch.from_numpy(a32), torch.from_numpy(floats)
        times = [_median(lambda: integer.run(None, {"A": a8}), repeats),
                 _median(lambda: fp32.run(None, {"A": a32}), repeats),
                 _median(lambda: torch.matmul(at, bt), repeats)]
        int8_total, torch_total = int8_total + times[0], torch_total + times[2]
        rows_out.append({"shape": [rows, inner, cols], "int8_us": round(times[0] * 1e6, 1),
                         "fp32_onnx_us": round(times[1] * 1e6, 1), "fp32_torch_us": round(times[2] * 1e6, 1),
                         "int8_over_torch": round(times[2] / times[0], 2)})
    return {"products": rows_out, "int8_over_fp32_torch": round(torch_total / int8_total, 2)}


def _median(run, repeats: int) -> float:
    import time

    for _ in range(max(1, repeats // 10)):  # warm: the first runs pack weights and fault pages in
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


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
    parser.add_argument("--speed", action="store_true",
                        help="also time the integer products against fp32 ones of the model's shapes, one thread")
    args = parser.parse_args(argv)
    size = 64 * 1536
    result = {"results": size, "differ_8bit_weights": mismatches(8), "differ_7bit_weights": mismatches(7),
              "cpu_flags": cpu_flags(), "cpuid": cpuid_features()}
    if args.speed:
        result.update(speed())
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
    if not args.json and "products" in result:  # each shape and int8's gain over torch's fp32, on the one line
        result["products"] = ", ".join("x".join(map(str, p["shape"])) + f" {p['int8_over_torch']}x"
                                       for p in result["products"])
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v}" for k, v in result.items()))
    return 0 if result["differ_7bit_weights"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
