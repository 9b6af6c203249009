// slmkit web page: plain JavaScript over the server's own /v1 API. No build step, no network beyond this server.
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("slmkit-api-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("slmkit-api-key", keyInput.value); refresh(); });

function headers(json = true) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (keyInput.value) h["X-API-Key"] = keyInput.value;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { headers: headers(!(options.body instanceof FormData)), ...options });
  const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && body.error && body.error.message) || `${response.status} ${response.statusText}`);
  return body;
}

async function guarded(button, work) {
  showError("");
  button.disabled = true;
  try { await work(); } catch (err) { showError(err.message); } finally { button.disabled = false; }
}

// ---- tabs ----
document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== tab.dataset.tab; });
}));

function fill(select, names) {
  const keep = select.value;
  select.replaceChildren(...names.map((n) => new Option(n, n)));
  if (names.includes(keep)) select.value = keep;
}

let registry = [];
async function refresh() {
  try {
    registry = (await api("/v1/registry")).entries;
  } catch (err) { showError(err.message); return; }
  const lms = registry.filter((e) => ["run", "model", "builtin"].includes(e.kind));
  // Fine-tuned runs and served model folders first: they are what this server is for.
  lms.sort((a, b) => (a.kind === "builtin") - (b.kind === "builtin"));
  fill($("sum-model"), lms.map((e) => e.name));
  fill($("clf-model"), registry.filter((e) => e.kind === "classifier").map((e) => e.name));
  renderRegistry();
}

// ---- summarize ----
$("summarize-btn").addEventListener("click", () => guarded($("summarize-btn"), async () => {
  $("summary").textContent = "…";
  const body = { dialogues: [$("dialogue").value], model: $("sum-model").value || null,
                 method: $("sum-method").value, max_new_tokens: Number($("sum-max").value) || 64 };
  try {
    const out = await api("/v1/summarize", { method: "POST", body: JSON.stringify(body) });
    $("summary").textContent = out.summaries[0] || "(empty summary)";
    $("summary").dataset.done = "1";
  } catch (err) { $("summary").textContent = ""; throw err; }
}));

$("csv-btn").addEventListener("click", () => guarded($("csv-btn"), async () => {
  const file = $("csv-file").files[0];
  if (!file) throw new Error("choose a CSV file with fname and dialogue columns first");
  const form = new FormData();
  form.append("file", file);
  form.append("method", $("sum-method").value);
  form.append("max_new_tokens", String(Number($("sum-max").value) || 64));
  if ($("sum-model").value) form.append("model", $("sum-model").value);
  let job = await api("/v1/jobs/summarize", { method: "POST", body: form });
  const bar = $("csv-progress");
  bar.hidden = false; $("csv-download").hidden = true;
  while (job.status === "queued" || job.status === "running") {
    bar.max = job.total; bar.value = job.done;
    $("csv-status").textContent = `${job.done}/${job.total}`;
    await new Promise((r) => setTimeout(r, 500));
    job = await api(`/v1/jobs/${job.id}`);
  }
  bar.value = job.done;
  $("csv-status").textContent = job.status === "done" ? `${job.total} dialogues summarized` : `failed: ${job.error}`;
  if (job.status === "done") {
    // A blob link, so the download also carries the API key header.
    const response = await fetch(job.result_url, { headers: headers(false) });
    const link = $("csv-download");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `summaries-${job.id}.csv`;
    link.hidden = false;
  }
}));

// ---- classify ----
function colour(score, scale) {
  const a = Math.min(1, Math.abs(score) / scale) * 0.75;
  return score >= 0 ? `rgba(22, 163, 74, ${a.toFixed(3)})` : `rgba(220, 38, 38, ${a.toFixed(3)})`;
}

function renderWords(text, words) {
  const box = document.createElement("p");
  const scale = Math.max(1e-9, ...words.map((w) => Math.abs(w.score)));
  let at = 0;
  for (const w of [...words].sort((a, b) => a.start - b.start)) {
    if (w.start < at) continue;
    box.append(text.slice(at, w.start));
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = text.slice(w.start, w.end);
    span.title = (w.score >= 0 ? "+" : "") + w.score.toFixed(4);
    span.dataset.score = String(w.score);
    span.style.backgroundColor = colour(w.score, scale);
    box.append(span);
    at = w.end;
  }
  box.append(text.slice(at));
  return box;
}

$("classify-btn").addEventListener("click", () => guarded($("classify-btn"), async () => {
  const model = $("clf-model").value;
  if (!model) throw new Error("no classifier artifact is served (start slmkit serve with a folder holding one)");
  const text = $("clf-text").value;
  const out = await api("/v1/classify", { method: "POST", body: JSON.stringify({ model, texts: [text], explain: true }) });
  const result = out.results[0];
  const box = $("clf-result");
  const head = document.createElement("p");
  head.innerHTML = "<strong>Label:</strong> ";
  const label = document.createElement("span");
  label.id = "clf-label";
  label.textContent = String(result.label);
  head.append(label);
  const probs = document.createElement("table");
  probs.className = "probs";
  for (const [name, p] of Object.entries(result.probabilities)) {
    const row = probs.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = p.toFixed(3);
  }
  box.replaceChildren(head, probs, renderWords(text, result.words || []));
}));

// ---- models ----
function keyMetrics(entry) {
  const m = entry.metrics || {};
  const flat = { ...m, ...(m.final_eval || {}), ...(m.test || {}), ...(m.train || {}) };
  return Object.entries(flat).filter(([, v]) => typeof v === "number").slice(0, 4)
    .map(([k, v]) => `${k}=${Number(v).toPrecision(4)}`).join(", ");
}

function renderRegistry() {
  const body = $("registry").tBodies[0];
  body.replaceChildren();
  for (const entry of registry) {
    const row = body.insertRow();
    row.className = "entry";
    [entry.name, entry.kind, entry.task || "", keyMetrics(entry)].forEach((v) => { row.insertCell().textContent = v; });
    row.addEventListener("click", () => showEntry(entry.name));
  }
}

function curve(history) {
  const series = [["loss", "#0969da"], ["eval_loss", "#cf222e"]]
    .map(([key, c]) => [key, c, history.filter((h) => typeof h[key] === "number" && typeof h.step === "number")
      .map((h) => [h.step, h[key]])]).filter(([, , pts]) => pts.length);
  if (!series.length) return null;
  const all = series.flatMap(([, , p]) => p);
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const W = 600, H = 240, P = 36;
  const sx = (x) => P + (W - 2 * P) * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
  const sy = (y) => H - P - (H - 2 * P) * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", W);
  svg.id = "learning-curve";
  series.forEach(([key, c, pts], i) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", c);
    svg.append(line);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", W - P - 80); t.setAttribute("y", P + 14 * i); t.setAttribute("fill", c);
    t.textContent = key;
    svg.append(t);
  });
  for (const [x, y, s] of [[P, H - 8, `step ${x0}`], [W - P - 50, H - 8, `step ${x1}`], [2, sy(y1) + 4, y1.toPrecision(3)],
    [2, sy(y0), y0.toPrecision(3)]]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.textContent = s;
    svg.append(t);
  }
  return svg;
}

async function showEntry(name) {
  showError("");
  const box = $("model-detail");
  try {
    const entry = await api(`/v1/registry/entry?name=${encodeURIComponent(name)}`);
    const title = document.createElement("h3");
    title.textContent = `${entry.name} (${entry.kind})`;
    const parts = [title];
    const svg = curve(entry.history || []);
    if (svg) parts.push(svg);
    for (const file of ["learning_curve.png", "curve.png"]) {
      if ((entry.files || []).includes(file)) {
        const img = document.createElement("img");
        img.alt = file; img.style.maxWidth = "100%";
        const response = await fetch(`/v1/registry/file?name=${encodeURIComponent(name)}&file=${file}`, { headers: headers(false) });
        img.src = URL.createObjectURL(await response.blob());
        parts.push(img);
      }
    }
    for (const [label, value] of [["Metrics", entry.metrics], ["Config", entry.config]]) {
      if (!value) continue;
      const h = document.createElement("h4"); h.textContent = label;
      const pre = document.createElement("pre"); pre.textContent = JSON.stringify(value, null, 2);
      parts.push(h, pre);
    }
    box.replaceChildren(...parts);
  } catch (err) { showError(err.message); }
}

refresh();
