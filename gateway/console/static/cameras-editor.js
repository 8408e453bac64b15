// The camera editor: zones, loitering areas, motion masks and tripwires drawn on the camera's
// latest frame, each rule's parameters, saved through the configuration API as the camera's
// next version. The running agent applies it within seconds; the editor shows the version the
// agent reports in its heartbeats. Coordinates are the camera's own frame pixels.

import { el, fill, svg } from "./common.js";
import { t, tOr, typeName } from "./i18n.js";

const SHAPES = { tripwire: "line", zone: "polygon", loitering: "polygon", motion: "polygon", no_parking: "polygon", mask: "polygon" };
const DEFAULTS = {
  tripwire: { direction: "any", cooldown: 2 },
  zone: { cooldown: 30 },
  loitering: { dwell: 30, cooldown: 30 },
  motion: { area: 0.02, duration: 1, cooldown: 30 },
  no_parking: { stopped: 60, cooldown: 60 },
};
/** Parameters an operator may set per rule type (any other field is kept as it is). */
const PARAMS = {
  tripwire: ["direction", "cooldown"],
  zone: ["schedule", "cooldown"],
  loitering: ["dwell", "cooldown"],
  crowd: ["min_people", "duration", "cooldown"],
  tamper: ["duration", "cooldown"],
  offline: ["after", "cooldown"],
  motion: ["area", "duration", "schedule", "cooldown"],
  no_parking: ["stopped", "schedule", "cooldown"],
};
const DIRECTIONS = ["any", "a_to_b", "b_to_a"];
const COLOUR = { tripwire: "#ffcf4a", zone: "#ff5f56", loitering: "#e3a13b", motion: "#c77dff", no_parking: "#40c8f0", mask: "#8a96a8" };

/** Open the editor of camera ``id`` in a modal dialog; ``running(id)`` is the configuration
 *  version the camera's agent reports (from the live camera list). */
export async function openEditor(api, id, running) {
  const path = `/api/console/cameras/${encodeURIComponent(id)}/config`;
  let stored;
  try { stored = await api.get(path); } catch (err) { return alert(err.message); }
  const cfg = structuredClone(stored.config || { id, rules: [] });
  cfg.rules ||= [];
  cfg.analysis ||= {};
  cfg.analysis.motion_mask ||= [];
  const E = { cfg, base: stored.version, tool: null, points: [], size: stored.size };

  const frame = el("img.frame", { alt: t("editor.frame", { id }), src: api.url(`/api/console/cameras/${encodeURIComponent(id)}/frame`, { v: Date.now() }) });
  const overlay = svg("svg", { class: "overlay", "data-testid": "editor-overlay" });
  const rules = el("div.rules");
  const status = el("p.status");
  const running_ = el("span.running");
  const tools = el("div.tools", {},
    Object.keys(SHAPES).map((kind) => el(`button.tool`, {
      type: "button", dataset: { tool: kind }, text: t(`editor.draw_${kind}`),
      onclick: () => { E.tool = kind; E.points = []; redraw(); },
    })),
    el("button#editor-finish", { type: "button", text: t("editor.finish"), onclick: () => finish() }),
    el("button", { type: "button", text: t("editor.discard"), onclick: () => { E.tool = null; E.points = []; redraw(); } }));
  const dialog = el("dialog#cam-editor.editor", {},
    el("header", {}, el("h2", { text: t("editor.title", { id }) }), running_,
      el("button.close", { type: "button", text: "×", title: t("editor.close"), onclick: () => close() })),
    el("div.stage", {}, frame, overlay), tools, el("p.hint.muted"), rules,
    el("footer", {}, status, el("button#editor-save.primary", { type: "button", text: t("editor.save"), onclick: () => save() })));
  const hint = dialog.querySelector(".hint");
  const timer = setInterval(() => showRunning(), 500);
  const close = () => { clearInterval(timer); dialog.close(); dialog.remove(); };
  dialog.addEventListener("cancel", () => clearInterval(timer));

  function showRunning() {
    const v = running(id);
    running_.textContent = t("editor.versions", { saved: E.base, running: v ?? "?" });
    running_.dataset.running = v ?? "";
  }

  frame.addEventListener("load", () => {
    E.size ||= [frame.naturalWidth, frame.naturalHeight];
    overlay.setAttribute("viewBox", `0 0 ${E.size[0]} ${E.size[1]}`);
    redraw();
  });
  overlay.addEventListener("click", (event) => {
    if (!E.tool) return;
    const m = overlay.getScreenCTM().inverse();
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(m);
    E.points.push([Math.round(p.x), Math.round(p.y)]);
    if (SHAPES[E.tool] === "line" && E.points.length === 2) finish(); else redraw();
  });

  function finish() {
    const kind = E.tool, pts = E.points;
    if (!kind || pts.length < (SHAPES[kind] === "line" ? 2 : 3)) return;
    if (kind === "mask") cfg.analysis.motion_mask.push(pts);
    else cfg.rules.push({ type: kind, name: freeName(kind), ...DEFAULTS[kind], [SHAPES[kind]]: pts });
    E.tool = null; E.points = [];
    redraw();
  }

  function freeName(kind) {
    const taken = new Set(cfg.rules.map((r) => r.name));
    let i = 1;
    while (taken.has(`${kind}-${i}`)) i += 1;
    return `${kind}-${i}`;
  }

  function redraw() {
    drawOverlay();
    renderRules();
  }

  /** Only the picture: editing a field must not rebuild the fields (focus would be lost). */
  function drawOverlay() {
    const shapes = cfg.rules.flatMap((r, i) => shape(r.type, r.line || r.polygon, r.name || `${r.type}-${i}`, r.direction));
    const masks = cfg.analysis.motion_mask.flatMap((m, i) => shape("mask", m, t("editor.mask_n", { n: i + 1 })));
    const drawing = E.tool ? [
      svg("polyline", { points: E.points.map((p) => p.join(",")).join(" "), class: "drawing", stroke: COLOUR[E.tool] }),
      E.points.map(([x, y]) => svg("circle", { cx: x, cy: y, r: 4, fill: COLOUR[E.tool] }))] : [];
    fill(overlay, masks, shapes, drawing);
    hint.textContent = E.tool ? t(SHAPES[E.tool] === "line" ? "editor.hint_line" : "editor.hint_polygon") : "";
    for (const b of tools.querySelectorAll(".tool")) b.classList.toggle("active", b.dataset.tool === E.tool);
  }

  function shape(kind, pts, name, direction) {
    if (!pts || !pts.length) return [];
    const colour = COLOUR[kind] || "#5fd4e6";
    const fs = Math.max(8, Math.round(((E.size && E.size[0]) || 640) / 40));
    const label = (x, y, text) => svg("text", { x, y, fill: colour, "font-size": fs, "stroke-width": fs / 5 }, text);
    const text = label(pts[0][0] + 4, pts[0][1] - 6, name);
    if (kind !== "tripwire") {
      return [svg("polygon", { points: pts.map((p) => p.join(",")).join(" "), class: kind === "mask" ? "mask" : "zone", stroke: colour, fill: colour }), text];
    }
    const [[x1, y1], [x2, y2]] = pts;
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2, len = Math.hypot(x2 - x1, y2 - y1) || 1;
    // Side a is on the left walking from the first point to the second as seen on screen;
    // a_to_b points from that side to the other.
    const nx = -(y2 - y1) / len, ny = (x2 - x1) / len, k = Math.min(40, len / 3);
    const arrows = (direction === "b_to_a" ? [-1] : direction === "a_to_b" ? [1] : [1, -1]).map((s) =>
      svg("line", { x1: mx - s * nx * k, y1: my - s * ny * k, x2: mx + s * nx * k, y2: my + s * ny * k, class: "arrow", stroke: colour, "marker-end": "url(#arrowhead)" }));
    return [svg("defs", {}, svg("marker", { id: "arrowhead", viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }))),
    svg("line", { x1, y1, x2, y2, class: "tripwire", stroke: colour }), arrows,
    label(x1 + 4, y1 - 6, `${name} (a)`)];
  }

  function renderRules() {
    const rows = cfg.rules.map((r, i) => el("div.rule", { dataset: { index: i, type: r.type } },
      el("span.type", { text: tOr(`editor.rule_${r.type}`, typeName(r.type)) }),
      el("input.name", { value: r.name || "", "aria-label": t("editor.name"), onchange: (e) => { r.name = e.target.value || undefined; drawOverlay(); } }),
      (PARAMS[r.type] || []).map((key) => param(r, key)),
      Object.entries(r).filter(([k, v]) => Array.isArray(v) && v.every((x) => typeof x === "string") && k !== "schedule")
        .map(([k]) => listParam(r, k)),
      el("button.remove", { type: "button", text: t("editor.remove"), onclick: () => { cfg.rules.splice(i, 1); redraw(); } })));
    const masks = cfg.analysis.motion_mask.map((_, i) => el("div.rule", { dataset: { mask: i } },
      el("span.type", { text: t("editor.mask_n", { n: i + 1 }) }),
      el("button.remove", { type: "button", text: t("editor.remove"), onclick: () => { cfg.analysis.motion_mask.splice(i, 1); redraw(); } })));
    fill(rules, rows.length || masks.length ? [rows, masks] : el("p.muted", { text: t("editor.no_rule") }));
  }

  function param(rule, key) {
    const label = t(`editor.param_${key}`);
    if (key === "direction") {
      return el("label", {}, label, el("select", { name: key, onchange: (e) => { rule.direction = e.target.value; drawOverlay(); } },
        DIRECTIONS.map((d) => el("option", { value: d, text: t(`editor.direction_${d}`), selected: (rule.direction || "any") === d }))));
    }
    if (key === "schedule") return listParam(rule, key);
    return el("label", {}, label, el("input", { type: "number", name: key, min: 0, step: "any", value: rule[key] ?? "",
      onchange: (e) => { if (e.target.value === "") delete rule[key]; else rule[key] = Number(e.target.value); } }));
  }

  function listParam(rule, key) {
    return el("label", {}, tOr(`editor.param_${key}`, key), el("input", { name: key, value: (rule[key] || []).join(", "),
      onchange: (e) => { rule[key] = e.target.value.split(",").map((s) => s.trim()).filter(Boolean); } }));
  }

  async function save() {
    status.className = "status";
    status.textContent = t("editor.saving");
    try {
      const answer = await api.call("PUT", path, { base: E.base, config: cfg });
      E.base = answer.version;
      status.textContent = t("editor.saved", { version: answer.version });
      status.classList.add("ok");
    } catch (err) {
      status.textContent = err.status === 409 ? t("editor.conflict") : err.message;
      status.classList.add("error");
    }
    showRunning();
  }

  document.body.append(dialog);
  dialog.showModal();
  showRunning();
  redraw();
  return dialog;
}

/** The event clip of a video alarm in the incident detail (H.264 MP4, played by the browser
 *  itself); until it is stored (10 s after the event) a note says it is recording. */
export function clipPlayer(api, id) {
  const url = api.url(`/api/console/clips/${encodeURIComponent(id)}`);
  const video = el("video.clip", { src: url, controls: true, muted: true, preload: "metadata", title: t("incident.clip") });
  const box = el("div.clip", {}, video);
  video.addEventListener("error", () => {
    fill(box, el("span.muted", { text: t("incident.clip_pending") }),
      el("button", { type: "button", text: t("incident.clip_retry"), onclick: () => box.replaceWith(clipPlayer(api, id)) }));
  }, { once: true });
  return box;
}
