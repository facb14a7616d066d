"""SEARCH_* settings: one typed reading of each, and the README's table is the module's."""

import re

import pytest

from search import settings

from helpers import ROOT

# names in the code that look like variables and are not
NOT_VARIABLES = {"SEARCH_FIELDS", "SEARCH_PARAMS", "SEARCH_PARAMETERS"}


@pytest.mark.parametrize("written,meant", [("off", False), ("No", False), ("0", False), ("FALSE", False),
                                           (" off ", False), ("on", True), ("yes", True), ("1", True)])
def test_a_switch_means_the_same_everywhere(written, meant):
    assert settings.flag(written) is meant
    assert settings.value("SEARCH_VERIFY", {"SEARCH_VERIFY": written}) is meant
    assert settings.value("SEARCH_EMBED_SPIN", {"SEARCH_EMBED_SPIN": written}) is meant


def test_values_are_typed_and_a_number_that_is_not_one_names_its_variable():
    assert settings.value("SEARCH_DEFAULT_K", {"SEARCH_DEFAULT_K": "7"}) == 7
    assert settings.value("SEARCH_DEFAULT_K", {}) == 5 and settings.value("SEARCH_DEFAULT_K", {"SEARCH_DEFAULT_K": " "}) == 5
    assert settings.value("SEARCH_API_KEY", {"SEARCH_API_KEY": "1e3"}) == "1e3"  # a string, as written
    assert settings.value("SEARCH_INDEX", {"SEARCH_INDEX": "2024"}) == "2024"
    assert settings.value("SEARCH_RELOAD_CHECK_S", {"SEARCH_RELOAD_CHECK_S": "0.5"}) == 0.5
    assert settings.value("SEARCH_EMBED_THREADS", {"SEARCH_TORCH_THREADS": "3"}) == 3  # the older name
    with pytest.raises(ValueError, match="SEARCH_DEFAULT_K must be an integer, got 'seven'"):
        settings.value("SEARCH_DEFAULT_K", {"SEARCH_DEFAULT_K": "seven"})
    with pytest.raises(ValueError, match="SEARCH_WORKERS must be an integer, got '2.5'"):
        settings.value("SEARCH_WORKERS", {"SEARCH_WORKERS": "2.5"})


def test_a_number_out_of_its_range_is_refused_naming_the_variable():
    assert settings.value("SEARCH_WRITER_DUTY", {"SEARCH_WRITER_DUTY": "1"}) == 1.0
    for raw in ("0", "-0.5", "1.5"):
        with pytest.raises(ValueError, match=f"SEARCH_WRITER_DUTY must be more than 0 and at most 1, got '{raw}'"):
            settings.value("SEARCH_WRITER_DUTY", {"SEARCH_WRITER_DUTY": raw})


def test_the_code_reads_no_variable_the_settings_module_does_not_describe():
    code = "\n".join(p.read_text(encoding="utf-8") for folder in ("search", "indexer", "scripts")
                     for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and p.suffix in ("", ".py"))
    read = set(re.findall(r"SEARCH_[A-Z][A-Z_]*[A-Z]", code)) - NOT_VARIABLES
    described = {name for s in settings.SETTINGS for name in (s.name, *s.aliases)}
    assert read - described == set()


def test_the_readme_configuration_table_is_the_settings_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.table() in readme, "regenerate it: python -m search.settings"
