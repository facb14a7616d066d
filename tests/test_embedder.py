"""The ways the model runs: int8 ONNX (the default), plain fp32 torch and torch with bf16
products, with the real bundled model."""

import numpy as np
import pytest

from search.embedding import onnx_export
from search.embedding.embedder import (
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    Embedder,
    OnnxEmbedder,
    get_embedder,
    model_location,
)


@pytest.fixture(scope="module")
def paragraphs(searcher) -> list[str]:
    return [row[0] for row in searcher._store.rows("SELECT text FROM passages ORDER BY id")]


def test_int8_agrees_with_fp32_on_the_seed_paragraphs(paragraphs):
    fast, plain = get_embedder(backend="onnx-int8"), get_embedder(backend="torch")
    assert isinstance(fast, OnnxEmbedder) and isinstance(plain, Embedder)
    a, b = fast.embed(paragraphs), plain.embed(paragraphs)
    assert a.shape == b.shape == (len(paragraphs), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    cosine = (a * b).sum(axis=1)
    # per-token activation scales: 0.9960 / 0.9940 measured (0.993 / 0.988 with one scale
    # an input); an onnxruntime fusion that took one scale for all tokens gave 0.56
    assert cosine.mean() >= 0.995 and cosine.min() >= 0.99


def test_int8_counts_word_pieces_like_the_model(paragraphs):
    fast, plain = get_embedder(backend="onnx-int8"), get_embedder(backend="torch")
    long = " ".join(paragraphs)  # past the window: counted in full, not truncated
    for text in paragraphs[:10] + [long]:
        assert fast.count_tokens(text) == plain.count_tokens(text)
    assert fast.count_tokens(long) > fast.max_tokens == plain.max_tokens == 254
    # the chunker's batch of sentences: each counted as alone
    texts = paragraphs[:10] + [long, ""]
    assert fast.count_tokens_each(texts) == plain.count_tokens_each(texts) == [plain.count_tokens(t) for t in texts]


def test_a_text_embeds_the_same_whatever_it_is_embedded_with(paragraphs):
    fast = get_embedder(backend="onnx-int8")
    texts = [paragraphs[0], "Kim Jong Un", paragraphs[5] * 3] + paragraphs[10:20]
    together = fast.embed(texts, batch_size=4)
    alone = np.vstack([fast.embed([t]) for t in texts])  # as a question is embedded
    reversed_ = fast.embed(texts[::-1], batch_size=3)[::-1]
    # each text runs alone, so its neighbours, their order and the batch size change
    # nothing (in padded batches the short name came out at cosine 0.986 with itself)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together, reversed_, atol=1e-6)
    assert fast.embed([]).shape == (0, 384)


def test_backend_from_argument_or_environment(monkeypatch):
    with pytest.raises(ValueError, match="onnx-int8, torch"):
        get_embedder(backend="gpu")
    monkeypatch.setenv("SEARCH_EMBED_BACKEND", "torch")
    assert get_embedder().backend == "torch"
    monkeypatch.delenv("SEARCH_EMBED_BACKEND")
    assert get_embedder().backend == DEFAULT_BACKEND == "onnx-int8"


def test_export_is_cached_and_never_half_written(monkeypatch, tmp_path):
    location = onnx_export.Path(model_location(DEFAULT_MODEL))
    monkeypatch.setenv("SEARCH_CACHE", str(tmp_path / "broken"))

    def crash(source, out):
        (out / onnx_export.MODEL_FILE).write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "_export", crash)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.exported_model(location)
    assert list((tmp_path / "broken" / "onnx").iterdir()) == []  # nothing a later run would load

    monkeypatch.undo()
    monkeypatch.setenv("SEARCH_CACHE", str(tmp_path / "cache"))
    first = onnx_export.exported_model(location)
    made = (first / onnx_export.MODEL_FILE).stat().st_mtime_ns
    assert onnx_export.exported_model(location) == first
    assert (first / onnx_export.MODEL_FILE).stat().st_mtime_ns == made
    assert sorted(p.name for p in first.iterdir()) == ["export.json", "model_int8.onnx", "tokenizer.json"]


def test_a_model_the_export_does_not_understand_runs_on_torch(monkeypatch, tmp_path, recwarn):
    monkeypatch.setenv("SEARCH_CACHE", str(tmp_path / "cache"))  # its digests stay out of the user's cache
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    base = SentenceTransformer(model_location(DEFAULT_MODEL), device="cpu")
    extended = SentenceTransformer(modules=[base[0], base[1], Dense(384, 64)], device="cpu")
    extended.save(str(tmp_path / "with-dense"))
    embedder = get_embedder(str(tmp_path / "with-dense"), backend="onnx-int8")
    assert embedder.backend == "torch" and embedder.dimension == 64
    assert any("embedding with torch instead" in str(w.message) for w in recwarn)


def test_bf16_runs_only_where_the_cpu_has_bf16_instructions(monkeypatch, paragraphs, recwarn):
    from search.embedding import embedder as module

    # uncached: get_embedder keeps one embedder per process for each backend asked for
    monkeypatch.setattr(module, "native_bf16", lambda: False)
    fallback = module._embedder_for.__wrapped__(DEFAULT_MODEL, "torch-bf16")
    assert fallback is get_embedder(backend="torch") and fallback.backend == "torch"
    assert any("embedding with torch (fp32) instead" in str(w.message) for w in recwarn)

    monkeypatch.setattr(module, "native_bf16", lambda: True)
    bf16 = module._embedder_for.__wrapped__(DEFAULT_MODEL, "torch-bf16")
    assert isinstance(bf16, module.Bf16Embedder) and bf16.backend == "torch-bf16"
    texts = paragraphs[:12]  # emulated bf16 is slow on a CPU without it: a few suffice
    vectors, reference = bf16.embed(texts), get_embedder(backend="torch").embed(texts)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() >= 0.999
    assert not np.array_equal(vectors, reference)  # the products did run in bf16


def test_the_same_model_files_installed_again_reuse_their_export(monkeypatch, tmp_path):
    import shutil

    monkeypatch.setenv("SEARCH_CACHE", str(tmp_path / "cache"))
    location = onnx_export.Path(model_location(DEFAULT_MODEL))
    # a fresh virtualenv's copy: same bytes, other paths and mtimes
    reinstalled = tmp_path / "venv" / location.name
    shutil.copytree(location, reinstalled, copy_function=shutil.copy)
    key = onnx_export.export_key(location)
    assert onnx_export.export_key(reinstalled) == key

    hashed = []
    monkeypatch.setattr(onnx_export, "_file_digest", lambda path: hashed.append(path) or "x")
    assert onnx_export.export_key(location) == key and hashed == []  # digests remembered, not redone

    config = reinstalled / "config.json"
    config.write_text(config.read_text() + " ")  # changed contents: another export
    assert onnx_export.export_key(reinstalled) != key and hashed == [config]


def test_a_new_export_drops_exports_unused_for_a_month(monkeypatch, tmp_path):
    import os
    import time

    monkeypatch.setenv("SEARCH_CACHE", str(tmp_path / "cache"))
    exports = tmp_path / "cache" / "onnx"
    month_ago = time.time() - (onnx_export.UNUSED_DAYS + 1) * 86400
    for name in ("model-old", "model-in-use", ".model-killed-staging"):
        (exports / name).mkdir(parents=True)
        if not name.startswith("."):
            (exports / name / onnx_export.CONFIG_FILE).write_text("{}")
    for path in [*exports.rglob("*")]:
        os.utime(path, (month_ago, month_ago))
    onnx_export._mark_used(exports / "model-in-use")  # opened today by some process

    def fake_export(source, out):  # the real one is tested above; only the pruning is new here
        (out / onnx_export.CONFIG_FILE).write_text("{}")

    monkeypatch.setattr(onnx_export, "_export", fake_export)
    made = onnx_export.exported_model(onnx_export.Path(model_location(DEFAULT_MODEL)))
    assert sorted(p.name for p in exports.iterdir()) == sorted([made.name, "model-in-use"])


def test_the_int8_export_has_7_bit_weights_that_every_cpu_multiplies_exactly(embedder):
    # 8-bit weights overflow the int16 pair sums of the kernels for CPUs without VNNI, and
    # such CPUs then rank differently (tools/int8_check.py shows it under qemu's AVX2 CPU)
    import onnx
    from onnx import numpy_helper

    from search.embedding.embedder import _model_directory
    from search.embedding.onnx_export import MODEL_FILE, exported_model
    from tools.int8_check import mismatches

    model = onnx.load(str(exported_model(_model_directory(embedder.name)) / MODEL_FILE))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 36  # every MatMul of the six layers
    assert all(w.min() >= -64 and w.max() <= 64 for w in weights)  # pairs of u8 products stay in int16
    assert mismatches(7) == 0  # and this CPU computes such products exactly


def test_int8_check_times_the_products_it_names_and_computes_them():
    # scripts/int8-check --speed: what it times must be the products of the model's shapes,
    # computed (a float product equal to numpy's, an integer one exact), not empty runs
    from tools.int8_check import SHAPES, _product_session, speed

    rng = np.random.default_rng(1)
    floats = rng.standard_normal((384, 1536)).astype(np.float32)
    a = rng.standard_normal((32, 384)).astype(np.float32)
    np.testing.assert_allclose(_product_session(floats, threads=1).run(None, {"A": a})[0], a @ floats,
                               rtol=1e-4, atol=1e-3)
    timed = speed(repeats=1)
    assert [p["shape"] for p in timed["products"]] == [list(s) for s in SHAPES]
    assert all(p["int8_us"] > 0 and p["fp32_torch_us"] > 0 for p in timed["products"])
    assert timed["int8_over_fp32_torch"] > 0


def test_per_token_codes_are_the_explicit_rounding_of_each_row():
    # the export quantises each token with one QuantizeLinear per input: it must give the
    # codes round-half-to-even(x / (max|x| / 127)) + 128 of the formula the vectors were
    # defined by (EXPORT_VERSION 5), ties, zero rows and a row's negative peak included
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 384)).astype(np.float32)
    x[0, 0] = 0.0  # a padding-like row: no division by zero
    x[0, 1] = 0.0
    x[0, 1, :4] = [-127.0, 63.5, 62.5, -0.5]  # a negative peak, so a scale of exactly 1: exact .5 ties
    nodes = onnx_export.per_token_nodes("x", "codes", "scale", "zero_point")
    graph = helper.make_graph(
        nodes, "per_token", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, 384])],
        [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in
         (("codes", TensorProto.UINT8, [None, None, 384]), ("scale", TensorProto.FLOAT, [None, None, 1]),
          ("zero_point", TensorProto.UINT8, []))],
        onnx_export.per_token_constants())
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    codes, scale, zero_point = session.run(None, {"x": x})
    expected_scale = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-8)) / np.float32(127)
    expected = np.clip(np.round(x / expected_scale) + 128, 0, 255).astype(np.uint8)  # numpy rounds half to even
    assert np.array_equal(scale, expected_scale) and zero_point == 128
    assert np.array_equal(codes, expected)
    assert codes[0, 1, :4].tolist() == [1, 128 + 64, 128 + 62, 128]  # halves go to the even neighbour
    assert (codes[0, 0] == 128).all()
