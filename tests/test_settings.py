"""SEARCH_* settings: one way to read a switch, and the README's table lists every variable."""

import re

import pytest

from search import settings
from search.service.app import DEFAULTS

from helpers import ROOT

# names in the code that are not environment variables
NOT_VARIABLES = {"SEARCH_FIELDS", "SEARCH_PARAMS", "SEARCH_PARAMETERS"}
# app settings a user sets in code (create_app's config), not from the environment
INTERNAL = {"DEFAULT_K", "MAX_CONTENT_LENGTH", "MAX_DOCUMENT_BODY"}


@pytest.mark.parametrize("written,meant", [("off", False), ("No", False), ("0", False), ("FALSE", False),
                                           (" off ", False), ("on", True), ("yes", True), ("1", True)])
def test_a_switch_means_the_same_everywhere(written, meant):
    assert settings.flag(written) is meant


def test_an_integer_setting_names_itself_when_it_is_not_one():
    assert settings.integer("DEFAULT_K", "7") == 7
    with pytest.raises(ValueError, match="SEARCH_DEFAULT_K must be an integer, got 'seven'"):
        settings.integer("DEFAULT_K", "seven")


def test_the_readme_lists_every_variable_the_code_reads():
    code = "\n".join(p.read_text(encoding="utf-8") for folder in ("search", "indexer", "scripts")
                     for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and p.suffix in ("", ".py"))
    read = set(re.findall(r"SEARCH_[A-Z][A-Z_]*[A-Z]", code)) - NOT_VARIABLES
    read |= {f"SEARCH_{key}" for key in DEFAULTS} - {f"SEARCH_{key}" for key in INTERNAL}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Configuration"):readme.index("## Search quality")]
    listed = set(re.findall(r"`(SEARCH_[A-Z_]+)`", table))
    assert read - listed == set(), "variables the README's configuration table does not explain"
