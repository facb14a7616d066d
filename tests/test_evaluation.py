"""The evaluation harness: metrics against hand-computed values, and a whole run on a
small BEIR-format dataset made from the seeds and the reader questions."""

import json
import math

import pytest
from test_quality import seed_questions

from tools.evaluation import load_queries, main, metrics

from helpers import SEEDS


def test_metrics_match_hand_computed_values():
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1, "d4": 1}}
    run = {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d3": 3.0, "d9": 2.0, "d8": 1.0}}
    m = metrics(run, qrels)
    ndcg_q2 = 1 / (1 + 1 / math.log2(3))  # one of two relevant at rank 1
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + ndcg_q2) / 2, abs=1e-4)
    assert m["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall@10"] == pytest.approx((1.0 + 0.5) / 2)


def test_a_query_without_results_counts_as_zero():
    m = metrics({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}, "q2": {"d2": 1}})
    assert m["ndcg@10"] == pytest.approx(0.5) and m["recall@100"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def seed_dataset(tmp_path_factory):
    """The seeds as a BEIR corpus; each reader question relevant to its answer's documents."""
    root = tmp_path_factory.mktemp("beir")
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for path in sorted(SEEDS.glob("*.txt")):
            f.write(json.dumps({"_id": path.stem[:3], "title": "", "text": path.read_text(encoding="utf-8")}) + "\n")
    (root / "qrels").mkdir()
    with open(root / "queries.jsonl", "w", encoding="utf-8") as q, \
            open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for n, item in enumerate(seed_questions()):
            q.write(json.dumps({"_id": f"q{n}", "text": item["question"]}) + "\n")
            for doc in sorted({d for answer in item["answers"] for d in answer["docs"]}):
                r.write(f"q{n}\t{doc}\t1\n")
    return root


def test_evaluate_runs_every_query_and_reuses_its_index(seed_dataset, tmp_path, capsys):
    args = [str(seed_dataset), "--split", "test", "--json", "--cache", str(tmp_path)]
    results = {}
    for mode in ("dense", "lexical", "hybrid"):
        assert main(args + ["--mode", mode]) == 0
        out, err = capsys.readouterr()
        results[mode] = json.loads(out)
    assert "up to date" in err  # the second and third runs reused the first one's index
    queries, _ = load_queries(seed_dataset, "test")
    for mode, result in results.items():
        assert set(result) >= {"mode", "queries", "seconds", "ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert result["mode"] == mode and result["queries"] == len(queries)
        assert result["recall@100"] == 1.0  # five documents: every relevant one is retrieved
    assert results["hybrid"]["mrr@10"] >= 0.8
    # --mmr: the result lists users get, without MMR and with each weight, on the same index
    assert main(args + ["--mmr", "0.5"]) == 0
    lists = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["mmr"] for r in lists] == [None, 0.5]
    assert all(1 <= r["articles_in_10"] <= 5 and r["queries"] == len(queries) for r in lists)
    assert lists[0]["ndcg@10"] >= 0.8 and lists[0]["mrr@10"] == pytest.approx(results["hybrid"]["mrr@10"], abs=0.1)


def test_cross_validation_scores_each_week_with_the_setting_the_other_weeks_chose():
    from tools.evaluation import cross_validate, week_of

    assert week_of("2022-06-16") == "2022-W24" and week_of("2022-06-23") == "2022-W25"
    folds = {"a1": "w1", "a2": "w1", "b1": "w2"}
    # setting X wins week 1 and loses week 2, setting Y the other way round
    x = {"a1": {"ndcg@10": 1.0}, "a2": {"ndcg@10": 1.0}, "b1": {"ndcg@10": 0.0}}
    y = {"a1": {"ndcg@10": 0.5}, "a2": {"ndcg@10": 0.5}, "b1": {"ndcg@10": 0.9}}
    for scores in (x, y):
        for q in scores:
            scores[q].update({"mrr@10": scores[q]["ndcg@10"], "recall@10": 0.0, "recall@100": 0.0})
    result = cross_validate([({"name": "x"}, x), ({"name": "y"}, y)], folds)
    # week 1 is scored with y (the best on week 2), week 2 with x (the best on week 1)
    assert [c["name"] for c in result["chosen"]] == ["y", "x"]
    assert result["folds"] == 2 and result["ndcg@10"] == pytest.approx((0.5 + 0.5 + 0.0) / 3, abs=1e-4)


def test_evaluate_grid_and_folds(seed_dataset, tmp_path, capsys):
    # every seed question dated, in two weeks: two settings, and the cross-validated line
    dated = tmp_path / "dated"
    dated.mkdir()
    (dated / "qrels").mkdir()
    (dated / "corpus.jsonl").write_text((seed_dataset / "corpus.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    (dated / "qrels" / "test.tsv").write_text((seed_dataset / "qrels" / "test.tsv").read_text(encoding="utf-8"),
                                              encoding="utf-8")
    with open(seed_dataset / "queries.jsonl", encoding="utf-8") as src, \
            open(dated / "queries.jsonl", "w", encoding="utf-8") as out:
        for n, line in enumerate(src):
            out.write(json.dumps({**json.loads(line), "question_date": "2022-06-16" if n % 2 else "2022-06-23"}) + "\n")
    assert main([str(dated), "--json", "--cache", str(tmp_path / "cache"), "--weight", "document=0,0.4",
                 "--folds", "weeks"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["weights"]["document"] for line in lines[:2]] == [0.0, 0.4]
    assert lines[2]["cross_validation"] == "weeks" and lines[2]["folds"] == 2
    with pytest.raises(SystemExit):
        main([str(dated), "--weight", "nonsense=1"])
    assert "--weight takes NAME=V1,V2" in capsys.readouterr().err


def test_evaluate_the_seed_questions_passage_by_passage(tmp_path, capsys):
    from helpers import ROOT

    assert main([str(ROOT / "tests" / "data" / "seed_questions.json"), "--json", "--cache", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["questions"] == len(seed_questions())
    assert result["top3"] >= result["questions"] - 2 and result["first"] >= 0.8 * result["questions"]
    assert result["op_ed_cited_alone"] == 0


def test_a_split_or_dataset_that_is_not_there_is_named_without_a_traceback(tmp_path, capsys):
    (tmp_path / "qrels").mkdir()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (tmp_path / name).write_text("", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path), "--split", "dev"])
    assert exited.value.code == 2
    assert f"{tmp_path}: no qrels/dev.tsv; --split one of: test" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "no such dataset directory" in capsys.readouterr().err
