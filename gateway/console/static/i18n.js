// The pages' language: the message catalogue of the chosen language, fetched once from this
// origin (/i18n/catalogue.json; English fills any gap), t(key, params) to look a message up,
// a visible switch, and times in the city's time zone.
//
//   import { loadLanguage, t, translatePage, languageSwitch, timeText } from "./i18n.js";
//   await loadLanguage();            // before the first text is drawn
//   translatePage();                 // data-i18n="key" (text), data-i18n-placeholder, -title, -aria-label
//   el("span", {}, t("citizen.unit", { unit: "P-1" }));

const STORE = "pw.lang";
let catalogue = { lang: "en", languages: { en: "English" }, timezone: "UTC", messages: {} };

/** Fetch the catalogue: the stored choice (localStorage) if any, else the server decides
 *  (cookie, Accept-Language, the city's default language). */
export async function loadLanguage() {
  const chosen = localStorage.getItem(STORE);
  const query = chosen ? `?lang=${encodeURIComponent(chosen)}` : "";
  try {
    const response = await fetch(`/i18n/catalogue.json${query}`, { credentials: "same-origin" });
    if (response.ok) catalogue = await response.json();
  } catch { /* offline and not cached: the pages keep the English text they were written with */ }
  document.documentElement.lang = catalogue.lang;
  return catalogue.lang;
}

/** The current language tag (zh-CN or en). */
export const language = () => catalogue.lang;

/** The city's time zone (IANA name) from the settings. */
export const timeZone = () => catalogue.timezone;

/** The message ``key`` with ``{name}`` placeholders filled; the key itself when unknown. */
export function t(key, params = {}) {
  const text = catalogue.messages[key];
  return text === undefined ? key : fillIn(text, params);
}

/** The message ``key`` if the catalogue has it, else ``fallback`` (for open sets: custom
 *  alarm types a deployment adds; for text needed before or without a catalogue), with
 *  ``{name}`` placeholders filled from ``params``. */
export function tOr(key, fallback, params = {}) {
  return fillIn(key in catalogue.messages ? catalogue.messages[key] : fallback, params);
}

function fillIn(text, params) {
  return String(text).replace(/\{([a-z_][a-z0-9_]*)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

const pretty = (s) => String(s ?? "").replaceAll("_", " ");
export const stateName = (s) => tOr(`state.${s}`, pretty(s));
export const unitStatusName = (s) => tOr(`unit.${s}`, pretty(s));
export const typeName = (s) => tOr(`type.${s}`, pretty(s));
/** Who did it: the dispatcher's own actions are named in the page's language, a login as typed. */
export const actorName = (s) => (s === "dispatcher" ? tOr("actor.dispatcher", s) : s);
/** A unit's kit (``patrol``, ``medic``): the catalogue's name where it has one, else as configured. */
export const capabilityName = (s) => tOr(`capability.${s}`, s);
/** Who raised an alarm (``camera:cam-3``, ``button:1234567``, ``operator:ada``) as people say
 *  it ("摄像机 cam-3"); a source of a kind the catalogue does not know, as stored. */
export function sourceName(s) {
  if (s === "gateway:citizen") return tOr("source.citizen", s);
  const [kind, ...rest] = String(s ?? "").split(":");
  return rest.length ? tOr(`source.${kind}`, s, { id: rest.join(":") }) : s;
}
/** A district as stored (``Futian``, ``Bao'an``) in the page's language (``福田区``). */
export const districtName = (s) => (s ? tOr(`district.${String(s).toLowerCase().replace(/[^a-z0-9]/g, "")}`, s) : s);

/** Translate the static page: data-i18n (text), data-i18n-placeholder, data-i18n-title,
 *  data-i18n-aria-label. */
export function translatePage(root = document) {
  const known = (key) => key in catalogue.messages;
  for (const node of root.querySelectorAll("[data-i18n]")) {
    if (known(node.dataset.i18n)) node.textContent = t(node.dataset.i18n);
  }
  for (const [attr, data] of [["placeholder", "i18nPlaceholder"], ["title", "i18nTitle"],
    ["aria-label", "i18nAriaLabel"]]) {
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      if (known(node.dataset[data])) node.setAttribute(attr, t(node.dataset[data]));
    }
  }
  const title = document.querySelector("title[data-i18n]");
  if (title && known(title.dataset.i18n)) document.title = t(title.dataset.i18n);
}

/** Remember a language (localStorage here, the cookie on the server) and reload the page. */
export async function setLanguage(tag) {
  localStorage.setItem(STORE, tag);
  await fetch(`/i18n/catalogue.json?lang=${encodeURIComponent(tag)}`, { credentials: "same-origin" });
  location.reload();
}

/** A visible language switch (a <select> of every language, each named in itself). */
export function languageSwitch() {
  const select = document.createElement("select");
  select.className = "lang-switch";
  select.setAttribute("aria-label", t("lang.switch"));
  select.title = t("lang.switch");
  for (const [tag, name] of Object.entries(catalogue.languages)) {
    const option = document.createElement("option");
    option.value = tag;
    option.textContent = name;
    option.lang = tag;
    option.selected = tag === catalogue.lang;
    select.append(option);
  }
  select.addEventListener("change", () => setLanguage(select.value));
  return select;
}

function format(ts, options) {
  if (!ts) return "–";
  return new Intl.DateTimeFormat(catalogue.lang, { timeZone: catalogue.timezone, hourCycle: "h23", ...options })
    .format(new Date(ts * 1000));
}

/** A clock time (seconds since the epoch) in the city's time zone: 14:03:09. */
export const timeText = (ts) => format(ts, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** A date and time in the city's time zone. */
export const dateTimeText = (ts) => format(ts, {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
});

/** When something happened: its clock time today, its date and time before (in the city). */
export function whenText(ts) {
  const day = (s) => format(s, { year: "numeric", month: "2-digit", day: "2-digit" });
  return ts && day(ts) === day(Date.now() / 1000) ? timeText(ts) : dateTimeText(ts);
}

const gridNames = new Map();

/** Show a responsibility grid in ``node`` by its human name (福田·片区07·23): the id at once,
 *  the name when the gateway has answered (names are cached for the page's life). */
export function showGrid(node, id, format = (name) => name) {
  if (!id) { node.textContent = format("–"); return node; }
  node.title = id;
  node.textContent = format(gridNames.get(id) || id);
  if (!gridNames.has(id)) {
    gridNames.set(id, null);
    const query = new URLSearchParams({ ids: id, lang: catalogue.lang });
    fetch(`/i18n/grids?${query}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : {}))
      .then((names) => { gridNames.set(id, names[id] || id); node.textContent = format(gridNames.get(id)); })
      .catch(() => gridNames.delete(id));
  } else if (gridNames.get(id) === null) {
    setTimeout(() => showGrid(node, id, format), 300); // a request for it is on its way
  }
  return node;
}
