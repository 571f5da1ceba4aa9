/*
 * Streamed text by position (chat/feed/feed.py): a tab says what it has, and keeps only what it lacks.
 *
 * A streaming bubble carries data-length: how many characters (code points, as the server counts) of the reply this
 * tab shows. A chunk says where it starts (data-offset): the part beyond data-length is appended, a chunk that lies
 * wholly within it is dropped (a catch-up overlapped it), and one that would leave a gap is dropped and a catch-up
 * asked for instead. A fragment that carries the whole bubble (the first one, one that finished a line, a catch-up's)
 * says its length and replaces the bubble only if it is not shorter than what the tab has. So a reload, a second tab
 * or a reconnect mid-reply never shows a piece twice, out of order, or a middle piece alone.
 *
 * A sync frame says what the tab has: the last stored item (data-seq) and the live bubble with its length.
 */
import { ATTR, SEL } from "./hooks.js";

let send = () => false;
/** A catch-up is on its way; it ends with the turn state (feed.js calls caughtUp). */
let syncing = false;

function chars(text) {
  return Array.from(text).length;
}

/** The sync frame for a tab whose last stored item is ``after``. */
export function syncFrame(after) {
  const frame = { kind: "sync", after };
  const live = document.querySelector(SEL.streaming);
  if (live && live.id) {
    frame.bubble = live.id;
    frame.offset = Number(live.getAttribute(ATTR.length)) || 0;
  }
  return JSON.stringify(frame);
}

/** Ask for a catch-up now (one at a time): this tab lacks a piece of the reply being streamed. */
export function requestSync(after) {
  if (syncing) return;
  syncing = send(syncFrame(after));
}

export function syncStarted() {
  syncing = true;
}

export function caughtUp() {
  syncing = false;
}

/**
 * htmx:oobBeforeSwap of one streamed piece: decide whether it goes in, trimmed to what the tab lacks. Returns false
 * for a piece that was held back because it would leave a gap (the caller asks for a catch-up).
 */
export function guard(evt) {
  const swapped = evt.detail.fragment;
  // An inline swap (hx-swap-oob="true") hands over a document fragment holding the element; "beforeend" the element.
  const piece = swapped && (swapped.getAttribute ? swapped : swapped.firstElementChild);
  if (!piece) return true;
  const first = piece.querySelector(SEL.streaming);
  if (first) {
    // The first piece of a bubble this tab already has (from a catch-up): the one it has is as long or longer.
    if (document.getElementById(first.id)) evt.detail.shouldSwap = false;
    return true;
  }
  const bubble = document.getElementById(piece.getAttribute(ATTR.bubble) || "");
  if (!bubble) return true; // no target: htmx reports it (oobErrorNoTarget) and the caller catches up
  const have = Number(bubble.getAttribute(ATTR.length)) || 0;
  const length = piece.getAttribute(ATTR.length);
  if (length !== null) {
    if (Number(length) < have) evt.detail.shouldSwap = false;
    else bubble.setAttribute(ATTR.length, length);
    return true;
  }
  const offset = piece.getAttribute(ATTR.offset);
  if (offset === null) return true;
  const start = Number(offset);
  const text = Array.from(piece.textContent);
  if (start > have) {
    evt.detail.shouldSwap = false;
    return false;
  }
  if (start + text.length <= have) {
    evt.detail.shouldSwap = false;
    return true;
  }
  if (start < have) piece.textContent = text.slice(have - start).join("");
  bubble.setAttribute(ATTR.length, String(start + text.length));
  return true;
}

export function init({ sendNow }) {
  send = sendNow;
}

export { chars };
