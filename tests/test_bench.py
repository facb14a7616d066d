"""scripts/bench's synthetic sizes: real vectors first, then noisy replicas that keep a
real-like neighbourhood (speed itself is never asserted in a test)."""

import numpy as np

from search.index.generations import current
from search.index.sentence_vectors import SentenceVectors
from tools.bench import NOISE, replicated


def test_replicas_follow_the_real_vectors_at_a_known_distance(seed_index):
    real = SentenceVectors.open(current(seed_index)).all()
    out = replicated(real, 3 * len(real) + 5)
    assert out.shape == (3 * len(real) + 5, real.shape[1])
    np.testing.assert_array_equal(out[:len(real)], real)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    cosine = (out[len(real):2 * len(real)] * real).sum(axis=1)
    expected = 1 / np.sqrt(1 + NOISE ** 2)  # 0.8: not duplicates (0.84), still each other's neighbours
    assert abs(cosine.mean() - expected) < 0.03
    assert not np.array_equal(out[len(real):2 * len(real)], out[2 * len(real):3 * len(real)])


def test_bench_folds_compares_flat_and_coded_passages_beside_an_ivf_base(tmp_path, embedder, capsys):
    import json

    from indexer import build
    from indexer.build import BuildOptions
    from tools import bench_folds

    from helpers import SEEDS

    index = tmp_path / "ivf"
    build([SEEDS], index, options=BuildOptions(vector_index="ivf"))
    assert bench_folds.main(["--index", str(index), "--deltas", "250,400", "--rounds", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["deltas"] for row in out["sizes"]] == [250, 400]
    for row in out["sizes"]:
        assert row["flat_us"] > 0 and row["coded_us"] > 0 and row["fold_code_ms"] >= 0
        # every cluster probed at this size: the two differ only by the 8-bit coding's rounding
        assert row["top10_shared"] >= 0.9
    assert bench_folds.main(["--index", str(index), "--deltas", "100"]) == 2
    assert "sizes above 200" in capsys.readouterr().err
    assert bench_folds.main(["--index", str(tmp_path / "nothing")]) == 2
    assert "bench-folds:" in capsys.readouterr().err
