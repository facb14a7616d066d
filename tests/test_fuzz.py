"""The live service fuzzed by schemathesis from its own /openapi.json (tools/fuzz.py):
no 5xx, no traceback, every answer as the document describes it (JSON errors included).
scripts/fuzz runs the same with more examples and runs."""

from tools.fuzz import fuzz

# A fixed seed keeps CI's run the same from one commit to the next; scripts/fuzz explores
# with fresh seeds (and its findings become fixes, and cases here).
SEED = 20261122


def test_fuzzed_service_never_fails_and_matches_its_openapi_document(seed_index):
    result = fuzz(seed_index, examples=100, seed=SEED)
    assert not result["failed_runs"], "\n".join(result["failed_runs"] + [result["first_traceback"] or ""])
    assert result["server_errors"] == 0 and result["tracebacks"] == 0, result["first_traceback"] or result
    assert result["generated"] >= 500 and result["requests"] >= result["generated"]
    # the fuzzer got past validation and the key check: documents were written and deleted
    assert {"200", "201", "400", "401", "404"} <= set(result["by_status"]), result["by_status"]
    assert result["passed"]


def test_openapi_document_describes_the_routes(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/", "/search", "/context", "/stories", "/stories/{story_id}", "/alerts",
                                 "/alerts/{alert_id}", "/alerts/{alert_id}/matches", "/documents",
                                 "/documents/{doc_id}", "/read/{doc_id}", "/health", "/metrics", "/openapi.json"}
    assert set(doc["paths"]["/documents/{doc_id}"]) == {"get", "put", "delete"}
    routes = {rule.rule for rule in client.application.url_map.iter_rules()} - {"/static/<path:filename>"}
    assert {r.replace("<doc_id:doc_id>", "{doc_id}").replace("<story_id>", "{story_id}")
            .replace("<alert_id>", "{alert_id}") for r in routes} == set(doc["paths"])
