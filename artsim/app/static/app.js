// The page of `artsim serve`: an image in, the most similar originals out; one chosen, its comparison.
// Plain DOM, no framework, nothing loaded from elsewhere; every text from the server goes in as text.
"use strict";

const $ = (id) => document.getElementById(id);
let query = null;  // the File being searched

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(message) { $("status").textContent = message; }

async function post(path, form) {
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form });
  } catch (exc) {
    throw new Error(`the server cannot be reached (${exc.message})`);
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { const body = await response.json(); detail = `${body.detail || body.error} (${response.status})`; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function verdictText(payload) {
  // The verdict as the server words it (verdict_text): compare's sentence, or a search hit's, judged by the
  // thresholds of the ranking's own scorers and naming them, the precision and the held-out pairs beneath.
  return payload.verdict_text || "";
}

async function loadRankings() {
  // The rankings the server offers (GET /health), its default chosen; without them the server's default is used.
  try {
    const response = await fetch("/health");
    if (!response.ok) return;
    const health = await response.json();
    const select = $("by");
    for (const name of health.search_by || []) {
      const option = element("option", "", name);
      option.value = name;
      option.selected = name === health.default_by;
      select.append(option);
    }
  } catch (_) { /* the search still runs, by the server's default */ }
}

async function search(file) {
  query = file;
  showError("");
  $("comparison-section").hidden = true;
  $("query-image").src = URL.createObjectURL(file);
  $("query-name").textContent = file.name;
  const form = new FormData();
  form.append("image", file);
  form.append("top_k", $("top-k").value || "5");
  if ($("by").value) form.append("by", $("by").value);
  setStatus("Searching…");
  try {
    const found = await (await post("/search", form)).json();
    showResults(found);
    const note = found.threshold_note ? ` ${found.threshold_note}` : "";
    const shown = `${found.results.length} of ${found.candidates} originals shown`;
    setStatus(`${shown}, best first, ranked by ${found.by}.${note}`);
  } catch (exc) {
    $("results-section").hidden = true;
    setStatus("");
    showError(`Search failed: ${exc.message}`);
  }
}

function showResults(found) {
  const list = $("results");
  list.replaceChildren();
  for (const hit of found.results) {
    const button = element("button", "result");
    button.type = "button";
    button.setAttribute("aria-pressed", "false");
    button.dataset.id = hit.id;
    const image = element("img");
    image.src = `/original/${encodeURIComponent(hit.id)}`;
    image.alt = hit.title || "an original";
    image.loading = "lazy";
    const caption = element("div", "caption");
    caption.append(element("span", "score", hit.score.toFixed(3)));
    const verdict = verdictText(hit);
    if (verdict) caption.append(element("div", hit.likely_derived ? "verdict derived" : "verdict", verdict));
    caption.append(element("div", "title", [hit.title, hit.artist].filter(Boolean).join(" — ") || hit.id));
    button.append(image, caption);
    button.addEventListener("click", () => compare(hit, button));
    const item = element("li");
    item.append(button);
    list.append(item);
  }
  if (!found.results.length) list.append(element("li", "", "No usable original in the collection."));
  $("results-section").hidden = false;
}

async function compare(hit, button) {
  for (const other of document.querySelectorAll(".result")) other.setAttribute("aria-pressed", String(other === button));
  showError("");
  const form = () => { const f = new FormData(); f.append("a", query); f.append("b_original", hit.id); return f; };
  setStatus("Comparing…");
  try {
    const [payload, plot] = await Promise.all([
      post("/compare", form()).then((r) => r.json()),
      post("/plot", form()).then((r) => r.blob()),
    ]);
    showScores(payload);
    $("plot").src = URL.createObjectURL(plot);
    $("comparison-section").hidden = false;
    setStatus("");
    $("comparison-title").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (exc) {
    setStatus("");
    showError(`Comparison failed: ${exc.message}`);
  }
}

function showScores(payload) {
  const rows = [["model score", payload.model_score.toFixed(4)], ["descriptor score", payload.descriptor_score.toFixed(4)]];
  for (const [name, value] of Object.entries(payload.similarities)) {
    rows.push([`${name} similarity`, `${value.toFixed(3)} (weight ${payload.weights[name]})`]);
  }
  const verdict = verdictText(payload);
  if (verdict) rows.unshift(["verdict", verdict]);
  const list = $("scores");
  list.replaceChildren();
  for (const [name, value] of rows) list.append(element("dt", "", name), element("dd", "", value));
}

function chosen(files) {
  if (!files || !files.length) return;
  if (!files[0].type.startsWith("image/") && files[0].type !== "") {
    showError(`${files[0].name} is not an image (${files[0].type}).`);
    return;
  }
  search(files[0]);
}

document.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  loadRankings();
  $("by").addEventListener("change", () => { if (query) search(query); });
  $("file").addEventListener("change", (event) => chosen(event.target.files));
  drop.addEventListener("keydown", (event) => {
    if (event.target === drop && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); $("file").click(); }
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); chosen(event.dataTransfer.files); });
});
