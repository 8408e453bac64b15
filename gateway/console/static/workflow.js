// The operator's workflow around an incident: results of actions that stay until dismissed,
// a cancellation that asks for a reason and a confirmation, a split dialog that tells the
// reports apart, and the history of finished incidents (search, then open any of them: a
// resolved one can be closed with an evaluation from its detail).

import { el, fill, distanceText, errorText, machineText } from "./common.js";
import { t, stateName, typeName, sourceName, timeText, dateTimeText, whenText, districtName } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/** Show the result of an action in the notices list until the operator dismisses it. */
export function notify(text, kind = "ok") {
  const item = el(`li.${kind}`, { role: kind === "error" ? "alert" : "status" },
    el("span", { text }),
    el("button.ghost.dismiss", { type: "button", title: t("workflow.dismiss"), text: "×",
      onclick: () => item.remove() }));
  $("notices").append(item);
  return item;
}

/** Run an incident action, its outcome kept as a notice (success or the refusal). */
export async function perform(api, incident, verb, body, done) {
  try {
    await api.post(`/api/incidents/${encodeURIComponent(incident)}/${verb}`, body);
    notify(`#${incident}: ${done}`);
    return true;
  } catch (err) {
    notify(`#${incident}: ${errorText(err)}`, "error");
    return false;
  }
}

/** A modal dialog built from ``children`` with a confirming button; resolves with what
 *  ``read()`` gives when confirmed (null when the operator backs out). ``read`` returns
 *  undefined to keep the dialog open (its own message says why). */
function ask(id, title, children, confirmText, read) {
  const dialog = el(`dialog#${id}.ask`, {});
  const problem = el("p.error", { role: "alert" });
  return new Promise((resolve) => {
    const finish = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    fill(dialog, el("form", { method: "dialog", onsubmit: (e) => {
      e.preventDefault();
      const value = read(problem);
      if (value !== undefined) finish(value);
    } },
    el("h3", { text: title }), children, problem,
    el("div.actions", {},
      el("button.danger", { type: "submit", id: `${id}-confirm`, text: confirmText }),
      el("button.ghost", { type: "button", id: `${id}-back`, text: t("workflow.back"), onclick: () => finish(null) }))));
    dialog.addEventListener("cancel", () => finish(null));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Ask why an incident is cancelled, and that it really is; the reason, or null. */
export function askCancel(inc) {
  const reason = el("textarea#cancel-reason", { rows: 3, maxLength: 2000,
    placeholder: t("workflow.cancel_reason") });
  return ask("cancel-dialog", t("workflow.cancel_title", { id: inc.id }),
    [el("p", { text: `${typeName(inc.type)} · ${stateName(inc.state)}${inc.pole ? ` · ${inc.pole}` : ""}` }),
      el("label", {}, t("workflow.cancel_reason"), reason)],
    t("workflow.cancel_confirm"), (problem) => {
      const text = reason.value.trim();
      if (!text) { problem.textContent = t("workflow.cancel_reason_needed"); return undefined; }
      return text;
    });
}

const quoted = (text) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);

/** Choose the report to split out of an incident, each told apart by source, time and
 *  text; its alarm id, or null. */
export function askSplit(inc, alarms) {
  const choices = alarms.filter((a) => a.id && !a.expired).map((a, i) => el("label.split-choice", {},
    el("input", { type: "radio", name: "split-alarm", value: a.id, checked: i === alarms.length - 1 }),
    el("span", {},
      el("b", { text: a.type ? typeName(a.type) : t("console.alarm") }),
      el("span.src", { text: ` · ${sourceName(a.source) || "?"} · ${timeText(a.ts)}` }),
      a.text ? el("span.text", { text: ` · “${quoted(machineText(a, "text"))}”` }) : null,
      a.phone ? el("span.src", { text: ` · ☎ ${a.phone}` }) : null,
      a.extra && a.extra.caller_distance_m != null
        ? el("span.src", { text: ` · ${t("workflow.reporter_away", { distance: distanceText(a.extra.caller_distance_m) })}` }) : null,
      el("span.muted", { text: ` · ${a.id}` }))));
  return ask("split-dialog", t("workflow.split_title", { id: inc.id }), el("div.split-list", {}, choices),
    t("console.split"), (problem) => {
      const chosen = document.querySelector("#split-dialog input[name=split-alarm]:checked");
      if (!chosen) { problem.textContent = t("workflow.split_choose"); return undefined; }
      return chosen.value;
    });
}

/** The history panel: finished incidents found by state and text, a page at a time (the
 * archive's too, when the gateway has one; a note says when it has none; a page that has
 * more says how far back it has searched); ``open`` shows one. */
export function history(api, open) {
  let next = null;
  const row = (inc) => el("li.h", {
    dataset: { id: inc.id, state: inc.state }, onclick: () => open(inc.id) },
  el(`span.prio.p${inc.priority}`, { text: `P${inc.priority}` }),
  el("span.type", { text: `${typeName(inc.type)} #${inc.id}` }),
  el(`span.chip.${inc.state}`, { text: stateName(inc.state) }),
  el("span.where", { text: [inc.pole && t("console.pole", { code: inc.pole }), districtName(inc.district), whenText(inc.finished),
    inc.reason, inc.archived ? t("workflow.archived") : null].filter(Boolean).join(" · ") }));
  async function search(event, more = false) {
    if (event) event.preventDefault();
    const params = new URLSearchParams({ state: $("history-state").value, limit: "50" });
    const q = $("history-q").value.trim();
    if (q) params.set("q", q);
    if (more && next) params.set("before", next);
    const list = $("history-list");
    try {
      const found = await api.get(`/api/console/history?${params}`);
      next = found.next;
      if (!more) fill(list);
      list.querySelector("li.empty")?.remove();
      list.append(...found.incidents.map(row));
      // A page may be short, even empty, and have more: it reads a bounded part of Redis'
      // audit streams. "More" stays in sight below the list, with how far back it has gone.
      if (!list.querySelector("li.h")) list.append(el("li.empty", {
        text: t(next ? "workflow.history_none_yet" : "workflow.history_none") }));
      const searched = $("history-searched");
      searched.hidden = !next;
      searched.replaceChildren(...(next ? [
        `${t("workflow.history_searched", { time: dateTimeText(found.searched_to) })} `,
        el("button#history-more.ghost", { type: "button", text: t("workflow.history_more"),
          onclick: () => search(null, true) })] : []));
      $("history-note").hidden = found.archive;
    } catch (err) {
      fill(list, el("li.error", { text: err.message }));
    }
  }
  $("history-form").addEventListener("submit", search);
  $("history-state").addEventListener("change", search);
  return search;
}
