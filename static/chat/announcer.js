/*
 * Screen-reader announcements. The log itself is aria-live="off" (it would read every streamed token); a polite
 * region speaks each finished reply once. Errors are role=alert and announce themselves.
 */
import { ID } from "./hooks.js";

const region = () => document.getElementById(ID.announcer);

// A turn may finish several texts (a recipe, then "untick what you have"); setting the polite region once per text
// could replace one before a screen reader has read it, so the whole reply is announced at the turn's end.
let unannounced = [];

export function announce(text) {
  const announcer = region();
  announcer.textContent = "";
  window.setTimeout(() => {
    announcer.textContent = text.trim().slice(0, 600);
  }, 50);
}

/** Keeps a finished reply's text until the turn is over. */
export function replyFinished(text) {
  unannounced.push(text.trim());
}

/** The turn is over: speak what it said, once. */
export function turnOver() {
  if (!unannounced.length) return;
  announce(unannounced.join("\n\n"));
  unannounced = [];
}
