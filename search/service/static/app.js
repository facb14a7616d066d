// The search page: asks GET /search and shows each passage with its answering sentence
// marked and every source that says it, linked to the document at that passage.
// Text from the index only ever goes in through textContent: never parsed as HTML.
"use strict";

const form = document.getElementById("search");
const box = document.getElementById("q");
const statusLine = document.getElementById("status");
const list = document.getElementById("results");

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

function source(citation) {
  const link = el("a", "source");
  const where = new URLSearchParams({start: citation.start, end: citation.end});
  link.href = `/read/${encodeURIComponent(citation.doc_id)}?${where}#passage`;
  link.textContent = citation.title || citation.doc_id;
  const details = [citation.source, `paragraph ${citation.paragraph}`, citation.author, citation.published]
    .filter(Boolean).join(" · ");
  const item = el("li");
  item.append(link, el("span", "details", ` — ${details}`));
  return item;
}

function show(body) {
  list.replaceChildren();
  statusLine.textContent = body.results.length
    ? `${body.results.length} passages for “${body.query}” (${body.took_ms} ms)`
    : `No passages found for “${body.query}”.`;
  for (const hit of body.results) {
    const item = el("li", "result");
    const sources = el("ul", "sources");
    sources.append(...hit.citations.map(source));
    item.append(passage(hit), sources);
    list.append(item);
  }
}

async function search(query, push) {
  statusLine.textContent = "Searching…";
  if (push) history.pushState({q: query}, "", `/?${new URLSearchParams({q: query})}`);
  try {
    const response = await fetch(`/search?${new URLSearchParams({q: query, k: 10})}`);
    const body = await response.json();
    if (!response.ok) {
      list.replaceChildren();
      statusLine.textContent = body.error ? body.error.message : `The service answered ${response.status}.`;
      return;
    }
    show(body);
  } catch (error) {
    statusLine.textContent = `The search service cannot be reached (${error.message}).`;
  }
}

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
  const query = new URLSearchParams(location.search).get("q");
  if (query) {
    box.value = query;
    search(query, false);
  }
}
window.addEventListener("popstate", fromAddress);
fromAddress();
