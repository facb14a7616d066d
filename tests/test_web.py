"""The search page in a real headless Chromium (Debian's, driven by Playwright) against
the production server: type a question, see the right passage first, follow its
citation to the document at that passage. Screenshots go to artifacts/."""

import shutil

import pytest

from helpers import ROOT

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test "
                                                         "installs it where it can: root and apt-get)")
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def site(seed_index):
    from tools.served import gunicorn

    with gunicorn(seed_index, {"SEARCH_WORKERS": "1"}) as (port, _):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def test_ask_read_and_follow_the_citation(site, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(site + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # the box has the focus: just type
    page.keyboard.type("How many Russian casualties since 2022?")
    page.keyboard.press("Enter")
    first = page.locator("#results > li.result").first
    first.wait_for()
    assert "710,000" in first.locator(".text").inner_text()
    assert "710,000" in first.locator("mark").inner_text()  # the answering sentence is marked
    assert "query=" not in page.url and "q=How+many" in page.url  # the address can be shared
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-page.png"), full_page=True)

    sources = first.locator(".sources a")
    assert sources.count() == 2  # the op-ed and its translation say the same
    sources.first.click()
    page.wait_for_url("**/read/**")
    mark = page.locator("mark#passage")
    assert "710,000" in mark.inner_text()
    assert mark.is_visible() and page.evaluate(
        "(() => { const r = document.getElementById('passage').getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight; })()")  # scrolled to the passage
    page.screenshot(path=str(ARTIFACTS / "read-page.png"))
    page.go_back()
    page.locator("#results > li.result").first.wait_for()  # the results come back with the address
    assert page.input_value("#q") == "How many Russian casualties since 2022?"


def test_keyboard_and_phone(site, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(site + "/?q=KN-23")
    page.locator("#results > li.result").first.wait_for()
    assert "KN-23" in page.locator("#results > li.result").first.inner_text()
    # nothing wider than the phone's screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.locator("#results a").first.focus()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Control+A")
    page.keyboard.type("   ")
    page.keyboard.press("Enter")  # blank: nothing sent, the old results stay
    assert page.locator("#results > li.result").count() > 0
    page.fill("#q", "x" * 1000 + "y")  # the box takes 1,000 characters, as the service does
    assert len(page.input_value("#q")) == 1000
    page.fill("#q", "Who is Lukashenko?")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('status').textContent.includes('Who is Lukashenko?')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-phone.png"), full_page=True)


def test_by_story_shows_each_event_as_a_timeline(site, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(site + "/")
    page.check("#by-story")
    page.fill("#q", "the nightmare scenario for Russia and China")
    page.keyboard.press("Enter")
    story = page.locator("#stories > section.story").first
    story.wait_for()
    assert "view=stories" in page.url  # the address keeps the view
    entries = story.locator(".timeline > li")
    assert entries.count() >= 2  # the op-ed and its translation, at least
    titles = entries.locator("a").all_inner_texts()
    assert any("nightmare scenario" in t for t in titles)
    assert page.locator("#results > li").count() == 0
    assert page.locator("#per-article").is_disabled()  # the passage options are not a timeline's
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stories-page.png"), full_page=True)
    # an entry links to the passage it shows, not to the top of its article
    shown = " ".join(entries.first.locator("p.text").inner_text().split())
    entries.first.locator("a").click()
    page.wait_for_url("**/read/**")
    mark = page.locator("mark#passage")
    assert " ".join(mark.inner_text().split()) == shown and mark.is_visible()
    page.go_back()
    story.wait_for()
    page.uncheck("#by-story")
    page.click("button[type=submit]")
    page.locator("#results > li.result").first.wait_for()
    assert page.locator("#stories > section").count() == 0


def test_the_passage_options_shape_the_list_and_stay_in_the_address(site, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(site + "/")
    page.fill("#q", "North Korean soldiers in Kursk")
    page.keyboard.press("Enter")
    page.locator("#results > li.result").first.wait_for()
    plain = page.locator("#results > li.result").count()

    def documents():  # each result's first citation's document, from its link
        return [href.split("?")[0] for href in page.locator("#results > li.result").evaluate_all(
            "items => items.map(li => li.querySelector('.sources a').getAttribute('href'))")]

    assert len(set(documents())) < plain  # some article answers twice in the plain list
    page.check("#per-article")
    page.click("button[type=submit]")
    page.wait_for_url("**group=article**")
    page.locator("#results .more").first.wait_for()  # an article's other passages are counted
    shown = documents()
    assert len(shown) == len(set(shown)) <= 5  # one per article: the seeds are five
    page.reload()  # the address keeps the option
    page.locator("#results > li.result").first.wait_for()
    assert page.is_checked("#per-article") and not page.is_checked("#per-source")
    assert len(set(documents())) == page.locator("#results > li.result").count()


def test_page_uses_nothing_from_elsewhere(site, browser):
    page = browser.new_page()
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(site + "/?q=Lukashenko")
    page.locator("#results > li.result").first.wait_for()
    assert requested and all(url.startswith(site) for url in requested), requested


def test_a_page_on_another_origin_posts_a_json_search(site, seed_index, browser):
    # the page is served by one server, the API by another that allows its origin: the
    # browser sends a preflight first and refuses the POST unless it is answered in full
    from tools.served import gunicorn

    with gunicorn(seed_index, {"SEARCH_WORKERS": "1", "SEARCH_CORS_ORIGINS": site}) as (port, _):
        api = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(site + "/")
        answer = page.evaluate("""async (api) => {
            const r = await fetch(api + "/search", {method: "POST", headers: {"Content-Type": "application/json"},
                                                   body: JSON.stringify({query: "KN-23", k: 1})});
            return {status: r.status, body: await r.json()};
        }""", api)
        page.close()
    assert answer["status"] == 200
    assert "KN-23" in answer["body"]["results"][0]["text"]


def test_the_mark_holds_the_answering_sentence_after_an_emoji(tmp_path, browser):
    # offsets are code points; the page sliced them as UTF-16 units, and an astral
    # character (an emoji) before the sentence moved the mark by one
    from indexer import build
    from tools.served import gunicorn

    (tmp_path / "emoji.txt").write_text(
        "Harbour festival 🎉🎆 draws record crowds\n\nThe festival 🎉 opened on Friday with fireworks over the "
        "harbour. Organisers counted 40,000 visitors on the first night, a record for the town.\n",
        encoding="utf-8")
    build([tmp_path / "emoji.txt"], tmp_path / "index")
    with gunicorn(tmp_path / "index", {"SEARCH_WORKERS": "1"}) as (port, _):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?q=How+many+visitors+came+on+the+first+night")
        mark = page.locator("#results > li.result mark").first
        mark.wait_for()
        assert mark.inner_text().startswith("Organisers counted 40,000 visitors")
        page.close()
