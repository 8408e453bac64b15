// The command centre: login, the live operations picture (map, queue, units), incident
// detail and actions, the call-taker panel, the camera wall and analytics. Data arrives once
// as a "picture" and then as changes over one EventSource; nothing polls the whole state.

import { Api, el, fill, svg, haversine, distanceText, durationText, clockText, beep, playMjpeg, machineText, errorText } from "./common.js";
import { loadLanguage, t, tOr, translatePage, languageSwitch, stateName, typeName, unitStatusName, actorName, capabilityName, sourceName, timeText, whenText, districtName, showGrid } from "./i18n.js";
import { callTaker } from "./calltaker.js";
import { openEditor, clipPlayer } from "./cameras-editor.js";
import { perform, notify, askCancel, askSplit, history } from "./workflow.js";
import { openMap, districtLayer, gridLayer, poleLayer, routeLayer, fetchRoute, loadStreets, POLE_ZOOM, roadText } from "./map.js";

const KEY = "pw.console.session";
const $ = (id) => document.getElementById(id);
const STATE_ORDER = ["escalated", "new", "dispatched", "acknowledged", "en_route", "on_scene"];
const OPEN = new Set(STATE_ORDER);
const UNIT_ORDER = { unresponsive: -1, dispatched: 0, busy: 1, available: 2, off_duty: 3 };
const PRIO = { 1: "#ff5f56", 2: "#ff9b42", 3: "#e9c95d", 4: "#6aa7e8" };
const UNIT_COLOR = { available: "#3fbf6f", dispatched: "#e3a13b", busy: "#58a6ff", unresponsive: "#ff5f56", off_duty: "#4a5565" };
const CAMERA_COLOR = { online: "#5fd4e6", degraded: "#e3a13b" };

let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
const api = new Api(() => session && session.token, () => signOut(t("console.session_ended")));
const S = {
  config: null, incidents: new Map(), resolved: new Map(), units: new Map(), cameras: new Map(), audit: [],
  seen: new Map(), selected: null, detail: null, districts: null, grids: [], poles: [],
  found: null, view: "ops", source: null, audio: null,
};
let map = null;

// ---------------------------------------------------------------- login
function showLogin(message = "") {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-name").focus();
}

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const token = $("login-token").value.trim();
  try {
    if (token) {
      const me = await new Api(() => token).get("/api/console/me");
      session = { ...me, token };
    } else {
      session = await api.post("/api/console/login", {
        login: $("login-name").value.trim(), password: $("login-password").value,
      });
    }
  } catch (err) {
    session = null;
    $("login-error").textContent = err.status === 401 ? t("console.bad_login")
      : err.status === 429 ? t("login.locked", { s: (err.body && err.body.retry_after) || 1 }) : err.message;
    return;
  }
  sessionStorage.setItem(KEY, JSON.stringify(session));
  $("login-password").value = "";
  start();
}

function signOut(message = "") {
  session = null;
  sessionStorage.removeItem(KEY);
  if (S.source) S.source.close();
  S.source = null;
  showLogin(message);
}

// ---------------------------------------------------------------- start
async function start() {
  try {
    await api.get("/api/console/me");
    // before the app shows: its tabs (analytics) read the configuration
    S.config = S.config || await api.get("/api/console/config");
  } catch {
    return signOut();
  }
  $("login").hidden = true;
  $("app").hidden = false;
  fill($("who"), el("b", { text: session.login }), " · ", tOr(`role.${session.role}`, session.role));
  // the session ends when its token does (the gateway refuses it from then on anyway)
  clearTimeout(S.expiry);
  if (session.expires) S.expiry = setTimeout(() => signOut(t("console.session_ended")), Math.max(0, session.expires * 1000 - Date.now()));
  if (!map) setupMap();
  connect();
}

function setupMap() {
  map = openMap($("map"), { center: S.config.center, zoom: S.config.zoom, tileUrl: S.config.tile_url, api });
  map.layers.push(districtLayer(() => S.districts), gridLayer(() => S.grids), poleLayer(() => S.poles), routeLayer(() => S.routes), cameraLayer, linkLayer, unitLayer,
    incidentLayer, foundLayer);
  map.onview = (m) => loadStreets(api, m, S);
  map.onclick = clickMap;
  api.get("/api/console/map/districts").then((g) => {
    S.districts = g;
    // Open on the whole city unless the operator has already moved the map.
    if (map.center === S.config.center && map.zoom === S.config.zoom) map.fit(outline(g), 20, S.config.zoom + 1);
    map.redraw();
  });
  $("zoom-in").onclick = () => map.zoomAt(map.width / 2, map.height / 2, 1);
  $("zoom-out").onclick = () => map.zoomAt(map.width / 2, map.height / 2, -1);
  fill($("legend"),
    ...[1, 2, 3, 4].map((p) => el("span", {}, dot(PRIO[p]), `P${p}`)),
    ...Object.entries(UNIT_COLOR).map(([s, c]) => el("span", {}, square(c), unitStatusName(s))),
    el("span", {}, square("#5fd4e6"), t("console.camera")));
}

/** The corners of every district's outline: what "the whole city" is. */
function outline(geojson) {
  let w = 180, s = 90, e = -180, n = -90;
  for (const f of geojson.features) {
    for (const [lon, lat] of f.geometry.coordinates.flat(f.geometry.type === "Polygon" ? 1 : 2)) {
      w = Math.min(w, lon); e = Math.max(e, lon); s = Math.min(s, lat); n = Math.max(n, lat);
    }
  }
  return [[w, s], [e, n]];
}

const dot = (color) => { const i = el("i"); i.style.background = color; return i; };
const square = (color) => { const i = dot(color); i.style.borderRadius = "2px"; return i; };

// ---------------------------------------------------------------- live feed
function connect() {
  if (S.source) S.source.close();
  const source = new EventSource(api.url("/api/console/live"));
  S.source = source;
  const conn = $("conn");
  source.onopen = () => { conn.className = "conn live"; conn.textContent = t("console.live"); };
  source.onerror = async () => {
    conn.className = "conn down"; conn.textContent = t("console.reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      try { await api.get("/api/console/me"); setTimeout(connect, 2000); } catch { /* signed out */ }
    }
  };
  source.addEventListener("picture", (e) => {
    const p = JSON.parse(e.data);
    S.incidents = new Map(p.incidents.map((i) => [i.id, i]));
    S.resolved = new Map(p.resolved.map((i) => [i.id, i]));
    S.units = new Map(p.units.map((u) => [u.id, u]));
    S.cameras = new Map(p.cameras.map((c) => [c.id, c]));
    S.audit = p.audit;
    showDispatch(p.dispatch);
    for (const i of p.incidents) S.seen.set(i.id, 0);
    renderAll();
  });
  source.addEventListener("incidents", (e) => {
    let alert = false;
    for (const inc of JSON.parse(e.data)) {
      if (OPEN.has(inc.state)) {
        if (!S.incidents.has(inc.id) && !S.seen.has(inc.id)) { S.seen.set(inc.id, Date.now()); alert ||= inc.priority <= 2; }
        S.incidents.set(inc.id, inc);
      } else {
        S.incidents.delete(inc.id);
      }
      if (inc.state === "resolved") S.resolved.set(inc.id, inc); else S.resolved.delete(inc.id);
      if (S.selected === inc.id) S.selectedState = inc;
    }
    if (alert) beep(S.audio, [[660, 0.08], [0, 0.05], [660, 0.08]]);
    schedule();
  });
  source.addEventListener("units", (e) => {
    for (const u of JSON.parse(e.data)) S.units.set(u.id, u);
    schedule();
  });
  source.addEventListener("audit", (e) => {
    const events = JSON.parse(e.data);
    S.audit = S.audit.concat(events).slice(-80);
    if (S.selected && events.some((ev) => ev.incident === S.selected)) openIncident(S.selected, false);
    schedule();
  });
  source.addEventListener("refused", (e) => { // the dispatcher refused an action sent from here
    for (const r of JSON.parse(e.data)) if (session && r.actor === session.login) notify(`#${r.incident}: ${machineText(r, "error")}`, "error");
  });
  source.addEventListener("dispatch", (e) => showDispatch(JSON.parse(e.data)));
  source.addEventListener("cameras", (e) => {
    for (const c of JSON.parse(e.data)) S.cameras.set(c.id, { ...S.cameras.get(c.id), ...c, alarm: (S.cameras.get(c.id) || {}).alarm });
    if (S.view === "cameras") renderWall();
    map.redraw();
  });
}

// What waits for a dispatcher too long (gateway/console/backlog.py): one line on every console
// until it is over. An empty list clears it.
function showDispatch(waiting = []) {
  const box = $("dispatch-alert");
  box.hidden = !waiting.length;
  if (!waiting.length) return;
  const items = waiting.map((w) => t(`console.dispatch_waiting.${w.kind}`, {
    count: w.exact ? w.count : `${w.count}+`, age: durationText(w.age_s),
  }) + (w.zones.some(Boolean) ? t("console.dispatch_zones", { zones: w.zones.map(districtName).join(t("common.comma")) }) : ""));
  box.textContent = t("console.dispatch_behind", { items: items.join(t("console.dispatch_join")) });
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; renderAll(); });
}

function renderAll() {
  renderQueue();
  renderToClose();
  renderUnits();
  renderActivity();
  renderStats();
  map.redraw();
}

// ---------------------------------------------------------------- queue, units, activity
function sortedIncidents() {
  return [...S.incidents.values()].sort((a, b) => a.priority - b.priority || a.created - b.created);
}

function place(inc) {
  return [inc.pole && t("console.pole", { code: inc.pole }), districtName(inc.district)].filter(Boolean).join(" · ") || `${inc.lat.toFixed(4)}, ${inc.lon.toFixed(4)}`;
}

function renderQueue() {
  const now = Date.now() / 1000;
  const list = sortedIncidents();
  $("queue-count").textContent = String(list.length);
  fill($("queue"), list.length ? list.map((inc) => {
    const fresh = Date.now() - (S.seen.get(inc.id) || 0) < 1600;
    return el(`li.q${inc.id === S.selected ? ".selected" : ""}${fresh ? ".fresh" : ""}`,
      { dataset: { id: inc.id, state: inc.state, priority: inc.priority }, onclick: () => openIncident(inc.id) },
      el(`span.prio.p${inc.priority}`, { text: `P${inc.priority}` }),
      el("span.type", { text: `${typeName(inc.type)}${inc.reports > 1 ? ` ×${inc.reports}` : ""}` }),
      el("span.age", { text: durationText(now - (inc.alarm_ts || inc.created)) }),
      el("span.where", { text: `#${inc.id} · ${place(inc)}` }),
      el("span.meta", {}, inc.caller_far_m ? el("span.chip.far", { text: t("incident.far_chip"), title: t("incident.far", { distance: distanceText(inc.caller_far_m) }) }) : null,
        el(`span.chip.${inc.state}`, { text: stateName(inc.state) })));
  }) : el("li.empty", { text: t("console.no_incidents") }));
}

// Resolved by a unit, waiting for an operator to close each with an evaluation (from its
// detail): the longest waiting first.
function renderToClose() {
  const list = [...S.resolved.values()].sort((a, b) => (a.times.resolved || 0) - (b.times.resolved || 0));
  $("to-close").hidden = !list.length;
  $("to-close-count").textContent = String(list.length);
  fill($("to-close-list"), list.map((inc) => el(`li.h${inc.id === S.selected ? ".selected" : ""}`,
    { dataset: { id: inc.id }, onclick: () => openIncident(inc.id) },
    el(`span.prio.p${inc.priority}`, { text: `P${inc.priority}` }),
    el("span.type", { text: `${typeName(inc.type)} #${inc.id}` }),
    el("span.age", { text: inc.times.resolved ? durationText(Date.now() / 1000 - inc.times.resolved) : "" }),
    el("span.where", { text: [place(inc), inc.units.length ? inc.units.join(t("common.comma")) : null].filter(Boolean).join(" · ") }))));
}

function renderUnits() {
  const now = Date.now() / 1000;
  const units = [...S.units.values()].sort((a, b) =>
    (UNIT_ORDER[a.status] ?? 9) - (UNIT_ORDER[b.status] ?? 9) || a.id.localeCompare(b.id, undefined, { numeric: true }));
  const counts = {};
  for (const u of units) counts[u.status] = (counts[u.status] || 0) + 1;
  $("unit-summary").textContent = Object.entries(counts).map(([k, v]) => `${v} ${unitStatusName(k)}`).join(" · ");
  fill($("units"), units.slice(0, 400).map((u) => el("li.u", { dataset: { id: u.id, status: u.status } },
    el("span.id", { text: u.id }),
    el("span", {}, el(`span.chip.${u.status}`, { text: unitStatusName(u.status) })),
    el("span.grid", { text: kitText(u) || "–", title: kitText(u) }),
    el("span", {}, u.status === "unresponsive" ? el("button.ghost.restore", { text: tOr("unit.restore", "Restore"), title: tOr("unit.restore_title", "Back into the rotation (reached another way)"), onclick: () => restoreUnit(u) })
      : u.incident ? el("a.link", { href: "#", text: `#${u.incident}`, onclick: (e) => { e.preventDefault(); openIncident(u.incident); } }) : "–"),
    el("span.seen", { text: u.seen ? durationText(now - u.seen) : "–" }))));
}

/** A unit's kit in the page's language ("巡逻，医疗救护"); its cell shows the whole on hover. */
const kitText = (u) => u.capabilities.map(capabilityName).join(t("common.comma"));

// A unit that let dispatches time out is out of the rotation until it answers; an operator
// who reached it another way puts it back (audited on the incident it last missed).
async function restoreUnit(u) {
  const reason = prompt(`${u.id}: ${tOr("unit.restore_prompt", "put it back into the rotation? How was it reached?")}`, "");
  if (reason === null) return;
  try {
    await api.post(`/api/units/${encodeURIComponent(u.id)}/restore`, reason ? { reason } : {});
    $("unit-summary").textContent = `${u.id}: ${tOr("unit.restore_sent", "back into the rotation")}`;
  } catch (err) { $("unit-summary").textContent = errorText(err); }
}

function renderActivity() {
  fill($("activity"), S.audit.slice(-7).map((ev) => el("li", {},
    el("span.t", { text: timeText(ev.ts) }),
    el("b", { text: `#${ev.incident}` }), ` ${stateName(ev.event)}`,
    ev.unit ? ` · ${ev.unit}` : "", ev.actor ? ` · ${t("console.activity_by", { actor: actorName(ev.actor) })}` : "",
    ev.detail ? ` · ${machineText(ev)}` : "")));
}

function renderStats() {
  const list = [...S.incidents.values()];
  const p1 = list.filter((i) => i.priority === 1).length;
  const waiting = list.filter((i) => i.state === "escalated" || i.state === "new").length;
  const free = [...S.units.values()].filter((u) => u.status === "available").length;
  const duty = [...S.units.values()].filter((u) => u.status !== "off_duty").length;
  fill($("stats"),
    el("span", {}, el("b", { text: list.length }), t("console.stat.open")),
    el("span.p1", {}, el("b", { text: p1 }), "P1"),
    el("span", {}, el("b", { text: waiting }), t("console.stat.waiting")),
    el("span", {}, el("b", { text: `${free}/${duty}` }), t("console.stat.free")));
}

setInterval(() => {
  $("clock").textContent = timeText(Date.now() / 1000);
  if (!$("app").hidden && S.view === "ops") renderQueue();
}, 1000);

// ---------------------------------------------------------------- map layers
const cameraLayer = {
  draw(ctx, m) {
    for (const c of S.cameras.values()) {
      if (c.lon == null) continue;
      const [x, y] = m.toScreen(c.lon, c.lat);
      ctx.fillStyle = CAMERA_COLOR[c.status] || "#ff5f56";
      ctx.beginPath();
      ctx.moveTo(x - 5, y - 4); ctx.lineTo(x + 3, y - 4); ctx.lineTo(x + 6, y - 7); ctx.lineTo(x + 6, y + 4);
      ctx.lineTo(x + 3, y + 1); ctx.lineTo(x + 3, y + 4); ctx.lineTo(x - 5, y + 4); ctx.closePath();
      ctx.fill();
    }
  },
};

const linkLayer = {
  draw(ctx, m) {
    const inc = S.incidents.get(S.selected);
    if (!inc) return;
    const [ix, iy] = m.toScreen(inc.lon, inc.lat);
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = "rgba(108,182,255,0.8)";
    ctx.lineWidth = 1.5;
    for (const id of inc.units) {
      const u = S.units.get(id);
      if (!u || u.lon == null || (S.routed && S.routed.has(id))) continue; // drawn along the road
      const [ux, uy] = m.toScreen(u.lon, u.lat);
      ctx.beginPath(); ctx.moveTo(ux, uy); ctx.lineTo(ix, iy); ctx.stroke();
    }
    ctx.setLineDash([]);
  },
};

const unitLayer = {
  draw(ctx, m) {
    const r = m.zoom >= 14 ? 4.5 : 3;
    for (const u of S.units.values()) {
      if (u.lon == null || u.status === "off_duty") continue;
      const [x, y] = m.toScreen(u.lon, u.lat);
      if (x < -10 || y < -10 || x > m.width + 10 || y > m.height + 10) continue;
      ctx.fillStyle = UNIT_COLOR[u.status] || "#888";
      ctx.strokeStyle = "#0b0f14";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.rect(x - r, y - r, 2 * r, 2 * r);
      ctx.fill(); ctx.stroke();
      if (m.zoom >= 15.5 || (u.incident && u.incident === S.selected)) {
        ctx.font = "600 10px system-ui, sans-serif";
        ctx.fillStyle = "rgba(210,220,232,0.85)";
        ctx.textAlign = "left";
        ctx.fillText(u.id, x + r + 3, y + 3);
      }
    }
  },
};

let lastPulse = 0;
const incidentLayer = {
  animated(now) {
    if (now - lastPulse < 60) return false;
    return [...S.incidents.values()].some((i) => i.state === "new" || i.state === "escalated" || i.id === S.selected);
  },
  draw(ctx, m, now) {
    lastPulse = now || 0;
    const phase = ((now || 0) % 1400) / 1400;
    const list = sortedIncidents().reverse(); // P1 drawn last, on top
    const drawn = [];
    const labels = [];
    const named = [];
    for (const inc of list) {
      const [x, y] = m.toScreen(inc.lon, inc.lat);
      if (x < -20 || y < -20 || x > m.width + 20 || y > m.height + 20) continue;
      drawn.push(inc.id);
      const color = PRIO[inc.priority] || "#aaa";
      const r = inc.priority === 1 ? 7 : 6;
      if (inc.state === "new" || inc.state === "escalated") {
        ctx.strokeStyle = inc.state === "escalated" ? "rgba(255,120,230,0.9)" : color;
        ctx.globalAlpha = 1 - phase;
        ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(x, y, r + 4 + phase * 14, 0, Math.PI * 2); ctx.stroke();
        ctx.globalAlpha = 1;
      }
      ctx.beginPath(); ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fillStyle = inc.state === "on_scene" ? "#0b0f14" : color;
      ctx.fill();
      ctx.lineWidth = inc.state === "on_scene" ? 3 : 1.5;
      ctx.strokeStyle = inc.state === "on_scene" ? color : (inc.state === "dispatched" ? "#fff3d6" : "#0b0f14");
      if (inc.state === "dispatched") ctx.setLineDash([2, 2]);
      ctx.stroke();
      ctx.setLineDash([]);
      if (inc.id === S.selected) {
        ctx.strokeStyle = "#6cb6ff"; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(x, y, r + 6, 0, Math.PI * 2); ctx.stroke();
      }
      if (m.zoom >= 13 || inc.id === S.selected) named.push([inc, x, y, r]);
    }
    // Labels in priority order (P1 first), each only where it does not cover another.
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.textAlign = "left";
    named.reverse().sort((a, b) => (b[0].id === S.selected) - (a[0].id === S.selected));
    const written = [];
    for (const [inc, x, y, r] of named) {
      const text = `#${inc.id} ${typeName(inc.type)}`;
      const box = [x + r + 4, y - r - 11, ctx.measureText(text).width + 2, 14];
      if (inc.id !== S.selected && labels.some((b) => overlap(b, box))) continue;
      labels.push(box);
      ctx.fillStyle = "rgba(11,15,20,0.7)";
      ctx.fillRect(box[0] - 2, box[1], box[2] + 3, box[3]);
      ctx.fillStyle = "#e6edf5";
      ctx.fillText(text, x + r + 5, y - r);
      written.push(text);
    }
    // What the map shows, readable by people with screen readers and by the browser tests.
    const said = written.join("\n");
    if (m.canvas.dataset.labels !== said) m.canvas.dataset.labels = said;
    const shown = drawn.sort().join(" ");
    if (m.canvas.dataset.incidents !== shown) {
      m.canvas.dataset.incidents = shown;
      m.canvas.setAttribute("aria-label", t("console.map_label", { n: drawn.length }));
    }
  },
};

const overlap = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];

const foundLayer = {
  draw(ctx, m) {
    if (!S.found) return;
    const [x, y] = m.toScreen(S.found.lon, S.found.lat);
    ctx.strokeStyle = "#6cb6ff"; ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(x - 14, y); ctx.lineTo(x - 4, y); ctx.moveTo(x + 4, y); ctx.lineTo(x + 14, y);
    ctx.moveTo(x, y - 14); ctx.lineTo(x, y - 4); ctx.moveTo(x, y + 4); ctx.lineTo(x, y + 14);
    ctx.stroke();
    ctx.beginPath(); ctx.arc(x, y, 9, 0, Math.PI * 2); ctx.stroke();
  },
};

/** The road routes of the incident's units, drawn on the map (a straight dashed line stays
 *  where the gateway has no route). */
async function loadRoutes(inc) {
  const units = inc.units.map((id) => S.units.get(id)).filter((u) => u && u.lon != null);
  const found = await Promise.all(units.map((u) => fetchRoute(api, [u.lon, u.lat], [inc.lon, inc.lat])));
  if (S.selected !== inc.id) return;
  S.routed = new Map(units.map((u, i) => [u.id, found[i]]).filter(([, r]) => r && r.coords));
  S.routedFor = inc.id;
  S.routes = [...S.routed.values()].map((r) => r.coords);
  for (const [id, r] of S.routed) { // the road figures beside each unit of the open detail
    const span = document.querySelector(`#detail [data-road-unit="${CSS.escape(id)}"]`);
    if (span && r.source === "road") span.textContent = roadText(r.distance_m, r.eta_s);
  }
  map.redraw();
}

function clickMap(x, y) {
  let best = null, bestD = 14;
  for (const inc of S.incidents.values()) {
    const [ix, iy] = map.toScreen(inc.lon, inc.lat);
    const d = Math.hypot(ix - x, iy - y);
    if (d < bestD) { best = inc; bestD = d; }
  }
  if (best) return openIncident(best.id);
  if (map.zoom >= POLE_ZOOM) {
    for (const [code, lon, lat] of S.poles) {
      const [px, py] = map.toScreen(lon, lat);
      if (Math.hypot(px - x, py - y) < 6) { $("call-code").value = code; lookUp(); return; }
    }
  }
}

// ---------------------------------------------------------------- incident detail
async function openIncident(id, focus = true) {
  S.selected = id;
  let data;
  try {
    data = await api.get(`/api/incidents/${encodeURIComponent(id)}`);
  } catch (err) {
    fill($("detail"), el("p.error", { text: err.message }));
    $("detail").hidden = false;
    return;
  }
  if (S.selected !== id) return;
  S.detail = data;
  loadRoutes(data.incident);
  const inc = data.incident;
  if (OPEN.has(inc.state)) S.incidents.set(inc.id, inc);
  if (focus) map.setView([inc.lon, inc.lat], Math.max(map.zoom, 15));
  renderDetail();
  renderQueue();
  map.redraw();
}

function closeDetail() {
  S.selected = null; S.detail = null; S.routes = []; S.routed = null; S.routedFor = null;
  $("detail").hidden = true;
  renderQueue(); map.redraw();
}

function renderDetail() {
  const { incident: inc, timeline, alarms } = S.detail;
  const speed = S.config.speed_mps;
  // results stay in the notices until dismissed (workflow.js), whatever re-renders meanwhile
  const act = (verb, body, done) => async () => {
    const given = await body();
    if (given !== null) await perform(api, inc.id, verb, given, done);
  };
  const free = [...S.units.values()].filter((u) => u.status === "available" && u.lon != null)
    .map((u) => [u, haversine(u.lon, u.lat, inc.lon, inc.lat)]).sort((a, b) => a[1] - b[1]).slice(0, 30);
  const unitChoice = el("select#reassign-unit.unit-choice", {},
    el("option", { value: "", text: t("console.nearest_free") }),
    free.map(([u, d]) => el("option", { value: u.id, text: `${u.id} · ${distanceText(d)}` })));
  const evaluation = el("select#evaluation", {}, [5, 4, 3, 2, 1].map((n) => el("option", { value: n, text: `${n} ★` })));
  const mergeWith = el("input#merge-other", { placeholder: t("console.incident_id"), size: 8 });
  const note = el("input#note-text", { placeholder: t("console.note_placeholder"), maxLength: 500, autocomplete: "off" });
  const open = OPEN.has(inc.state);
  const units = inc.units.map((id) => {
    const u = S.units.get(id);
    const d = u && u.lon != null ? haversine(u.lon, u.lat, inc.lon, inc.lat) : null;
    const road = S.routedFor === inc.id && S.routed.get(id);
    return el("li", {}, el("b", { text: id }), el("span", {}, el(`span.chip.${u ? u.status : "off_duty"}`, { text: u ? unitStatusName(u.status) : "?" })),
      el("span", { dataset: { roadUnit: id }, text: road && road.source === "road" ? roadText(road.distance_m, road.eta_s)
        : d == null ? t("console.position_unknown") : `${distanceText(d)} · ${t("console.eta", { t: durationText(d / speed) })}` }));
  });
  fill($("detail"),
    el("div.head", {},
      el(`span.prio.p${inc.priority}`, { text: `P${inc.priority}` }),
      el("span.title", { text: `${typeName(inc.type)} #${inc.id}` }),
      el(`span.chip.${inc.state}`, { text: stateName(inc.state), id: "detail-state" }),
      el("button.ghost.close-x", { title: t("console.close_panel"), text: "×", onclick: closeDetail })),
    S.detail.archived ? el("p.muted#detail-archived", { text: t("workflow.from_archive") }) : null,
    el("dl.kv", {},
      el("dt", { text: t("console.place") }), el("dd", { text: place(inc) }),
      inc.caller_far_m ? el("dd.far-warning#detail-far", { role: "alert", text: t("incident.far", { distance: distanceText(inc.caller_far_m) }) }) : null,
      el("dt", { text: t("console.grid") }), showGrid(el("dd"), inc.grid),
      el("dt", { text: t("console.raised") }), el("dd#detail-raised", { text: `${whenText(inc.alarm_ts || inc.created)} · ${t("console.ago", { t: durationText(Date.now() / 1000 - (inc.alarm_ts || inc.created)) })}` }),
      el("dt", { text: t("console.reports") }), el("dd", { text: String(inc.reports) }),
      inc.text ? [el("dt", { text: t("console.text") }), el("dd.user-text", { text: machineText(inc, "text") })] : null,
      inc.evaluation ? [el("dt", { text: t("console.evaluation") }), el("dd", { text: `${inc.evaluation} ★` })] : null),
    el("h3", { text: t("console.units_n", { n: inc.units.length, wanted: inc.wanted }) }),
    // a finished incident's units were released: its timeline says who was sent
    el("ol.assigned", {}, units.length ? units : el("li.muted", { text: t(open ? "console.none_assigned" : "console.units_released") })),
    el("h3", { text: t("console.actions") }),
    el("div.actions", {}, unitChoice,
      el("button#do-reassign", { text: t("console.reassign"), disabled: !open, onclick: act("reassign", () => (unitChoice.value ? { unit: unitChoice.value } : {}), t("console.reassign_sent")) }),
      el("button#do-add", { text: t("console.add_unit"), disabled: !open, onclick: act("add-unit", () => (unitChoice.value ? { unit: unitChoice.value } : {}), t("console.add_unit_sent")) })),
    el("div.actions", {}, evaluation,
      el("button#do-close.primary", { text: t("console.close_eval"), disabled: inc.state !== "resolved",
        title: inc.state === "resolved" ? "" : t("console.close_only_resolved"),
        onclick: act("close", () => ({ evaluation: Number(evaluation.value) }), t("console.closed")) }),
      el("button#do-cancel.danger", { text: t("console.cancel"), disabled: !open,
        onclick: act("cancel", async () => { const reason = await askCancel(inc); return reason === null ? null : { reason }; }, t("console.cancelled")) })),
    el("div.actions", {}, mergeWith,
      el("button#do-merge", { text: t("console.merge"), disabled: !open, onclick: act("merge", () => ({ other: mergeWith.value.trim() }), t("console.merge_sent")) }),
      alarms.length > 1 ? el("button#do-split", { text: t("console.split"), disabled: !open, onclick: act("split", async () => { const alarm = await askSplit(inc, alarms); return alarm === null ? null : { alarm }; }, t("console.split_sent")) }) : null),
    el("div.actions", {},
      el("a.button#export-cap", { href: api.url(`/api/console/incidents/${encodeURIComponent(inc.id)}/export.cap`), text: "CAP XML", download: `${inc.id}.cap.xml` }),
      el("a.button#export-eido", { href: api.url(`/api/console/incidents/${encodeURIComponent(inc.id)}/export.eido`), text: "EIDO JSON", download: `${inc.id}.eido.json` })),
    el("h3", { text: t("console.timeline") }),
    // a note for the timeline and the phones of the units on it (not once it is closed)
    el("form.actions.note-form", { onsubmit: (e) => { e.preventDefault(); act("note", () => (note.value.trim() ? { text: note.value.trim() } : null), t("console.note_sent"))(); } },
      note, el("button#do-note", { type: "submit", text: t("console.add_note"), disabled: !open && inc.state !== "resolved" })),
    el("ol.timeline#timeline", {}, timeline.map((ev) => el(`li.${ev.event}`, {},
      el("span.t", { text: timeText(ev.ts) }),
      el("span", {}, el("b", { text: stateName(ev.event) }), ev.unit ? ` ${ev.unit}` : "",
        ev.actor ? el("span.who", { text: ` · ${actorName(ev.actor)}` }) : "", ev.detail ? el("span.who.detail", { text: ` · ${machineText(ev)}` }) : "",
        ev.route === "road" && ev.eta_s != null ? el("span.who.road", { text: ` · ${roadText(ev.distance_m, ev.eta_s)}` }) : "")))),
    el("h3", { text: t("console.reports_n", { n: alarms.length }) }),
    el("ol.alarms#alarms", {}, alarms.map((a) => el("li", {},
      el("div", {}, el("b", { text: a.type ? typeName(a.type) : t("console.alarm") }), el("span.src", { text: ` · ${sourceName(a.source) || ""} · ${timeText(a.ts)}` })),
      a.text ? el("div.text", { text: machineText(a, "text") }) : null,
      a.phone ? el("div.src", { text: `☎ ${a.phone}` }) : null,
      a.expired ? el("div.src", { text: t("console.report_expired") }) : null,
      a.snapshot ? el("img", { src: api.url(`/api/console/snapshots/${encodeURIComponent(a.snapshot)}`), alt: t("console.snapshot"), loading: "lazy" }) : null,
      a.clip ? clipPlayer(api, a.clip) : null))));
  $("detail").hidden = false;
}

// ---------------------------------------------------------------- call-taker (calltaker.js)
const calls = callTaker({ api, S, map: () => map, audio: () => S.audio });
const lookUp = calls.lookUp;

// ---------------------------------------------------------------- cameras
function renderWall() {
  const cams = [...S.cameras.values()];
  const wall = $("wall");
  if (!cams.length) return fill(wall, el("p.empty", { text: t("console.no_camera") }));
  const now = Date.now() / 1000;
  const existing = new Map([...wall.querySelectorAll(".cam")].map((n) => [n.dataset.id, n]));
  const nodes = cams.map((c) => {
    let node = existing.get(c.id);
    if (!node) {
      const live = el("img", { alt: t("console.live_view", { id: c.id }) });
      node = el("div.cam", { dataset: { id: c.id } }, el("div.screen", {}, live), el("div.bar"), el("div.last"));
      S.wallStop ||= new AbortController();
      playMjpeg(live, api.url(`/api/console/cameras/${encodeURIComponent(c.id)}/mjpeg`), S.wallStop.signal)
        .catch(() => { if (!S.wallStop || !S.wallStop.signal.aborted) fill(live.parentElement, el("span", { text: t("console.no_picture") })); });
    }
    fill(node.querySelector(".bar"), el("span.name", { text: c.id }), el(`span.chip.${c.status}`, { text: tOr(`camera.${c.status}`, c.status) }),
      el("span.muted", { text: `${c.fps != null ? `${c.fps.toFixed(1)} fps · ` : ""}${t("console.heard", { t: durationText(now - c.ts) })}` }),
      c.pole ? el("span.muted", { text: t("console.pole", { code: c.pole }) }) : null,
      el("button.edit", { type: "button", text: t("editor.edit"), onclick: () => openEditor(api, c.id, (id) => (S.cameras.get(id) || {}).config_version) }));
    const a = c.alarm;
    fill(node.querySelector(".last"), a ? [
      a.snapshot ? el("img", { src: api.url(`/api/console/snapshots/${encodeURIComponent(a.snapshot)}`), alt: t("console.latest_alarm_snapshot") }) : null,
      el("span", { text: t("console.latest_alarm", { type: `${typeName(a.type)}${a.rule ? ` (${a.rule})` : ""}`, time: timeText(a.ts) }) })] : el("span", { text: t("console.no_alarm") }));
    return node;
  });
  fill(wall, nodes);
}

function stopWall() {
  if (S.wallStop) S.wallStop.abort();
  S.wallStop = null;
  fill($("wall"));
}

// ---------------------------------------------------------------- analytics
/** The date ``daysAgo`` days ago in the command centre's time zone (the server's reports
 *  read dates there too). */
function isoDay(daysAgo) {
  const d = new Date(Date.now() + (S.config.utc_offset_min * 60 - daysAgo * 86400) * 1000);
  return d.toISOString().slice(0, 10);
}

async function renderAnalytics() {
  const days = Number($("period").value);
  const params = { from: isoDay(days), to: isoDay(0) };
  $("report-html").href = api.url("/api/console/reports/assessment.html", params);
  $("report-pdf").href = api.url("/api/console/reports/assessment.pdf", params);
  $("report-png").href = api.url("/api/console/reports/assessment.png", params);
  $("report-csv").href = api.url("/api/console/reports/incidents.csv", params);
  const charts = $("charts");
  fill(charts, el("p.muted", { text: t("console.computing") }));
  let times;
  try { times = await api.get(`/api/console/reports/times?${new URLSearchParams(params)}`); } catch (err) {
    return fill(charts, el("p.error", { text: err.message }));
  }
  const metric = $("metric").value;
  const o = times.overall.metrics;
  const grids = [...times.by_grid].filter((g) => g.metrics[metric].p90 != null)
    .sort((a, b) => b.metrics[metric].p90 - a.metrics[metric].p90).slice(0, 12);
  fill(charts,
    el("div.cards", {},
      card(times.incidents, t("console.card.incidents")), card(times.merged, t("console.card.merged")),
      card(durationText(o.alarm_to_scene.p50), t("console.card.scene_p50")), card(durationText(o.alarm_to_scene.p90), t("console.card.scene_p90")),
      card(durationText(o.alarm_to_dispatch.p50), t("console.card.dispatch_p50")), card(durationText(o.resolution.p50), t("console.card.resolution_p50"))),
    chart(t("console.by_priority"), times.by_priority, metric),
    chart(t("console.by_district"), times.by_district, metric, (node, key) => { node.textContent = short(districtName(key)); }),
    chart(t("console.slowest_grids"), grids, metric, (node, key) => showGrid(node, key, short)));
}

const card = (n, l) => el("div.card", {}, el("div.n", { text: String(n) }), el("div.l", { text: l }));

const short = (text) => (text.length > 17 ? `${text.slice(0, 16)}…` : text);

/** A bar chart of p50/p90 per group; ``name(node, key)`` writes a group's label (districts and
 *  grids by their names in the page's language). */
function chart(title, groups, metric, name = (node, key) => { node.textContent = short(key); }) {
  const rows = groups.filter((g) => g.metrics[metric].count > 0);
  const W = 440, row = 22, left = 120, top = 8, H = top + rows.length * row + 24;
  const max = Math.max(1, ...rows.map((g) => g.metrics[metric].p90 || 0));
  const values = rows.map((g) => `${durationText(g.metrics[metric].p50)} / ${durationText(g.metrics[metric].p90)}`);
  // the longest value must fit right of the longest bar ("19秒 / 19秒" is wider than "19s / 19s")
  const room = 12 + Math.max(0, ...values.map(textWidth));
  const scale = (v) => ((W - left - room) * (v || 0)) / max;
  const body = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
    rows.map((g, i) => {
      const y = top + i * row, m = g.metrics[metric];
      return [
        named(svg("text", { x: left - 8, y: y + 14, "text-anchor": "end" }), g.key, name),
        svg("rect", { class: "bar90", x: left, y: y + 3, width: Math.max(1, scale(m.p90)), height: 15, rx: 2 }),
        svg("rect", { class: "bar50", x: left, y: y + 3, width: Math.max(1, scale(m.p50)), height: 15, rx: 2 }),
        svg("text", { class: "v", x: left + scale(m.p90) + 6, y: y + 14 }, values[i]),
      ];
    }),
    svg("text", { x: left, y: H - 6 }, t("console.chart_legend")));
  return el("div.chart", {}, el("h2", { text: title }), rows.length ? body : el("p.muted", { text: t("console.no_data") }));
}

const named = (node, key, name) => { name(node, key); return node; };

/** About how wide ``text`` is at the charts' 11px: Han characters are a full em, the rest less. */
const textWidth = (text) => [...text].reduce((w, c) => w + (c.codePointAt(0) >= 0x2e80 ? 11.5 : 7), 0);

// ---------------------------------------------------------------- views
function show(view) {
  S.view = view;
  for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b.dataset.view === view);
  for (const v of ["ops", "cameras", "analytics"]) $(`view-${v}`).hidden = v !== view;
  if (view === "cameras") renderWall(); else stopWall();
  if (view === "analytics") renderAnalytics();
  if (view === "ops") map.resize();
}

document.addEventListener("DOMContentLoaded", async () => {
  await loadLanguage();
  translatePage();
  $("lang-login").replaceWith(languageSwitch());
  $("lang").replaceWith(languageSwitch());
  $("login-form").addEventListener("submit", signIn);
  $("logout").onclick = () => signOut();
  $("call-form").addEventListener("submit", lookUp);
  history(api, (id) => openIncident(id));
  $("period").onchange = renderAnalytics;
  $("metric").onchange = renderAnalytics;
  for (const b of $("tabs").querySelectorAll("button")) b.onclick = () => show(b.dataset.view);
  // Browsers only allow sound after a gesture: the first click anywhere arms it.
  document.addEventListener("pointerdown", () => { S.audio ||= new AudioContext(); }, { once: true });
  if (session) start(); else showLogin();
});
