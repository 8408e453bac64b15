// The call-taker panel: find the pole a caller reads out. The caller's own position (typed
// coordinates, a pasted map link, a phone's location fix; the gateway parses it) ranks what
// they may have meant, and a pole far from them, or a plausible misreading much nearer to
// them, is warned about loudly: the incident cannot be raised until the call-taker confirms
// the place with the caller.

import { el, fill, distanceText, label, beep, errorText } from "./common.js";
import { t, tOr, typeName, districtName, showGrid } from "./i18n.js";

const TYPES = ["call", "citizen_sos", "intrusion", "crowd", "loitering", "door_forced", "tamper"];
const FAR_M = 2000; // the gateway's own limit (polewatch.poles.index.FAR_M)
const $ = (id) => document.getElementById(id);

const mistakeName = (m) => tOr(`mistake.${m}`, label(m));

/** The panel, bound to the console's API client, state and map. */
export function callTaker({ api, S, map, audio }) {
  let caller = null;

  async function lookUp(event) {
    if (event) event.preventDefault();
    const code = $("call-code").value.trim();
    if (!code) return;
    const where = $("call-where").value.trim();
    const query = where ? `?${new URLSearchParams({ at: where })}` : "";
    caller = null;
    fill($("call-caller"));
    try {
      const found = await api.get(`/api/poles/${encodeURIComponent(code)}${query}`);
      showCaller(found.caller);
      showPole(found.pole, found);
    } catch (err) {
      const body = err.body || {};
      showCaller(body.caller);
      if (err.status === 404 && body.candidates) {
        S.found = null;
        warn([]);
        fill($("call-result"), body.candidates.length
          ? [el("p.muted", { text: t("console.no_pole", { code }) }),
            el("ol.cands#candidates", {}, body.candidates.map((c) => candidate(c)))]
          : el("p.error", { text: t("console.no_pole_none", { code }) }));
      } else {
        warn([]);
        // a code the gateway cannot read names its pattern in English: say what a code is
        const unreadable = (err.status === 400 || err.status === 422) && !(err.body || {}).error_key;
        fill($("call-result"), el("p.error", { text: unreadable ? t("call.code_invalid", { code }) : errorText(err) }));
      }
    }
  }

  function showCaller(fix) {
    caller = fix || null;
    fill($("call-caller"), caller ? t("call.caller_at", {
      lat: caller.lat.toFixed(5), lon: caller.lon.toFixed(5),
      source: caller.accuracy_m ? `${caller.source}, ±${Math.round(caller.accuracy_m)} m` : caller.source,
    }) : null);
  }

  function candidate(c) {
    return el("li", { onclick: () => pick(c) },
      el("span", {}, el("b", { text: c.code }), ` ${c.road || ""}`),
      el("span.why", { text: [mistakeName(c.mistake), districtName(c.district),
        c.distance_m != null ? distanceText(c.distance_m) : null].filter(Boolean).join(" · ") }));
  }

  /** A candidate the call-taker chose: still checked against the caller's position. */
  function pick(c) {
    const far = c.distance_m != null && c.distance_m > FAR_M;
    showPole(c, { candidates: [c], checks: far ? ["far_from_caller"] : [] });
  }

  /** The loud part: what must be confirmed with the caller (empty: nothing). */
  function warn(lines) {
    const box = $("call-warning");
    fill(box, lines);
    box.hidden = !lines.length;
    if (lines.length) beep(audio(), [[880, 0.12], [0, 0.06], [880, 0.12]]);
  }

  function showPole(pole, found = { candidates: [], checks: [] }) {
    S.found = pole;
    map().setView([pole.lon, pole.lat], Math.max(map().zoom, 16.5));
    const checks = found.checks || [];
    const others = (found.candidates || []).filter((c) => c.code !== pole.code);
    const mine = (found.candidates || []).find((c) => c.code === pole.code);
    const loud = [];
    if (checks.includes("far_from_caller") && mine) {
      loud.push(el("p#call-far", { text: t("call.far", { code: pole.code, distance: distanceText(mine.distance_m) }) }));
    }
    if (checks.includes("nearer_candidate") && others.length) {
      const best = found.candidates[0];
      loud.push(el("p#call-nearer", {},
        t("call.nearer", { code: best.code, mistake: mistakeName(best.mistake), distance: distanceText(best.distance_m) }), " ",
        el("button#call-use", { type: "button", text: t("call.use", { code: best.code }), onclick: () => pick(best) })));
    }
    warn(loud);
    const confirm = loud.length ? el("input#call-confirm", { type: "checkbox" }) : null;
    const type = el("select#call-type", {}, TYPES.map((x) => el("option", { value: x, text: typeName(x) })));
    const text = el("input#call-text.wide", { placeholder: t("console.caller_says"), maxLength: 2000 });
    const phone = el("input#call-phone", { placeholder: t("console.caller_phone"), maxLength: 32 });
    const notice = el("p.notice#call-notice");
    const form = el("form", {
      onsubmit: async (e) => {
        e.preventDefault();
        if (confirm && !confirm.checked) { notice.textContent = t("call.confirm_needed"); return; }
        try {
          const body = { pole: pole.code, type: type.value };
          if (text.value.trim()) body.text = text.value.trim();
          if (phone.value.trim()) body.phone = phone.value.trim();
          if (caller) { body.lon = caller.lon; body.lat = caller.lat; }
          await api.post("/api/incidents", body);
          notice.textContent = t("console.raised_notice");
          text.value = "";
        } catch (err) { notice.textContent = err.message; }
      },
    }, type, phone, text,
    confirm ? el("label.confirm", {}, confirm, ` ${t("call.confirm")}`) : null,
    el("button.primary.wide#call-raise", { type: "submit", text: t("console.raise") }));
    fill($("call-result"), el("div.pole-card", {},
      el("div.code", { text: pole.code }),
      el("div", { text: [pole.road, districtName(pole.district)].filter(Boolean).join(t("common.comma")) }),
      showGrid(el("div.muted"), pole.grid, (grid) => `${t("console.pole_grid", { grid })} · ${pole.lat.toFixed(5)}, ${pole.lon.toFixed(5)}`),
      others.length ? el("div.also", {}, el("span.muted", { text: t("call.also") }),
        el("ol.cands#look-alikes", {}, others.map((c) => candidate(c)))) : null,
      form, notice));
  }

  return { lookUp, showPole };
}
