// The FashionNet page: upload or drop a photo, optionally drag a bbox, show the API's answers.
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// predict --visualize's colours and names, one per landmark slot (left darker).
const COLOURS = ["#c81e1e", "#ff6e6e", "#1e8c1e", "#6edc6e", "#1e3cc8", "#6e96ff", "#be7800", "#ffbe3c"];
const SHORT = ["LC", "RC", "LS", "RS", "LW", "RW", "LH", "RH"];
let info = {index_size: 0, top_k: 5};
let file = null, size = null, bbox = null, serial = 0;

fetch("/v1/info").then((r) => r.json()).then((i) => {
  info = i;
  $("model").textContent = `step ${i.step}` + (i.index_size ? ` · gallery of ${i.index_size}` : "");
});

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function el(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function choose(f) {
  if (!f) return;
  file = f; bbox = null;
  const url = URL.createObjectURL(f);
  const probe = new Image();
  probe.onload = () => {
    size = [probe.naturalWidth, probe.naturalHeight];
    const svg = $("photo");
    svg.setAttribute("viewBox", `0 0 ${size[0]} ${size[1]}`);
    const picture = $("picture");
    picture.setAttribute("href", url);
    picture.setAttribute("width", size[0]);
    picture.setAttribute("height", size[1]);
    $("stage").hidden = false;
    drawBox();
    analyse();
  };
  probe.onerror = () => { size = null; analyse(); };  // the server names what is wrong
  probe.src = url;
}

async function post(path, extra) {
  const form = new FormData();
  form.append("image", file, file.name);
  if (bbox) form.append("bbox", bbox.map((v) => v.toFixed(1)).join(","));
  for (const [k, v] of Object.entries(extra || {})) form.append(k, v);
  const response = await fetch(path, {method: "POST", body: form});
  const body = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function analyse() {
  const mine = ++serial;
  status("Working…");
  try {
    const record = await post("/v1/predict", {top_k: info.top_k});
    if (mine !== serial) return;
    showRecord(record);
    if (info.index_size) {
      const found = await post("/v1/retrieve", {k: Math.min(8, info.max_k)});
      if (mine !== serial) return;
      showGallery(found.results);
    }
    status("");
  } catch (e) {
    if (mine === serial) status(e.message, true);
  }
}

function showRecord(record) {
  $("right").hidden = false;
  $("clothes").textContent = record.clothes_type ? `(${record.clothes_type}-body)` : "";
  bars($("categories"), record.category.map((c) => [c.name, c.probability]));
  const rows = $("attributes").tBodies[0];
  rows.replaceChildren(...record.attributes.map((a) => {
    const tr = document.createElement("tr");
    for (const text of [a.name, a.type || "", a.probability.toFixed(3)]) {
      tr.appendChild(document.createElement("td")).textContent = text;
    }
    return tr;
  }));
  const marks = $("marks");
  marks.replaceChildren();
  const r = Math.max(4, Math.min(record.width, record.height) / 45);
  record.landmarks.forEach((m, slot) => {
    if (!m.applies) return;  // slots the clothes type lacks, as predict --visualize
    const g = el("g", {class: `mark ${m.visible ? "visible" : "invisible"}`, "data-name": m.name}, marks);
    const colour = COLOURS[slot];
    if (m.visible) {
      el("circle", {cx: m.x, cy: m.y, r, fill: colour, stroke: "#fff", "stroke-width": r / 3}, g);
    } else {
      el("circle", {cx: m.x, cy: m.y, r, fill: "none", stroke: colour, "stroke-width": r / 3}, g);
      el("path", {d: `M${m.x - r},${m.y - r}L${m.x + r},${m.y + r}M${m.x - r},${m.y + r}L${m.x + r},${m.y - r}`,
                  stroke: colour, "stroke-width": r / 3}, g);
    }
    const label = el("text", {x: m.x + r * 1.3, y: m.y - r * .4, fill: colour, "font-size": r * 2.2,
                              "stroke-width": r / 3}, g);
    label.textContent = SHORT[slot];
    el("title", {}, g).textContent = `${m.name}: p(visible) ${m.probability_visible.toFixed(2)}`;
  });
}

function bars(list, items) {
  list.replaceChildren(...items.map(([name, p]) => {
    const li = document.createElement("li");
    const bar = li.appendChild(document.createElement("span"));
    bar.className = "bar"; bar.style.width = `${(100 * p).toFixed(1)}%`;
    li.appendChild(document.createElement("span")).textContent = name;
    const pv = li.appendChild(document.createElement("span"));
    pv.className = "p"; pv.textContent = p.toFixed(3);
    return li;
  }));
}

function showGallery(results) {
  $("similar").hidden = false;
  $("gallery").replaceChildren(...results.map((r) => {
    const figure = document.createElement("figure");
    const img = figure.appendChild(document.createElement("img"));
    img.src = r.thumbnail; img.alt = r.path; img.title = r.path; img.loading = "lazy";
    figure.appendChild(document.createElement("figcaption")).textContent = `#${r.rank} ${r.score.toFixed(3)}`;
    return figure;
  }));
}

// The bbox: drag on the photo (mouse, pen or finger), in the photo's own pixels.
function point(event) {
  const svg = $("photo");
  const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(svg.getScreenCTM().inverse());
  return [Math.max(0, Math.min(size[0], p.x)), Math.max(0, Math.min(size[1], p.y))];
}
function drawBox(from, to) {
  const box = $("box");
  const b = from ? [Math.min(from[0], to[0]), Math.min(from[1], to[1]), Math.max(from[0], to[0]), Math.max(from[1], to[1])] : bbox;
  box.setAttribute("visibility", b ? "visible" : "hidden");
  if (!b) return;
  box.setAttribute("x", b[0]); box.setAttribute("y", b[1]);
  box.setAttribute("width", b[2] - b[0]); box.setAttribute("height", b[3] - b[1]);
  return b;
}
let dragFrom = null;
$("photo").addEventListener("pointerdown", (e) => { if (size) { dragFrom = point(e); $("photo").setPointerCapture(e.pointerId); } });
$("photo").addEventListener("pointermove", (e) => { if (dragFrom) drawBox(dragFrom, point(e)); });
$("photo").addEventListener("pointerup", (e) => {
  if (!dragFrom) return;
  const b = drawBox(dragFrom, point(e));
  dragFrom = null;
  if (b[2] - b[0] >= 4 && b[3] - b[1] >= 4) { bbox = b; analyse(); } else drawBox();
});
$("clear").addEventListener("click", () => { bbox = null; drawBox(); analyse(); });

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files[0]); });
