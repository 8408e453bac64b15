// Shared by the command centre and the patrol app: DOM building (text only, never HTML from
// data), the API client, geodesy and formatting.

import { t, tOr, stateName } from "./i18n.js";

/** Build an element: el("div#id.card.p1", {title: "x", onclick: f}, child, "text", ...).
 *  Strings become text nodes, so data can never become markup. */
export function el(spec, attrs = {}, ...children) {
  const parts = spec.split(/(?=[.#])/);
  const tag = parts[0].startsWith(".") || parts[0].startsWith("#") ? "div" : parts.shift();
  const node = document.createElement(tag || "div");
  const classes = [];
  for (const part of parts) {
    if (part[0] === "#") node.id = part.slice(1);
    else classes.push(part.slice(1));
  }
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = String(value);
    else if (key in node && typeof node[key] !== "function" && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(apiMessage(status, body));
    this.status = status;
    this.body = body;
  }
}

/** What a failed call says, in the reader's language where the gateway gave a key or none
 *  at all (no connection: status 0; a proxy's or server's error page); else the gateway's. */
function apiMessage(status, body) {
  if (body && body.error_key) return machineText(body, "error");
  if (body && body.error) return body.error;
  return status ? t("common.http_error", { status }) : t("common.unreachable");
}

/** A JSON API client that sends a bearer token. */
export class Api {
  constructor(tokenFn, onUnauthorized) {
    this.token = tokenFn;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = this.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin", cache: "no-store",
      });
    } catch { // offline, refused, reset: the browser's own words are English ("Failed to fetch")
      throw new ApiError(0, null);
    }
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) data = await response.json();
    if (response.status === 401) this.onUnauthorized();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  get(path) { return this.call("GET", path); }
  post(path, body) { return this.call("POST", path, body ?? {}); }
  /** A URL for the browser to open itself (links, images, EventSource): token in the query. */
  url(path, params = {}) {
    const query = new URLSearchParams(params);
    const token = this.token();
    if (token) query.set("token", token);
    const q = query.toString();
    return q ? `${path}${path.includes("?") ? "&" : "?"}${q}` : path;
  }
}

const R = 6372797.560856; // the Earth radius Redis' GEO commands (and polewatch.geo) use
const rad = (d) => (d * Math.PI) / 180;

export function haversine(lon1, lat1, lon2, lat2) {
  const dlat = rad(lat2 - lat1), dlon = rad(lon2 - lon1);
  const a = Math.sin(dlat / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(dlon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(a)));
}

export function bearing(lon1, lat1, lon2, lat2) {
  const y = Math.sin(rad(lon2 - lon1)) * Math.cos(rad(lat2));
  const x = Math.cos(rad(lat1)) * Math.sin(rad(lat2)) -
    Math.sin(rad(lat1)) * Math.cos(rad(lat2)) * Math.cos(rad(lon2 - lon1));
  return ((Math.atan2(y, x) * 180) / Math.PI + 360) % 360;
}

const COMPASS = ["n", "ne", "e", "se", "s", "sw", "w", "nw"];
/** The compass point nearest ``deg`` in the page's language (``W`` / ``西``). */
export const compass = (deg) => t(`compass.${COMPASS[Math.round(deg / 45) % 8]}`);

export function distanceText(m) {
  if (m === null || m === undefined || !isFinite(m)) return "–";
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(m < 10000 ? 1 : 0)} km`;
}

/** A text the dispatcher wrote (an event's ``detail``, a withdrawal's ``reason``, a refusal's
 *  ``error``) in the reader's language: the gateway sends ``<field>_key`` and ``<field>_args``
 *  beside it when it is one of the dispatcher's forms (polewatch/details.py); metres (``*_m``)
 *  and seconds (``*_s``) are formatted, a nested reason is translated too. Otherwise, as written. */
export function machineText(item, field = "detail") {
  const key = item && item[`${field}_key`];
  return key ? keyedText(key, item[`${field}_args`]) : item && item[field];
}

function keyedText(key, args) {
  const params = {};
  for (const [name, v] of Object.entries(args || {})) {
    params[name] = v !== null && typeof v === "object" ? (v.key ? keyedText(v.key, v.args) : v.text)
      : name.endsWith("_m") ? distanceText(v) : name.endsWith("_s") ? durationText(v)
        : name === "state" ? stateName(v) : v;
  }
  return t(key, params);
}

/** The message of a failed API call (an ``ApiError``) in the reader's language. */
export const errorText = (err) => machineText(err.body, "error") || err.message;

export function durationText(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  const two = (n) => String(n).padStart(2, "0");
  if (s < 60) return tOr("duration.short.s", "{n}s", { n: s });
  if (s < 3600) return tOr("duration.short.m_s", "{m}m {s}s", { m: Math.floor(s / 60), s: two(s % 60) });
  const h = Math.floor(s / 3600);
  return h < 48 ? tOr("duration.short.h_m", "{h}h {m}m", { h, m: two(Math.floor((s % 3600) / 60)) })
    : tOr("duration.short.d", "{n}d", { n: Math.floor(h / 24) });
}

export function clockText(ts) {
  if (!ts) return "–";
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

export const label = (s) => String(s ?? "").replaceAll("_", " ");

/** A short WebAudio alert: no audio file needed. */
export function beep(ctx, pattern = [[880, 0.12], [0, 0.06], [1175, 0.18]]) {
  if (!ctx) return;
  let t = ctx.currentTime + 0.02;
  for (const [freq, len] of pattern) {
    if (freq) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + len);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t);
      osc.stop(t + len + 0.02);
    }
    t += len;
  }
}

/** Show a multipart/x-mixed-replace JPEG stream in ``img``: each part becomes a blob URL.
 *  (Browsers render such streams in an <img> only sometimes; reading it ourselves always
 *  works and stops cleanly with ``signal``.) */
export async function playMjpeg(img, url, signal) {
  const response = await fetch(url, { signal, cache: "no-store" });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const reader = response.body.getReader();
  const ascii = new TextDecoder("latin1");
  let buffer = new Uint8Array(0);
  let shown = null;
  signal.addEventListener("abort", () => { if (shown) URL.revokeObjectURL(shown); });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer);
    joined.set(value, buffer.length);
    buffer = joined;
    for (;;) {
      const head = ascii.decode(buffer.subarray(0, Math.min(buffer.length, 1024)));
      const end = head.indexOf("\r\n\r\n");
      const length = /Content-Length:\s*(\d+)/i.exec(head.slice(0, end));
      if (end < 0 || !length) break;
      const start = end + 4, stop = start + Number(length[1]);
      if (buffer.length < stop) break;
      const url2 = URL.createObjectURL(new Blob([buffer.slice(start, stop)], { type: "image/jpeg" }));
      img.src = url2;
      if (shown) URL.revokeObjectURL(shown);
      shown = url2;
      buffer = buffer.slice(stop);
    }
  }
}
