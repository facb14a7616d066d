// The search page: asks GET /search and shows each passage with its answering sentence
// marked and every source that says it, linked to the document at that passage; "by
// story" asks GET /stories and shows each event as a timeline of its articles, each linked to
// its passage. The passage options shape the list: one per article, at most two per source,
// newest first.
// Text from the index only ever goes in through textContent: never parsed as HTML.
"use strict";

const form = document.getElementById("search");
const box = document.getElementById("q");
const statusLine = document.getElementById("status");
const list = document.getElementById("results");
const storyList = document.getElementById("stories");
const byStory = document.getElementById("by-story");
const shape = document.getElementById("shape");
// the result list's shape: each box sends its own name=value to GET /search (group=article,
// diversity=2, sort=date) and is kept in the page's address the same way
const shapes = [...shape.querySelectorAll("input")];

function shaped(params) {
  for (const box of shapes) if (box.checked) params.set(box.name, box.value);
  return params;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function passage(hit) {
  const p = el("p", "text");
  const h = hit.highlight;
  if (!h) {
    p.textContent = hit.text;
    return p;
  }
  // offsets count Unicode code points (as Python's str does), not UTF-16 units: slice the
  // text's code points, or an emoji before the sentence would shift the mark
  const points = Array.from(hit.text);
  const part = (a, b) => points.slice(a, b).join("");
  p.append(part(0, h.start), el("mark", "", part(h.start, h.end)), part(h.end));
  return p;
}

// a link to the document with the passage at start..end marked and scrolled into view
function toPassage(item) {
  const link = el("a", "source", item.title || item.doc_id);
  const where = new URLSearchParams({start: item.start, end: item.end});
  link.href = `/read/${encodeURIComponent(item.doc_id)}?${where}#passage`;
  return link;
}

function source(citation) {
  const link = toPassage(citation);
  const details = [citation.source, `paragraph ${citation.paragraph}`, citation.author, citation.published]
    .filter(Boolean).join(" · ");
  const item = el("li");
  item.append(link, el("span", "details", ` — ${details}`));
  return item;
}

function showStories(body) {
  list.replaceChildren();
  storyList.replaceChildren();
  statusLine.textContent = body.stories.length
    ? `${body.stories.length} stories for “${body.query}”`
    : `No stories found for “${body.query}”.`;
  for (const story of body.stories) {
    const section = el("section", "story");
    const dates = [...new Set([story.first_published, story.last_published].filter(Boolean))].join(" – ");
    const size = `${story.articles} article${story.articles === 1 ? "" : "s"}, ` +
      `${story.sources} source${story.sources === 1 ? "" : "s"}`;
    section.append(el("h2", "", story.label), el("p", "details", [size, dates].filter(Boolean).join(" · ")));
    const timeline = el("ol", "timeline");
    for (const entry of story.timeline) {
      const item = el("li");
      item.append(el("time", "", entry.published || "undated"), " ", toPassage(entry),
                  el("span", "details", ` — ${entry.source}`), el("p", "text", entry.text));
      timeline.append(item);
    }
    section.append(timeline);
    storyList.append(section);
  }
}

function show(body) {
  storyList.replaceChildren();
  list.replaceChildren();
  statusLine.textContent = body.results.length
    ? `${body.results.length} passages for “${body.query}” (${body.took_ms} ms)`
    : `No passages found for “${body.query}”.`;
  for (const hit of body.results) {
    const item = el("li", "result");
    const sources = el("ul", "sources");
    sources.append(...hit.citations.map(source));
    item.append(passage(hit), sources);
    if (hit.more && hit.more.length) {
      const n = hit.more.length;
      item.append(el("p", "more", `and ${n} more passage${n === 1 ? "" : "s"} of this article`));
    }
    list.append(item);
  }
}

async function search(query, push) {
  statusLine.textContent = "Searching…";
  const stories = byStory.checked;
  const address = stories ? new URLSearchParams({q: query, view: "stories"}) : shaped(new URLSearchParams({q: query}));
  if (push) history.pushState({q: query}, "", `/?${address}`);
  try {
    const response = await fetch(stories ? `/stories?${new URLSearchParams({q: query, k: 5})}`
                                         : `/search?${shaped(new URLSearchParams({q: query, k: 10}))}`);
    const body = await response.json();
    if (!response.ok) {
      list.replaceChildren();
      storyList.replaceChildren();
      statusLine.textContent = body.error ? body.error.message : `The service answered ${response.status}.`;
      return;
    }
    (stories ? showStories : show)(body);
  } catch (error) {
    statusLine.textContent = `The search service cannot be reached (${error.message}).`;
  }
}

// a story's timeline has its own order and one entry per article: the passage options do not apply
byStory.addEventListener("change", () => { shape.disabled = byStory.checked; });

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (box.value.trim()) search(box.value, true);
});

// "/" anywhere jumps to the search box, as on most search sites
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && document.activeElement !== box) {
    event.preventDefault();
    box.focus();
    box.select();
  }
});

function fromAddress() {
  const asked = new URLSearchParams(location.search);
  const query = asked.get("q");
  byStory.checked = asked.get("view") === "stories";
  for (const box of shapes) box.checked = asked.get(box.name) === box.value;
  shape.disabled = byStory.checked;
  if (query) {
    box.value = query;
    search(query, false);
  }
}
window.addEventListener("popstate", fromAddress);
fromAddress();
