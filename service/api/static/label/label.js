// The labelling page: GET /labelling/queue for the next text, POST /feedback for its label. Texts and
// labels are put into the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let queue = [];
let current = null;
let meta = { labels: [], multi_label: false };
let labelled = 0;
const skipped = new Set();

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) result["Authorization"] = `Bearer ${key}`;
  return result;
}

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${answer.error || response.statusText}`);
  return answer;
}

function setStatus(message, error = false) {
  $("status").textContent = message;
  $("status").className = error ? "error" : "";
}

function failed(error) {
  const needsKey = / 401 /.test(error.message);
  if (needsKey) $("api-key-box").open = true;
  setStatus(needsKey ? `${error.message}: type this service's API key under "API key"` : error.message, true);
}

async function loadModels() {
  const answer = await api("GET", "/models");
  const select = $("model");
  select.replaceChildren();
  for (const model of answer.models) {
    const option = document.createElement("option");
    option.value = option.textContent = model.name;
    select.append(option);
  }
  const asked = new URLSearchParams(location.search).get("model");
  select.value = asked && answer.models.some((m) => m.name === asked) ? asked : answer.default_model;
}

async function refill() {
  const params = new URLSearchParams({ model: $("model").value, strategy: $("strategy").value, limit: "50" });
  const answer = await api("GET", `/labelling/queue?${params}`);
  meta = answer;
  queue = answer.items.filter((item) => !skipped.has(`${item.request_id}/${item.item}`));
}

function progress() {
  $("progress").textContent = `${labelled} labelled this session, ${queue.length} more in the queue`;
  document.body.dataset.labelled = String(labelled);
}

function show() {
  current = queue.shift() || null;
  progress();
  $("card").hidden = current === null;
  if (current === null) {
    setStatus("Nothing left to label for this model.");
    return;
  }
  setStatus("");
  $("text").textContent = current.text;
  const scores = $("scores");
  scores.replaceChildren();
  for (const [label, score] of Object.entries(current.scores).sort((a, b) => b[1] - a[1])) {
    const row = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(score * 100)}%`;
    const value = document.createElement("span");
    value.textContent = score.toFixed(3);
    row.append(name, bar, value);
    scores.append(row);
  }
  const choices = $("choices");
  choices.replaceChildren();
  meta.labels.forEach((label, index) => {
    const key = index < 9 ? String(index + 1) : "";
    if (meta.multi_label) {
      const box = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = label;
      input.checked = current.labels.includes(label);
      input.dataset.key = key;
      box.append(input, ` ${key ? `${key} · ` : ""}${label}`);
      choices.append(box);
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      button.dataset.key = key;
      button.textContent = `${key ? `${key} · ` : ""}${label}`;
      button.addEventListener("click", () => send([label]));
      choices.append(button);
    }
  });
  $("submit").hidden = !meta.multi_label;
}

async function send(labels) {
  if (current === null) return;
  const entry = { request_id: current.request_id, item: current.item, source: "label-page" };
  if (meta.multi_label) entry.labels = labels; else entry.label = labels[0];
  try {
    await api("POST", "/feedback", entry);
    labelled += 1;
    await next();
  } catch (error) {
    failed(error);
  }
}

function skip() {
  if (current === null) return;
  skipped.add(`${current.request_id}/${current.item}`);
  next().catch(failed);
}

async function next() {
  if (queue.length === 0) await refill();
  show();
}

async function restart() {
  try {
    await refill();
    show();
  } catch (error) {
    failed(error);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.type !== "checkbox") return;
  if (event.target instanceof HTMLSelectElement || current === null) return;
  if (event.key === "s") return skip();
  if (meta.multi_label) {
    if (event.key === "Enter") return send(checked());
    const box = document.querySelector(`#choices input[data-key="${event.key}"]`);
    if (box) box.checked = !box.checked;
    return;
  }
  const button = document.querySelector(`#choices button[data-key="${event.key}"]`);
  if (button) send([button.dataset.label]);
});

function checked() {
  return [...document.querySelectorAll("#choices input:checked")].map((box) => box.value);
}

document.addEventListener("DOMContentLoaded", () => {
  $("skip").addEventListener("click", skip);
  $("submit").addEventListener("click", () => send(checked()));
  $("model").addEventListener("change", () => { skipped.clear(); restart(); });
  $("strategy").addEventListener("change", restart);
  $("api-key").addEventListener("change", () => loadModels().then(restart).catch(failed));
  loadModels().then(restart).catch(failed);
});
