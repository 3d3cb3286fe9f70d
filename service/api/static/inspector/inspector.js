// The inspector page: calls the service's public API and draws what it answers. No framework, no build
// step, nothing fetched from another origin. Every string from a user or a model goes into the page as
// text (textContent, createTextNode, SVG text nodes), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
const HEATMAP_UNITS = 24;

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function svgElement(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = answer.error || response.statusText;
    throw new Error(`${method} ${path}: ${response.status} ${reason}`);
  }
  return answer;
}

const format = (value, digits = 3) => (typeof value === "number" ? value.toFixed(digits) : "n/a");

// -- models and the model card ----------------------------------------------------------------------

async function loadModels() {
  const listing = await api("GET", "/models");
  const select = $("model");
  select.replaceChildren();
  for (const model of listing.models) {
    const option = element("option", { value: model.name }, `${model.name} (${model.state})`);
    if (model.name === listing.default_model) option.selected = true;
    if (model.state !== "ready") option.disabled = true;
    select.append(option);
  }
  await showCard(select.value);
}

function addFact(list, term, value) {
  list.append(element("dt", {}, term), element("dd", {}, value === undefined || value === null ? "n/a" : String(value)));
}

function distributionText(spread, digits) {
  if (!spread) return "not recorded";
  return ["p10", "p50", "p90", "p99", "max"].map((key) => `${key} ${format(spread[key], digits)}`).join(" · ");
}

// The rollout of /models/{name}: "stable → 3 · canary → 4 (10 %)", what is not served, the last change.
function aliasesText(rollout) {
  if (!rollout || rollout.error) return rollout ? rollout.error : "none";
  const weights = rollout.weights || {};
  const named = Object.entries(rollout.aliases || {}).map(
    ([alias, version]) => `${alias} → ${version}` + (alias in weights ? ` (${weights[alias]} %)` : ""),
  );
  for (const [alias, why] of Object.entries(rollout.not_served || {})) named.push(`${alias} not served: ${why}`);
  const last = (rollout.history || []).at(-1);
  if (last) named.push(`last change: ${last.action} ${last.alias || ""} ${last.from ?? "–"} → ${last.to ?? "–"} by ${last.who} at ${last.at}`);
  return named.length ? named.join(" · ") : "none";
}

function shadowText(rollout) {
  const shadow = rollout && rollout.shadow;
  return shadow ? `version ${shadow.version} on ${shadow.percent} % of requests` : "none";
}

async function showCard(name) {
  const body = $("card-body");
  body.replaceChildren();
  if (!name) return;
  const model = await api("GET", `/models/${encodeURIComponent(name)}`);
  const facts = element("dl", { class: "card-grid" });
  addFact(facts, "Model", `${model.name} version ${model.version}`);
  addFact(facts, "Task", model.task);
  addFact(facts, "Labels", (model.labels || []).join(", "));
  const tokenizer = model.tokenizer || {};
  addFact(facts, "Tokenizer", `${tokenizer.mode}, lowercase ${tokenizer.lowercase}, max_length ${tokenizer.max_length}, vocabulary ${tokenizer.vocab_size}`);
  const dimensions = model.dimensions || {};
  const shape = ["embedding_dim", "hidden_dim", "num_layers", "bidirectional", "pooling", "cell"]
    .filter((key) => key in dimensions)
    .map((key) => `${key} ${dimensions[key]}`)
    .join(", ");
  addFact(facts, "Dimensions", shape);
  const parameters = model.parameters || {};
  addFact(facts, "Parameters", parameters.total);
  for (const [layer, count] of Object.entries(parameters.per_layer || {})) {
    // bundles name the recurrent stack by its cell (lstm, gru, rnn) and write its arithmetic under
    // recurrent_formula; bundles written before the GRU and RNN cells wrote it under lstm_formula
    const recurrent = layer === parameters.cell ? parameters.recurrent_formula : undefined;
    const formula = parameters[`${layer}_formula`] || recurrent;
    addFact(facts, `· ${layer}`, formula ? `${count} = ${formula}` : count);
  }
  const metrics = model.metrics || {};
  const baseline = metrics.baseline || {};
  addFact(facts, "Test accuracy", `${format(metrics.accuracy)} (baseline ${format(baseline.accuracy)})`);
  addFact(facts, "Test macro-F1", `${format(metrics.macro_f1)} (baseline ${format(baseline.macro_f1)})`);
  const drift = model.drift || {};
  addFact(facts, "Training unknown-token ratio", distributionText(drift.unknown_token_ratio, 3));
  addFact(facts, "Training tokens per text", distributionText(drift.tokens_per_text, 0));
  addFact(facts, "Aliases", aliasesText(model.rollout));
  addFact(facts, "Shadow", shadowText(model.rollout));
  body.append(facts);
}

// -- one explanation ---------------------------------------------------------------------------------

function showScores(answer) {
  const explained = answer.labels.join(", ");
  $("prediction").textContent = `Predicted: ${explained} (probability ${format(answer.score)})`;
  const rows = $("scores").querySelector("tbody");
  rows.replaceChildren();
  for (const [label, score] of Object.entries(answer.scores)) {
    const bar = element("span", { class: "bar", "aria-hidden": "true" });
    bar.style.width = `${Math.round(score * 120)}px`;
    const cell = element("td");
    cell.append(bar, document.createTextNode(format(score)));
    const row = element("tr");
    row.append(element("td", {}, label), cell);
    rows.append(row);
  }
}

function shade(attribution, largest) {
  if (attribution === 0) return "transparent";
  const strength = largest > 0 ? Math.min(1, Math.abs(attribution) / largest) : 0;
  const rgb = attribution >= 0 ? "37, 99, 235" : "220, 38, 38";
  return `rgba(${rgb}, ${(0.08 + 0.72 * strength).toFixed(3)})`;
}

// Which explained label the tokens are shaded for: one select, one option per explained label (a
// multi-label model explains every label it picked; the first is the default).
function showShadingChoice(text, answer) {
  const select = $("shading-label");
  select.replaceChildren(...answer.labels.map((label) => element("option", { value: label }, label)));
  select.disabled = answer.labels.length < 2;
  select.onchange = () => showTokens(text, answer, select.value);
}

// Offsets count code points (as the service does); JavaScript strings count UTF-16 units.
function showTokens(text, answer, label = answer.labels[0]) {
  const characters = Array.from(text);
  const container = $("tokens");
  container.replaceChildren();
  container.dataset.label = label;
  const effect = (token) => token.attributions[label];
  const largest = Math.max(0, ...answer.tokens.map((token) => Math.abs(effect(token))));
  let position = 0;
  answer.tokens.forEach((token, index) => {
    if (token.start > position) container.append(document.createTextNode(characters.slice(position, token.start).join("")));
    const attribution = effect(token);
    const sign = attribution > 0 ? "towards" : attribution < 0 ? "away" : "neutral";
    const span = element("span", {
      class: `token ${sign}${token.unk ? " unk" : ""}`,
      tabindex: "0",
      role: "button",
      "data-index": String(index),
      "data-start": String(token.start),
      "data-stop": String(token.stop),
      "data-attribution": String(attribution),
      "aria-label": `${token.text}: ${sign === "neutral" ? "no effect" : `pushes ${sign === "towards" ? "towards" : "away from"} ${label}`} by ${format(Math.abs(attribution), 4)}${token.unk ? ", unknown token" : ""}`,
      title: `${format(attribution, 4)} for ${label}${token.unk ? " (unknown)" : ""}`,
    }, characters.slice(token.start, token.stop).join(""));
    span.style.backgroundColor = shade(attribution, largest);
    span.addEventListener("click", () => showNeighbors(answer.model, token));
    span.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        showNeighbors(answer.model, token);
      }
    });
    container.append(span);
    position = Math.max(position, token.stop);
  });
  if (position < characters.length) container.append(document.createTextNode(characters.slice(position).join("")));
}

async function showNeighbors(model, token) {
  const box = $("neighbors");
  box.replaceChildren(element("p", {}, `Looking up ${token.text}…`));
  try {
    const answer = await api("POST", "/embed", { model, tokens: [token.text], neighbors: 8 });
    const entry = answer.results[0].tokens[0];
    const title = element("h3", {}, `Nearest neighbours of “${token.text}”${entry.unk ? " (unknown: the <unk> vector)" : ""}`);
    const list = element("ol", { id: "neighbor-list" });
    for (const neighbor of entry.neighbors || []) {
      list.append(element("li", {}, `${neighbor.token} (${format(neighbor.similarity)})`));
    }
    box.replaceChildren(title, list);
  } catch (error) {
    box.replaceChildren(element("p", { class: "error" }, error.message));
  }
}

function showTrajectory(answer) {
  const holder = $("trajectory");
  holder.replaceChildren();
  const path = answer.trajectory;
  if (!path) return;
  const labels = Object.keys(path.scores);
  const steps = answer.tokens.length;
  const width = 640, height = 240, left = 36, right = 110, top = 10, bottom = 28;
  const x = (index) => left + (steps <= 1 ? 0 : (index * (width - left - right)) / (steps - 1));
  const y = (value) => top + (1 - value) * (height - top - bottom);
  const summary = `Probability of each label after each token; the decision stops changing after token ${path.decision_point + 1} (${answer.tokens[path.decision_point].text}); ${path.flips.length} flip(s).`;
  const chart = svgElement("svg", { id: "trajectory-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary });
  chart.append(svgElement("title", {}, "Prefix trajectory"), svgElement("desc", {}, summary));
  for (const tick of [0, 0.5, 1]) {
    chart.append(svgElement("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), stroke: "#e5e7eb" }));
    chart.append(svgElement("text", { x: 4, y: y(tick) + 4, class: "axis" }, tick.toFixed(1)));
  }
  chart.append(svgElement("line", {
    x1: x(path.decision_point), x2: x(path.decision_point), y1: top, y2: height - bottom,
    stroke: "#6b7280", "stroke-dasharray": "4 3", class: "decision-point",
  }));
  labels.forEach((label, index) => {
    const colour = PALETTE[index % PALETTE.length];
    const points = path.scores[label].map((value, step) => `${x(step).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    chart.append(svgElement("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2, "data-label": label }));
    chart.append(svgElement("text", { x: width - right + 8, y: top + 14 * (index + 1), fill: colour }, label));
  });
  chart.append(svgElement("text", { x: left, y: height - 8, class: "axis" }, `token 1 … ${steps}`));
  holder.append(chart);
  $("trajectory-caption").textContent = summary;
}

function topUnits(rows, count) {
  const units = rows[0].length;
  const variance = [];
  for (let unit = 0; unit < units; unit++) {
    let sum = 0, squares = 0;
    for (const row of rows) { sum += row[unit]; squares += row[unit] * row[unit]; }
    const mean = sum / rows.length;
    variance.push([squares / rows.length - mean * mean, unit]);
  }
  return variance.sort((a, b) => b[0] - a[0]).slice(0, count).map((entry) => entry[1]).sort((a, b) => a - b);
}

function showHeatmap(tokens, states) {
  const holder = $("heatmap");
  holder.replaceChildren();
  const rows = states.hidden_states.slice(0, tokens.length);
  if (!rows.length) return;
  const units = topUnits(rows, Math.min(HEATMAP_UNITS, rows[0].length));
  const cell = 18, left = 90, top = 10;
  const width = left + units.length * cell + 10, height = top + rows.length * cell + 10;
  const summary = `Top-layer hidden states: ${rows.length} tokens (rows) by the ${units.length} most variable of ${rows[0].length} units (columns); blue positive, red negative.`;
  const map = svgElement("svg", { id: "heatmap-chart", viewBox: `0 0 ${width} ${height}`, width, role: "img", "aria-label": summary });
  map.append(svgElement("title", {}, "Hidden-state heatmap"), svgElement("desc", {}, summary));
  rows.forEach((row, index) => {
    map.append(svgElement("text", { x: 2, y: top + index * cell + 11, class: "axis" }, tokens[index].text.slice(0, 12)));
    units.forEach((unit, column) => {
      const value = Math.max(-1, Math.min(1, row[unit]));
      const colour = value >= 0 ? `rgba(37, 99, 235, ${value.toFixed(3)})` : `rgba(220, 38, 38, ${(-value).toFixed(3)})`;
      map.append(svgElement("rect", {
        x: left + column * cell, y: top + index * cell, width: cell - 1, height: cell - 1, fill: colour, class: "heat",
      }));
    });
  });
  holder.append(map);
  $("heatmap-caption").textContent = summary;
}

async function explain(event) {
  event.preventDefault();
  const model = $("model").value;
  const text = $("text").value;
  if (!text.trim()) {
    setStatus("Type a text first.", true);
    return;
  }
  const button = $("explain");
  button.disabled = true;
  setStatus("Explaining…");
  try {
    const answer = await api("POST", "/explain", { model, text, trajectory: true, truncate: true });
    const characters = Array.from(text);
    const explainedText = characters.slice(0, answer.tokens[answer.tokens.length - 1].stop).join("");
    const states = await api("POST", "/hidden-states", { model, text: explainedText });
    $("result").hidden = false;
    showScores(answer);
    showShadingChoice(text, answer);
    showTokens(text, answer);
    showTrajectory(answer);
    showHeatmap(answer.tokens, states.results[0]);
    $("neighbors").replaceChildren();
    const cut = answer.truncated ? ` (the first ${answer.num_tokens} of ${answer.num_tokens_before_truncation} tokens)` : "";
    setStatus(`Explained ${answer.num_tokens} tokens with ${answer.model} version ${answer.version}${cut}.`);
    document.body.dataset.explained = String(Date.now());
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("explain-form").addEventListener("submit", explain);
  $("model").addEventListener("change", () => showCard($("model").value).catch((error) => setStatus(error.message, true)));
  const listModels = () =>
    loadModels()
      .then(() => setStatus(""))
      .catch((error) => {
        const needsKey = / 401 /.test(error.message);
        if (needsKey) $("api-key-box").open = true;
        setStatus(needsKey ? `${error.message}: type this service's API key under "API key"` : error.message, true);
      });
  // The key is kept in the page only, never stored; models are listed as soon as typing pauses.
  let typing;
  $("api-key").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(listModels, 300);
  });
  listModels();
});
