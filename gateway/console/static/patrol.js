// The patrol app: one unit's phone. Dispatches arrive over the gateway's WebSocket (resumed
// after a lost connection from the last stream id, kept in localStorage), ring, and are
// answered with big buttons; the phone's position is shared while on duty.

import { Api, el, fill, haversine, bearing, compass, distanceText, durationText, clockText, label, beep, machineText } from "./common.js";
import { loadLanguage, t, translatePage, languageSwitch, stateName, typeName, timeText, districtName } from "./i18n.js";
import { openMap, districtLayer, gridLayer, poleLayer, routeLayer, fetchRoute, roadText, loadStreets } from "./map.js";

const $ = (id) => document.getElementById(id);
const K = { token: "pw.patrol.token", last: "pw.patrol.last", job: "pw.patrol.job", duty: "pw.patrol.duty", pending: "pw.patrol.pending" };
const POSITION_EVERY_MS = 5000;
const PENDING_MS = 600000; // the gateway sends a refusal again on reconnect for 10 minutes

const P = {
  token: localStorage.getItem(K.token), unit: null, ws: null, backoff: 500, ref: 0,
  job: JSON.parse(localStorage.getItem(K.job) || "null"), here: null, sentAt: 0, audio: null,
  duty: localStorage.getItem(K.duty) === "on", districts: null, speed: 8, map: null, watch: null,
  streets: { grids: [], poles: [] }, framed: null,
  // answers the dispatcher may still refuse: by ref until the gateway's ok names their entry,
  // then by entry (kept across reloads); refusals that came before their ok, by entry
  sent: {}, pending: JSON.parse(localStorage.getItem(K.pending) || "{}"), early: {},
};
const api = new Api(() => P.token);

function log(text) {
  const list = $("log");
  list.prepend(el("li", { text: `${timeText(Date.now() / 1000)}  ${text}` }));
  while (list.children.length > 12) list.lastChild.remove();
}

// ---------------------------------------------------------------- sign in
function signinView(message = "") {
  $("patrol").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
}

function takeTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) {
    localStorage.setItem(K.token, token);
    P.token = token;
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search);
  }
}

function start() {
  $("signin").hidden = true;
  $("patrol").hidden = false;
  if (!P.map) {
    P.map = openMap($("minimap"), { zoom: 14, api, workerUrl: "/patrol/maplibre-gl-worker.mjs" });
    P.map.layers.push(districtLayer(() => P.districts), gridLayer(() => P.streets.grids),
      poleLayer(() => P.streets.poles), routeLayer(() => P.routes), sceneLayer);
    P.map.onview = (m) => loadStreets(api, m, P.streets);
    api.get("/api/console/map/districts").then((g) => { P.districts = g; P.map.redraw(); }).catch(() => {});
    api.get("/api/console/config").then((c) => { P.speed = c.speed_mps; if (!P.here) P.map.setView(c.center, 12); }).catch(() => {});
  }
  renderDuty();
  renderJob();
  connect();
  watchPosition();
}

// ---------------------------------------------------------------- the link
function connect() {
  if (P.ws) return;
  const last = localStorage.getItem(K.last);
  const params = { };
  if (last) params.last = last;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${api.url("/api/patrol/ws", params)}`);
  P.ws = ws;
  ws.onopen = () => { P.backoff = 500; };
  ws.onmessage = (e) => receive(JSON.parse(e.data));
  ws.onclose = (e) => {
    P.ws = null;
    $("link").className = "link";
    $("link").textContent = t("patrol.offline");
    if (e.code === 1008 || e.code === 4401) return signinView(t("patrol.token_refused"));
    setTimeout(connect, P.backoff);
    P.backoff = Math.min(P.backoff * 2, 10000);
  };
  ws.onerror = async () => {
    // A refused upgrade (bad or expired token) shows only as an error: ask the REST side why.
    try { await api.get("/api/console/config"); } catch (err) { if (err.status === 401 || err.status === 403) { ws.onclose = null; P.ws = null; signinView(t("patrol.token_refused")); } }
  };
}

function send(frame) {
  if (!P.ws || P.ws.readyState !== WebSocket.OPEN) { log(t("patrol.not_connected")); return false; }
  P.ws.send(JSON.stringify({ ...frame, ref: ++P.ref }));
  return true;
}

// ---------------------------------------------------------------- refused answers
// The gateway says ok when an answer is on its way; the dispatcher may still refuse it (the
// incident was closed meanwhile, another phone acknowledged it): a "refused" frame then names
// the answer's entry. The officer is told why, and the job goes back to what the centre holds.
const GONE = new Set(["reject.unknown_incident", "reject.incident_state", "reject.not_assigned"]);

function savePending() {
  const now = Date.now();
  for (const [entry, s] of Object.entries(P.pending)) if (now - s.at > PENDING_MS) delete P.pending[entry];
  localStorage.setItem(K.pending, JSON.stringify(P.pending));
}

function answered(frame) {
  const sent = P.sent[frame.ref];
  if (!sent) return;
  delete P.sent[frame.ref];
  P.pending[frame.entry] = { ...sent, at: Date.now() };
  savePending();
  if (P.early[frame.entry]) refused(P.early[frame.entry]);
}

function refused(frame) {
  const sent = P.pending[frame.entry];
  if (!sent) { // not (yet) known as ours: its ok may still come
    if (Object.keys(P.early).length > 50) P.early = {};
    P.early[frame.entry] = frame;
    return;
  }
  delete P.pending[frame.entry];
  delete P.early[frame.entry];
  savePending();
  const text = t("patrol.answer_refused", { incident: frame.incident, action: stateName(frame.action), error: machineText(frame, "error") });
  log(text);
  $("notice").textContent = text;
  $("notice").hidden = false;
  P.job = jobAfter(P.job, sent, frame.error_key);
  saveJob();
  renderJob();
}

/** The job as the centre holds it after refusing the answer ``sent``. */
function jobAfter(job, sent, key) {
  const same = job && job.incident === sent.incident;
  if (GONE.has(key)) return same ? null : job; // no longer this unit's
  if (job && !same) return job; // it has another job since
  if (!sent.before) return job;
  if (key === "reject.decline_answered") return { ...sent.before, phase: "acknowledged" }; // answered on another phone
  return !job || job.phase === sent.action ? sent.before : job; // unless a later answer moved it on
}

function receive(frame) {
  if (frame.type === "hello") {
    P.unit = frame.unit;
    $("unit-id").textContent = frame.unit;
    $("link").className = "link up";
    $("link").textContent = t("patrol.online");
    if (P.duty) sendDuty("on_duty");
  } else if (frame.type === "inbox") {
    localStorage.setItem(K.last, frame.id);
    const m = frame.message;
    if (m.k === "dispatch") {
      $("notice").hidden = true;
      P.job = { ...m, phase: "dispatched" };
      saveJob();
      beep(P.audio);
      if (navigator.vibrate) navigator.vibrate([300, 120, 300]);
      log(t("patrol.dispatch", { incident: m.incident, type: typeName(m.type) }));
      renderJob();
    } else if (m.k === "note") { // the centre added to this job: shown under its text
      if (P.job && P.job.incident === m.incident) {
        P.job.notes = [...(P.job.notes || []), { text: m.text, ts: m.ts }];
        saveJob();
        beep(P.audio, [[880, 0.08]]);
        renderJob();
      }
    } else if (m.k === "cancel") {
      log(t("patrol.withdrawn", { incident: m.incident, reason: machineText(m, "reason") }));
      if (P.job && P.job.incident === m.incident) { P.job = null; saveJob(); renderJob(); }
    }
  } else if (frame.type === "error") {
    delete P.sent[frame.ref]; // the gateway did not take it: nothing to wait for
    log(t("patrol.refused", { error: frame.error }));
  } else if (frame.type === "ok") {
    answered(frame);
  } else if (frame.type === "refused") {
    refused(frame);
  }
}

function saveJob() {
  if (P.job) localStorage.setItem(K.job, JSON.stringify(P.job)); else localStorage.removeItem(K.job);
}

// ---------------------------------------------------------------- duty and position
function sendDuty(duty) {
  const frame = { type: "duty", duty };
  if (P.here && duty === "on_duty") { frame.lon = P.here.lon; frame.lat = P.here.lat; }
  send(frame);
}

function renderDuty() {
  $("duty").textContent = P.duty ? t("patrol.on_duty_button") : t("patrol.go_on_duty");
  $("duty").classList.toggle("on", P.duty);
}

// The browser's own geolocation messages are English: its error codes get the reader's words.
const GEO_ERRORS = { 1: "patrol.position_denied", 2: "patrol.position_no_fix", 3: "patrol.position_timeout" };
function geoErrorText(err) {
  const key = GEO_ERRORS[err.code];
  return key ? t(key) : t("patrol.position_unavailable", { error: err.message });
}

function watchPosition() {
  if (!navigator.geolocation || P.watch !== null) return;
  P.watch = navigator.geolocation.watchPosition((pos) => {
    const first = !P.here;
    P.here = { lon: pos.coords.longitude, lat: pos.coords.latitude, speed: pos.coords.speed, heading: pos.coords.heading };
    $("fix").textContent = t("patrol.position", { lat: P.here.lat.toFixed(5), lon: P.here.lon.toFixed(5), accuracy: Math.round(pos.coords.accuracy) });
    if (first) P.map.setView([P.here.lon, P.here.lat], 15);
    if (first) frame();
    if (P.duty && Date.now() - P.sentAt > POSITION_EVERY_MS) {
      const frame = { type: "position", lon: P.here.lon, lat: P.here.lat };
      if (P.here.speed != null && P.here.speed >= 0 && P.here.speed <= 100) frame.speed_mps = P.here.speed;
      if (P.here.heading != null && P.here.heading >= 0 && P.here.heading < 360) frame.heading = P.here.heading;
      if (send(frame)) P.sentAt = Date.now();
    }
    renderNav();
  }, (err) => { $("fix").textContent = geoErrorText(err); }, { enableHighAccuracy: true, maximumAge: 5000 });
}

// ---------------------------------------------------------------- the job
function renderJob() {
  const job = P.job;
  $("job").hidden = !job;
  $("idle").hidden = !!job;
  if (!job) { P.route = null; P.routes = []; $("job-road").hidden = true; P.map && P.map.redraw(); return; }
  $("job").classList.toggle("ringing", job.phase === "dispatched");
  const prio = $("job-prio");
  prio.className = `prio p${job.priority}`;
  prio.textContent = `P${job.priority}`;
  $("job-type").textContent = `${typeName(job.type)} #${job.incident}`;
  $("job-place").textContent = [job.pole && t("console.pole", { code: job.pole }), districtName(job.district)].filter(Boolean).join(" · ");
  $("job-text").textContent = machineText(job, "text") || "";
  fill($("job-notes"), (job.notes || []).map((n) => el("li", { text: t("patrol.note", { time: timeText(n.ts), text: n.text }) })));
  $("answer").hidden = job.phase !== "dispatched";
  $("progress").hidden = job.phase === "dispatched";
  $("job-state").textContent = job.phase === "dispatched"
    ? t("patrol.answer_by", { time: timeText(job.ack_by) }) : t("patrol.status", { state: stateName(job.phase) });
  for (const b of $("progress").querySelectorAll("button")) b.classList.toggle("done", b.dataset.action === job.phase);
  renderNav();
  frame();
}

/** Show the scene and the unit together, once per job (then the user may pan and zoom). */
function frame() {
  const job = P.job;
  if (!P.map || !job || P.framed === job.incident) return;
  if (P.here) {
    P.map.fit([[job.lon, job.lat], [P.here.lon, P.here.lat]], 60, 16.5);
    P.framed = job.incident;
  } else {
    P.map.setView([job.lon, job.lat], 16);
  }
}

function renderNav() {
  const job = P.job;
  if (!job) return;
  if (!P.here) {
    $("job-distance").textContent = job.distance_m != null ? distanceText(job.distance_m) : "–";
    $("job-bearing").textContent = t("patrol.no_fix");
    $("job-eta").textContent = job.distance_m != null ? durationText(job.distance_m / P.speed) : "–";
    followRoad(job);
    return;
  }
  const d = haversine(P.here.lon, P.here.lat, job.lon, job.lat);
  const b = bearing(P.here.lon, P.here.lat, job.lon, job.lat);
  $("job-distance").textContent = distanceText(d);
  $("job-bearing").textContent = `${Math.round(b)}° ${compass(b)}`;
  const byRoad = P.route && P.route.incident === job.incident && P.route.source === "road";
  $("job-eta").textContent = durationText(byRoad ? P.route.eta_s : d / P.speed);
  $("arrow").style.transform = `rotate(${b}deg)`;
  followRoad(job);
  P.map && P.map.redraw();
}

const OFF_ROUTE_M = 150;

/** The road route from here to the scene: fetched for each job, and again when the unit has
 *  left it; its road distance and time shown under the straight-line figures. */
async function followRoad(job) {
  const road = $("job-road");
  const known = P.route && P.route.incident === job.incident;
  if (!known && job.eta_s != null && job.distance_m != null) {
    road.textContent = roadText(job.distance_m, job.eta_s); // the dispatcher's figure until a route comes
    road.hidden = false;
  }
  if (P.routing || !P.here) return;
  const start = known && P.route.coords[0];
  if (known && haversine(P.here.lon, P.here.lat, start[0], start[1]) < OFF_ROUTE_M) return;
  P.routing = true;
  const found = await fetchRoute(api, [P.here.lon, P.here.lat], [job.lon, job.lat]);
  P.routing = false;
  if (!found || !P.job || P.job.incident !== job.incident || !found.coords) return;
  P.route = { ...found, incident: job.incident };
  P.routes = [found.coords];
  road.textContent = roadText(found.distance_m, found.eta_s);
  road.hidden = false;
  P.map && P.map.redraw();
}

function answer(type, action) {
  const job = P.job;
  if (!job) return;
  const frame = type === "status" ? { type, incident: job.incident, action } : { type, incident: job.incident };
  const said = type === "ack" ? "acknowledged" : type === "decline" ? "declined" : action;
  if (!send(frame)) { // said where the officer looks, not only in the log below the map
    $("notice").textContent = t("patrol.not_sent", { incident: job.incident, action: stateName(said) });
    $("notice").hidden = false;
    return;
  }
  P.sent[P.ref] = { incident: job.incident, action: said, before: { ...job } };
  $("notice").hidden = true;
  if (type === "decline") { log(t("patrol.declined", { incident: job.incident })); P.job = null; }
  else { job.phase = type === "ack" ? "acknowledged" : action; log(t("patrol.answered", { incident: job.incident, state: stateName(job.phase) })); }
  if (job.phase === "resolved") P.job = null;
  saveJob();
  renderJob();
}

const sceneLayer = {
  draw(ctx, m) {
    if (P.job) {
      const [x, y] = m.toScreen(P.job.lon, P.job.lat);
      ctx.fillStyle = "#ff5f56";
      ctx.beginPath(); ctx.arc(x, y, 8, 0, Math.PI * 2); ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 2; ctx.stroke();
      if (P.here && !(P.route && P.route.incident === P.job.incident)) {
        const [hx, hy] = m.toScreen(P.here.lon, P.here.lat);
        ctx.setLineDash([5, 5]); ctx.strokeStyle = "rgba(108,182,255,.8)";
        ctx.beginPath(); ctx.moveTo(hx, hy); ctx.lineTo(x, y); ctx.stroke(); ctx.setLineDash([]);
      }
    }
    if (P.here) {
      const [x, y] = m.toScreen(P.here.lon, P.here.lat);
      ctx.fillStyle = "rgba(108,182,255,.25)";
      ctx.beginPath(); ctx.arc(x, y, 14, 0, Math.PI * 2); ctx.fill();
      ctx.fillStyle = "#6cb6ff";
      ctx.beginPath(); ctx.arc(x, y, 6, 0, Math.PI * 2); ctx.fill();
      ctx.strokeStyle = "#0b0f14"; ctx.lineWidth = 2; ctx.stroke();
    }
  },
};

// ---------------------------------------------------------------- wiring
document.addEventListener("DOMContentLoaded", async () => {
  await loadLanguage();
  translatePage();
  $("lang-signin").replaceWith(languageSwitch());
  $("lang").replaceWith(languageSwitch());
  takeTokenFromUrl();
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("unit-token").value.trim();
    if (!token) return;
    P.token = token;
    localStorage.setItem(K.token, token);
    localStorage.removeItem(K.last);
    P.audio ||= new AudioContext();
    start();
  });
  $("duty").onclick = () => {
    P.audio ||= new AudioContext();
    P.duty = !P.duty;
    localStorage.setItem(K.duty, P.duty ? "on" : "off");
    sendDuty(P.duty ? "on_duty" : "off_duty");
    log(P.duty ? t("patrol.on_duty") : t("patrol.off_duty"));
    renderDuty();
  };
  $("accept").onclick = () => answer("ack");
  $("decline").onclick = () => answer("decline");
  $("notice").onclick = () => { $("notice").hidden = true; };
  for (const b of $("progress").querySelectorAll("button")) b.onclick = () => answer("status", b.dataset.action);
  $("signout").onclick = () => {
    if (P.duty) sendDuty("off_duty");
    for (const k of Object.values(K)) localStorage.removeItem(k);
    location.reload();
  };
  document.addEventListener("pointerdown", () => { P.audio ||= new AudioContext(); }, { once: true });
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/patrol/sw.js", { scope: "/patrol/" }).catch(() => {});
  if (P.token) start(); else signinView();
});
