// sepsiscope web app: uploads, live progress, the vessel review. No framework, nothing fetched
// from elsewhere. Text from the server is always set with textContent, never as HTML.
"use strict";

const CATEGORIES = ["none", "intermittent", "sluggish", "continuous"];
// Okabe-Ito, as measure's overlay: distinct on dark vessels and for colour-blind readers
const COLOURS = { continuous: "#56B4E9", sluggish: "#F0E442", intermittent: "#E69F00", none: "#CC79A7" };
const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text }; }
  if (!response.ok) {
    const error = new Error((body && body.detail && (typeof body.detail === "string" ? body.detail
      : JSON.stringify(body.detail))) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function fmt(value, digits = 2) {
  return value === null || value === undefined || Number.isNaN(value) ? "n/a" : Number(value).toFixed(digits);
}

// ---- progress pushed by the server (server-sent events) ----------------------------------------

function followJobs(onChange) {
  const source = new EventSource("/api/events");
  source.addEventListener("jobs", (event) => onChange(JSON.parse(event.data)));
  return source;
}

function showJob(container, job) {
  const state = container.querySelector(".state");
  if (state) { state.textContent = job.state; state.className = "state " + job.state; }
  const bar = container.querySelector("progress");
  if (bar) bar.value = job.progress || 0;
  const step = container.querySelector(".step");
  if (step) step.textContent = job.state === "running" ? job.step : "";
  const left = container.querySelector(".left");
  if (left) left.textContent = job.left_s !== null && job.left_s !== undefined ? `about ${job.left_s} s left` : "";
  const message = container.querySelector(".message");
  if (message) message.textContent = job.message || "";
}

// ---- the project page ---------------------------------------------------------------------------

function initIndex() {
  const form = document.getElementById("upload-form");
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  const log = document.getElementById("upload-log");
  let chosen = [];

  const pick = (files) => {
    chosen = Array.from(files);
    drop.querySelector("p strong").textContent = chosen.length
      ? `${chosen.length} file(s): ${chosen.map((f) => f.name).join(", ")}` : "Drop videos here";
  };
  input.addEventListener("change", () => pick(input.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files); });

  // the form remembers a camera's scale: choosing a known one fills µm/px and fps
  const camera = form.elements.camera;
  camera.addEventListener("change", () => {
    const option = Array.from(document.querySelectorAll("#cameras option")).find((o) => o.value === camera.value);
    if (option && option.dataset.umPerPx && !form.elements.um_per_px.value) form.elements.um_per_px.value = option.dataset.umPerPx;
    if (option && option.dataset.fps && !form.elements.fps.value) form.elements.fps.value = option.dataset.fps;
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) { log.prepend(el("li", { class: "error" }, "Choose or drop at least one file.")); return; }
    for (const file of chosen) {
      const params = new URLSearchParams({ filename: file.name });
      for (const name of ["patient_id", "site", "label", "camera", "um_per_px", "fps"]) {
        const value = form.elements[name].value.trim();
        if (value) params.set(name, value);
      }
      const line = el("li", {}, `${file.name}: uploading…`);
      log.prepend(line);
      try {
        const result = await api(`/api/videos?${params}`, { method: "POST", body: file,
          headers: { "Content-Type": "application/octet-stream" } });
        line.textContent = "";
        line.className = "ok";
        line.append(`${file.name}: accepted as `);
        const link = el("a", { href: result.url }, result.video_id);
        line.append(link, ` (${result.width}x${result.height}, ${fmt(result.duration_s, 1)} s); queued`);
      } catch (error) {
        line.className = "error";
        line.textContent = `${file.name}: refused: ${error.message}`;
      }
    }
    if (log.querySelector("li.error")) {
      const again = el("li", {}, "");
      const link = el("a", { href: "/" }, "Reload");
      again.append(link, " to see the accepted videos in the list.");
      log.prepend(again);
    } else {
      setTimeout(() => window.location.reload(), 600);
    }
  });

  const manifestForm = document.getElementById("manifest-form");
  manifestForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const line = el("li", {}, "reading the manifest…");
    log.prepend(line);
    try {
      const result = await api("/api/manifests", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ path: manifestForm.elements.path.value.trim() }) });
      line.className = result.failed.length ? "error" : "ok";
      line.textContent = `${result.added.length} video(s) added` + (result.failed.length
        ? `; ${result.failed.length} refused: ` + result.failed.slice(0, 3).map((f) => f.reason).join("; ") : "");
      if (result.added.length && !result.failed.length) setTimeout(() => window.location.reload(), 800);
      if (result.failed.length) {
        for (const f of result.failed) log.prepend(el("li", { class: "error" }, `${f.video}: ${f.reason}`));
      }
    } catch (error) {
      line.className = "error";
      line.textContent = `refused: ${error.message}`;
    }
  });

  followJobs((jobs) => {
    for (const job of jobs) {
      const row = document.querySelector(`#videos tr[data-video-id="${CSS.escape(job.video_id)}"]`);
      if (row) showJob(row, job);
    }
  });
}

// ---- the video page -----------------------------------------------------------------------------

function initVideo() {
  const videoId = document.body.dataset.videoId;
  let version = Number(document.body.dataset.version || 0);
  const line = document.querySelector(".job-line");
  const source = followJobs((jobs) => {
    const job = jobs.find((j) => j.video_id === videoId);
    if (!job) return;
    const was = line.querySelector(".state").textContent;
    showJob(line, job);
    if (was !== job.state && (job.state === "done" || job.state === "failed")) { source.close(); window.location.reload(); }
  });
  const requeue = document.getElementById("requeue");
  if (requeue) requeue.addEventListener("click", async () => { await api(`/api/videos/${videoId}/requeue`, { method: "POST" }); window.location.reload(); });

  const scaleForm = document.getElementById("scale-form");
  if (scaleForm) {
    scaleForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { um_per_px: Number(scaleForm.elements.um_per_px.value) };
      if (scaleForm.elements.fps.value) body.fps = Number(scaleForm.elements.fps.value);
      try {
        await api(`/api/videos/${videoId}/scale`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        window.location.reload();
      } catch (error) {
        scaleForm.append(el("p", { class: "warning" }, `Not accepted: ${error.message}`));
      }
    });
  }

  drawRolling();
  const scrub = document.getElementById("scrub");
  const frame = document.getElementById("frame");
  let pending = null;
  scrub.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(() => { frame.src = `/api/videos/${videoId}/frames/${scrub.value}.jpg`; }, 120);
  });

  const svgNode = document.getElementById("vessels");
  if (!svgNode) return;
  const stage = document.getElementById("stage");
  const panel = document.getElementById("selected");
  const message = document.getElementById("edit-message");
  const author = document.getElementById("author");
  author.value = localStorage.getItem("sepsiscope-author") || "";
  author.addEventListener("change", () => localStorage.setItem("sepsiscope-author", author.value));
  let vessels = [];
  let selected = null;
  let drawing = null;

  async function load() {
    const data = await api(`/api/videos/${videoId}/vessels`);
    vessels = data.vessels;
    svgNode.setAttribute("viewBox", `0 0 ${data.width} ${data.height}`);
    render(data);
  }

  function render(data) {
    svgNode.replaceChildren();
    const counts = Object.fromEntries(CATEGORIES.map((c) => [c, 0]));
    const scale = Math.max(1, data.width / 640);
    for (const pass of ["outline", "line", "hit"]) {
      for (const v of vessels) {
        const points = v.points.map(([r, c]) => `${c},${r}`).join(" ");
        const width = (v.small ? 1.2 : 2.2) * scale;
        const attrs = { points, "data-segment": v.segment };
        if (pass === "outline") Object.assign(attrs, { class: "outline", "stroke-width": width + 1.6 * scale });
        if (pass === "line") Object.assign(attrs, { class: "line" + (v.excluded ? " excluded" : "") + (selected === v.segment ? " selected" : ""),
          stroke: COLOURS[v.flow], "stroke-width": width });
        if (pass === "hit") Object.assign(attrs, { class: "hit", "stroke-width": Math.max(6, width * 4) });
        const node = svg("polyline", attrs);
        if (pass === "hit") node.addEventListener("click", () => choose(v.segment));
        svgNode.append(node);
        if (pass === "line" && !v.excluded) counts[v.flow] += 1;
      }
    }
    const legend = document.getElementById("legend");
    legend.replaceChildren(...CATEGORIES.map((c, i) => {
      const item = el("span");
      const swatch = el("i");
      swatch.style.background = COLOURS[c];
      item.append(swatch, `${i} ${c}: ${counts[c]}`);
      return item;
    }));
  }

  function choose(segment) {
    selected = segment;
    const v = vessels.find((x) => x.segment === segment);
    panel.hidden = false;
    document.getElementById("selected-text").textContent =
      `Vessel ${v.segment}${v.source === "added" ? " (drawn by a reviewer)" : ""}: ${v.flow}, ` +
      `${fmt(v.length_um, 0)} µm long, ${fmt(v.diameter_um, 0)} µm wide` +
      (v.velocity_um_per_s !== null ? `, ${fmt(v.velocity_um_per_s, 0)} µm/s` : "") +
      (v.excluded ? "; excluded" : "") + (v.edited ? "; edited" : "");
    document.getElementById("exclude").textContent = v.excluded ? "Include again" : (v.source === "added" ? "Remove" : "Exclude");
    for (const button of panel.querySelectorAll("[data-flow]")) button.classList.toggle("active", button.dataset.flow === v.flow);
    const kymo = document.getElementById("kymograph");
    kymo.hidden = !v.has_kymograph;
    if (v.has_kymograph) kymo.src = `/api/videos/${videoId}/kymograph/${v.segment}.png`;
    render({ width: svgNode.viewBox.baseVal.width, height: svgNode.viewBox.baseVal.height });
  }

  async function save(edits) {
    message.textContent = "saving…";
    try {
      const view = await api(`/api/videos/${videoId}/edits`, { method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ version, author: author.value, edits }) });
      version = view.review_version;
      showMetrics(view);
      message.textContent = `saved (version ${version})`;
      await load();
      if (selected !== null) choose(selected);
    } catch (error) {
      message.textContent = error.status === 409
        ? `Not saved: ${error.message}` : `Not saved: ${error.message}`;
      if (error.status === 409) {
        const reload = el("button", { type: "button" }, "Reload");
        reload.addEventListener("click", () => window.location.reload());
        message.append(" ", reload);
      }
    }
  }

  for (const button of panel.querySelectorAll("[data-flow]")) {
    button.addEventListener("click", () => save([{ action: "flow", segment: selected, flow: button.dataset.flow }]));
  }
  document.getElementById("exclude").addEventListener("click", () => {
    const v = vessels.find((x) => x.segment === selected);
    const action = v.source === "added" ? "remove" : (v.excluded ? "include" : "exclude");
    save([{ action, segment: selected }]);
  });

  // drawing a missed vessel: click points on the image, then Finish
  const addButton = document.getElementById("add-vessel");
  const finish = document.getElementById("finish-vessel");
  const cancel = document.getElementById("cancel-vessel");
  const setDrawing = (on) => {
    drawing = on ? [] : null;
    stage.classList.toggle("drawing", on);
    finish.hidden = cancel.hidden = !on;
    addButton.hidden = on;
    const draft = svgNode.querySelector(".draft");
    if (draft) draft.remove();
  };
  addButton.addEventListener("click", () => setDrawing(true));
  cancel.addEventListener("click", () => setDrawing(false));
  stage.addEventListener("click", (event) => {
    if (!drawing) return;
    const box = svgNode.getBoundingClientRect();
    const view = svgNode.viewBox.baseVal;
    const col = (event.clientX - box.left) * view.width / box.width;
    const row = (event.clientY - box.top) * view.height / box.height;
    drawing.push([row, col]);
    let draft = svgNode.querySelector(".draft");
    if (!draft) { draft = svg("polyline", { class: "draft", stroke: "#fff", "stroke-width": 2, fill: "none" }); svgNode.append(draft); }
    draft.setAttribute("points", drawing.map(([r, c]) => `${c},${r}`).join(" "));
  });
  finish.addEventListener("click", async () => {
    const points = drawing;
    setDrawing(false);
    if (!points || points.length < 2) { message.textContent = "A vessel needs at least two points."; return; }
    await save([{ action: "add", points_px: points, flow: "continuous" }]);
    selected = vessels[vessels.length - 1].segment;
    choose(selected);
  });

  load().catch((error) => { message.textContent = error.message; });
}

function showMetrics(view) {
  for (const m of view.metrics) {
    const row = document.querySelector(`#metrics tr[data-metric="${CSS.escape(m.metric)}"]`);
    if (!row) continue;
    const cell = row.querySelector(".value");
    cell.textContent = fmt(m.value);
    if (m.edited) { cell.append(" "); cell.append(el("em", {}, "edited")); }
    row.classList.toggle("abnormal", Boolean(m.abnormal));
  }
  document.getElementById("edit-count").textContent = view.n_edits ? `${view.n_edits} edit(s)` : "";
}

function drawRolling() {
  const plot = document.getElementById("rolling");
  if (!plot) return;
  const data = JSON.parse(document.getElementById("prediction-data").textContent || "{}");
  const rolling = data.rolling;
  if (!rolling || !rolling.time_s.length) return;
  const [w, h, pad] = [400, 160, 28];
  const tMax = Math.max(...rolling.time_s, 1e-6);
  const x = (t) => pad + (w - 2 * pad) * t / tMax;
  const y = (p) => h - pad + (2 * pad - h) * p;
  plot.append(svg("line", { x1: pad, x2: w - pad, y1: y(data.threshold), y2: y(data.threshold), stroke: "#c44e52", "stroke-dasharray": "4 3" }));
  rolling.time_s.forEach((t, i) => plot.append(svg("circle", { cx: x(t), cy: y(rolling.sample[i]), r: 2.2, fill: "#8fb3e0" })));
  plot.append(svg("polyline", { points: rolling.time_s.map((t, i) => `${x(t)},${y(rolling.running[i])}`).join(" "),
    fill: "none", stroke: "#0b63ce", "stroke-width": 2 }));
  for (const [p, label] of [[0, "0"], [1, "1"], [data.threshold, "threshold"]]) {
    const text = svg("text", { x: 2, y: y(p) + 4, "font-size": 10, fill: "#555" });
    text.textContent = label === "threshold" ? fmt(p) : label;
    plot.append(text);
  }
  const axis = svg("text", { x: w - pad, y: h - 6, "font-size": 10, fill: "#555", "text-anchor": "end" });
  axis.textContent = `${fmt(tMax, 1)} s`;
  plot.append(axis);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "index") initIndex();
  if (page === "video") initVideo();
});
