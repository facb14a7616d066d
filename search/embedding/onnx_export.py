"""A sentence-transformers model exported to ONNX and quantised to int8, cached on disk.

sentence-transformers' own ONNX route needs `optimum-onnx`, which pins a transformers
older than the one sentence-transformers 6 requires, so the export is done here with the
same tools it uses underneath: `torch.onnx.export` of the model's transformer with its
pooling folded into the graph, then onnxruntime's dynamic int8 quantisation (per-channel
int8 weights, the configuration sentence-transformers ships as `model_qint8_avx512`).

An export is made once per model and kept under the cache directory, keyed by the model
files' contents and the library versions, and written atomically: a crash mid-export
leaves no half file that a later run would load. Making one drops those unused for a month.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from search import settings

# Bump when the exported graph or its config changes meaning.
# 3: attention traced in its plain (eager) form, not torch's SDPA (2 was a fused graph,
# reverted in 74bdb63: a version number is never reused, so its cached exports stay unread).
# 4: weights quantised to 7 bits (reduce_range), so that every CPU computes the same vectors.
# 5: activations quantised per token (per_token_activations), not per input.
EXPORT_VERSION = 5
# Bump when the exported graph changes but computes the same vectors: a new export is made
# (it is faster, say), while indexes built with this EXPORT_VERSION stay valid.
# 1: per-token codes by one QuantizeLinear per input, not six elementwise passes (the
# same codes bit for bit: tests/test_embedder.py).
GRAPH_REVISION = 1
MODEL_FILE = "model_int8.onnx"
CONFIG_FILE = "export.json"
TOKENIZER_FILE = "tokenizer.json"
POOLING_MODES = ("mean", "cls", "max")


class UnsupportedModel(Exception):
    """The model is not a plain transformer + pooling pipeline this export understands."""


def cache_root() -> Path:
    """Where exports are kept: $SEARCH_CACHE, else the user's cache directory."""
    configured = settings.value("SEARCH_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsearch"


def export_key(location: Path) -> str:
    """Identity of a model directory's contents plus the tools that export it: a changed
    file or an upgraded torch/onnxruntime makes a new export rather than reusing a stale
    one, while the same files installed again (a fresh virtualenv: new paths and mtimes)
    reuse the export they already have. Before, each reinstall left a 23 MB export behind."""
    # versions from package metadata: importing torch here would cost every search
    # process ~250 MB for a library it never calls once the export exists
    from importlib.metadata import version

    digest = hashlib.sha256(f"{EXPORT_VERSION}.{GRAPH_REVISION} {version('torch')} {version('onnxruntime')}".encode())
    known = _read_digests()
    seen = {}
    for path in sorted(p for p in location.rglob("*") if p.is_file() and ".git" not in p.parts):
        stamp = _stamp(path)
        seen[stamp] = known.get(stamp) or _file_digest(path)
        digest.update(f"{path.relative_to(location)} {seen[stamp]}\n".encode())
    if not seen.keys() <= known.keys():
        _write_digests(known, seen)
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# Content digests by file path, size and mtime: hashing the bundled model's 87 MB takes
# ~0.25 s, paid once per install rather than at every process start.
DIGESTS_FILE = "model-digests.json"


def _read_digests() -> dict[str, str]:
    try:
        known = json.loads((cache_root() / DIGESTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: hash again
        return {}
    return known if isinstance(known, dict) else {}


def _write_digests(known: dict[str, str], seen: dict[str, str]) -> None:
    """Add `seen` to the digests, dropping those of files gone or changed since; best effort
    (a read-only cache only means hashing again), written whole by a rename."""
    current = {stamp: value for stamp, value in known.items() if _still(stamp)} | seen
    directory = cache_root()
    staged = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=directory, prefix=f".{DIGESTS_FILE}-", delete=False) as f:
            staged = Path(f.name)
            json.dump(current, f)
        os.replace(staged, directory / DIGESTS_FILE)
    except OSError:
        if staged is not None:
            staged.unlink(missing_ok=True)


def _stamp(path: Path | str) -> str:
    """A file as a digest remembers it: its path, size and mtime."""
    stat = os.stat(path)
    return f"{path} {stat.st_size} {stat.st_mtime_ns}"


def _still(stamp: str) -> bool:
    """Whether the file a digest was taken of is still there, unchanged."""
    try:
        return _stamp(stamp.rsplit(" ", 2)[0]) == stamp
    except OSError:
        return False


def exported_model(location: Path) -> Path:
    """The directory holding `location`'s int8 ONNX export, exporting it first if needed."""
    location = Path(location).resolve()
    target = cache_root() / "onnx" / f"{location.name}-{export_key(location)}"
    if (target / CONFIG_FILE).exists():
        _mark_used(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _export(location, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished the same export first: use theirs
            if not (target / CONFIG_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(target.parent, keep=target)
    return target


# An export no process has opened for this long is dropped when another one is made: one
# per upgrade of torch, onnxruntime or the model would otherwise stay for good (23 MB each).
UNUSED_DAYS = 30


def _mark_used(export: Path) -> None:
    try:
        os.utime(export / CONFIG_FILE)
    except OSError:  # a read-only cache: its exports are simply never pruned
        pass


def _prune(directory: Path, keep: Path) -> None:
    """Remove exports (and staging left by a killed export) unused for UNUSED_DAYS. Each is
    renamed away before it is deleted, so nothing ever sees half of one."""
    cutoff = time.time() - UNUSED_DAYS * 86400
    for export in directory.iterdir():
        if export == keep or not export.is_dir():
            continue
        config = export / CONFIG_FILE
        try:
            if (config if config.exists() else export).stat().st_mtime > cutoff:
                continue
            doomed = export.with_name(f".pruned-{export.name}-{os.getpid()}")
            export.rename(doomed)
        except OSError:  # gone already, or another process is pruning it
            continue
        shutil.rmtree(doomed, ignore_errors=True)


def _export(location: Path, out: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = SentenceTransformer(str(location), device="cpu")
    dimension = (model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                 else model.get_sentence_embedding_dimension())
    transformer, pooling = _pipeline(model)
    tokenizer_file = location / TOKENIZER_FILE
    if not tokenizer_file.exists():
        raise UnsupportedModel(f"{location} has no {TOKENIZER_FILE} (a fast tokenizer)")
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids")
              if name in model.tokenizer.model_input_names]
    sample = model.tokenizer(["an example sentence to trace the graph"], return_tensors="pt")
    _plain_attention(transformer.auto_model)
    graph = _Pooled(transformer.auto_model, pooling, inputs).eval()
    fp32 = out / "model_fp32.onnx"
    # the tracer warns about every data-dependent branch of the model code: expected here
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, tuple(sample[name] for name in inputs), str(fp32), input_names=inputs,
                          output_names=["embedding"],
                          dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in inputs},
                                        "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a hint about static-quantisation preprocessing
    try:
        # reduce_range: 7-bit weights. onnxruntime's u8s8 kernels for CPUs without VNNI
        # (AVX2, AVX-512 without VNNI) add pairs of u8*s8 products in int16 with
        # saturation (vpmaddubsw), so 8-bit weights overflow there and those CPUs rank
        # differently from VNNI and AMX ones, whose int32 sums are exact. With weights in
        # -64..63 no pair can overflow, and every kernel computes the same integers.
        quantize_dynamic(str(fp32), str(fp32.with_suffix(".int8.onnx")), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True)
    finally:
        root.setLevel(level)
    per_token_activations(fp32.with_suffix(".int8.onnx"), out / MODEL_FILE)
    fp32.unlink()
    fp32.with_suffix(".int8.onnx").unlink()
    shutil.copyfile(tokenizer_file, out / TOKENIZER_FILE)
    config = {"export_version": EXPORT_VERSION, "source": str(location), "inputs": inputs, "pooling": pooling,
              "max_seq_length": int(model.max_seq_length),
              "dimension": int(dimension)}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# onnxruntime fuses MatMulInteger -> Cast -> Mul(scale) into MatMulIntegerToFloat, which
# takes one activation scale for the whole input: with a scale per token it computes
# garbage (cosine 0.56 with fp32), so sessions of this export turn that fusion off.
DISABLED_OPTIMIZERS = ["MatMulIntegerToFloatFusion"]


def per_token_activations(source: Path, target: Path) -> None:
    """Quantise each token's activations with a scale of its own, not one for the input.

    onnxruntime's dynamic quantisation (DynamicQuantizeLinear) scales a matrix product's
    input by its largest value over every token of every text in the batch: a text's
    vector then depended on what it was embedded with (cosine 0.977 for a sentence against
    itself alone), and even alone one large activation coarsens all the others (cosine
    with fp32 0.993). Here each DynamicQuantizeLinear becomes a symmetric per-token one:
    scale = max|x| / 127 over the token's hidden row, codes round(x / scale) + 128 as
    uint8 with zero point 128. The integer products stay exact on every kernel (|code -
    128| <= 127 times 7-bit weights: a pair sums below int16's limit), a token's vector no
    longer depends on any other token's magnitudes, and cosine with fp32 is 0.996.
    """
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    graph.initializer.extend(per_token_constants())
    nodes = []
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            nodes += per_token_nodes(node.input[0], *node.output)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def per_token_constants() -> list:
    """The initializers per_token_nodes reads."""
    import numpy as np
    from onnx import numpy_helper

    return [numpy_helper.from_array(np.array(value, dtype), name) for name, value, dtype in (
        ("per_token_127", 127.0, np.float32), ("per_token_eps", 1e-8, np.float32),
        ("per_token_zero_point", 128, np.uint8), ("per_token_flat", [-1], np.int64))]


def per_token_nodes(x: str, codes: str, scale: str, zero_point: str) -> list:
    """The nodes that quantise `x` per token (per_token_activations), reading per_token_constants.

    The codes come from one QuantizeLinear over the tokens as rows, with a scale and zero
    point per row (per-axis quantisation, axis 0): the same round-half-to-even codes as
    Div, Round, Add, Clip and Cast in turn, in one pass instead of five. The row's peak
    is the larger of its maximum and minus its minimum (no |x| tensor written)."""
    from onnx import helper

    t = f"{x}_per_token"
    return [
        helper.make_node("ReduceMax", [x], [f"{t}_high"], axes=[-1], keepdims=1),
        helper.make_node("ReduceMin", [x], [f"{t}_low"], axes=[-1], keepdims=1),
        helper.make_node("Neg", [f"{t}_low"], [f"{t}_minus_low"]),
        helper.make_node("Max", [f"{t}_high", f"{t}_minus_low", "per_token_eps"], [f"{t}_peak"]),
        helper.make_node("Div", [f"{t}_peak", "per_token_127"], [scale]),  # (tokens..., 1), for the products
        helper.make_node("Reshape", [scale, "per_token_flat"], [f"{t}_row_scale"]),
        helper.make_node("Shape", [f"{t}_row_scale"], [f"{t}_rows"]),
        helper.make_node("Expand", ["per_token_zero_point", f"{t}_rows"], [f"{t}_row_zero_point"]),
        helper.make_node("Flatten", [x], [f"{t}_by_row"], axis=-1),
        helper.make_node("QuantizeLinear", [f"{t}_by_row", f"{t}_row_scale", f"{t}_row_zero_point"],
                         [f"{t}_row_codes"], axis=0),
        helper.make_node("Shape", [x], [f"{t}_shape"]),
        helper.make_node("Reshape", [f"{t}_row_codes", f"{t}_shape"], [codes]),
        helper.make_node("Identity", ["per_token_zero_point"], [zero_point]),
    ]


def _plain_attention(encoder) -> None:
    """Trace attention as plain matmul-softmax-matmul rather than torch's SDPA: the SDPA
    export's extra mask and reshape nodes cost onnxruntime time at every layer. Same
    maths; with all-MiniLM-L6-v2 at one thread here the int8 model embeds passages ~20%
    faster (12.8 -> 15.4 a second) and one-line questions ~5% faster, cosine with fp32
    0.9913 against 0.9911 (scripts/bench prints both rates)."""
    if hasattr(encoder, "set_attn_implementation"):
        try:
            encoder.set_attn_implementation("eager")
        except (ValueError, NotImplementedError):  # a model with no eager attention: export as it is
            pass


def _pipeline(model) -> tuple[object, str]:
    """The model's transformer module and pooling mode, if it is transformer -> pooling
    (-> normalize, which the embedder always applies). Modules are told apart by class
    name: their import path moved between sentence-transformers versions."""
    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    if len(modules) < 2 or not hasattr(modules[0], "auto_model") or kinds[1] != "Pooling" \
            or any(kind != "Normalize" for kind in kinds[2:]):
        raise UnsupportedModel(f"only transformer -> pooling (-> normalize) models export to ONNX, not {kinds}")
    pooling = modules[1]
    mode = (pooling.get_pooling_mode_str() if hasattr(pooling, "get_pooling_mode_str")
            else getattr(pooling, "pooling_mode", None))
    if isinstance(mode, (tuple, list)) and len(mode) == 1:
        mode = mode[0]
    mode = getattr(mode, "value", mode)  # an enum member in some versions
    if mode not in POOLING_MODES:
        raise UnsupportedModel(f"pooling {mode!r} is not one of {', '.join(POOLING_MODES)}")
    return modules[0], mode


def _pooled_module():
    import torch

    class Pooled(torch.nn.Module):
        """The transformer with sentence-transformers' pooling folded in."""

        def __init__(self, encoder, pooling: str, inputs: list[str]):
            super().__init__()
            self.encoder, self.pooling, self.inputs = encoder, pooling, inputs

        def forward(self, *tensors):
            features = dict(zip(self.inputs, tensors))
            hidden = self.encoder(**features).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self.pooling == "cls":
                return hidden[:, 0]
            if self.pooling == "max":
                return (hidden + (mask - 1) * 1e9).max(dim=1).values
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    return Pooled


def _Pooled(encoder, pooling, inputs):  # noqa: N802 - a class made on demand (torch imports lazily)
    return _pooled_module()(encoder, pooling, inputs)
