/*
 * Reply feedback (issue 25; the UI contract's button[data-action=rate] and button[data-action=rate-reason]).
 *
 * A press sends {kind: "rate", seq, value, reason, text} over the chat socket; nothing changes on the page until the
 * relay has stored it and sent the reply back re-rendered to every tab of the conversation (data-update="rating").
 * Then the tab that pressed puts the focus back on the same control, says the new rating through the polite
 * announcer and tells hosts (vizochok:feedback); other tabs only show it. Pressing the pressed value clears it.
 */
import * as announcer from "./announcer.js";
import { emit } from "./bridges.js";
import * as connection from "./connection.js";
import { ATTR, DATA, SEL } from "./hooks.js";

/** This tab's last press, until the relay confirms it: which reply, and which control to focus again. */
let pending = null;

function send(article, value, reason, text) {
  const seq = Number(article.getAttribute(ATTR.seq));
  if (!seq) return null;
  const frame = { kind: "rate", seq, value };
  if (reason) frame.reason = reason;
  if (text) frame.text = text;
  return connection.sendNow(JSON.stringify(frame)) ? seq : null;
}

function pressed(button) {
  return button.getAttribute("aria-pressed") === "true";
}

function clicked(evt) {
  const button = evt.target.closest(`${SEL.rate}, ${SEL.rateReason}`);
  const article = button && button.closest(SEL.message);
  if (!article) return;
  let value = "down";
  let reason = "";
  let text = "";
  if (button.matches(SEL.rate)) {
    value = pressed(button) ? "none" : button.dataset[DATA.value];
  } else {
    reason = button.dataset[DATA.value];
    const field = article.querySelector(SEL.rateText);
    text = field ? field.value.trim().slice(0, 500) : "";
  }
  const seq = send(article, value, reason, text);
  if (seq !== null) pending = { seq, focus: `[${ATTR.action}="${button.dataset[DATA.action]}"][${ATTR.value}="${button.dataset[DATA.value]}"]` };
}

/**
 * The optional comment goes when the shopper leaves the field having changed it, with the chosen reason ("other"
 * if none yet); leaving it for a reason button sends nothing here, since that press carries the comment.
 */
function commented(evt) {
  const field = evt.target;
  if (!(field instanceof HTMLTextAreaElement) || !field.matches(SEL.rateText)) return;
  const article = field.closest(SEL.message);
  if (!article || field.value.trim() === field.defaultValue.trim()) return;
  const next = evt.relatedTarget;
  if (next instanceof Element && next.matches(SEL.rateReason) && article.contains(next)) return;
  const chosen = article.querySelector(`${SEL.rateReason}[aria-pressed="true"]`);
  const seq = send(article, "down", chosen ? chosen.dataset[DATA.value] : "other", field.value.trim().slice(0, 500));
  if (seq) pending = { seq, focus: null };
}

/**
 * Whether a reply came back because its rating changed: its rating group carries what to announce. (Read from the
 * group, not the article: while htmx settles a swap by id, the new article still wears the old one's attributes.)
 */
export function isUpdate(node) {
  const group = node.querySelector(SEL.rating);
  return Boolean(group && group.hasAttribute(ATTR.announce));
}

/** A reply re-rendered because its rating changed (feed.js hands it here instead of announcing it as a reply). */
export function updated(node) {
  const seq = Number(node.getAttribute(ATTR.seq));
  if (!pending || pending.seq !== seq) return; // rated in another tab: shown there, said and reported there
  const group = node.querySelector(SEL.rating);
  const chosen = node.querySelector(`${SEL.rateReason}[aria-pressed="true"]`);
  emit("feedback", {
    seq,
    value: (group && group.dataset[DATA.rating]) || "none",
    reason: chosen ? chosen.dataset[DATA.value] : null,
  });
  if (group && group.dataset[DATA.announce]) announcer.announce(group.dataset[DATA.announce]);
  const target = pending.focus && node.querySelector(pending.focus);
  if (target) target.focus();
  pending = null;
}

export function init() {
  document.addEventListener("click", clicked);
  document.addEventListener("focusout", commented);
}
