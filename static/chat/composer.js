/*
 * The composer: the textarea, Enter to send (a new line on a touch screen), its growing height, the length limit,
 * and the shopper's words given back when a send is refused before it was stored.
 *
 * The textarea stays editable whatever the state (a phone would close its keyboard if it were disabled, and what
 * the shopper types during a reply must not be lost); Send waits for the reply to end.
 */
import { ID, SEL } from "./hooks.js";
import { currentState, session, STATE_EVENT } from "./state.js";
import { number } from "./texts.js";

const composer = document.getElementById(ID.composer);
const textarea = document.getElementById(ID.textarea);
const counter = document.getElementById(ID.counter);
const limitNote = document.getElementById(ID.limitNote);
const limit = Number(textarea.dataset.limit) || 2000;
/** The counter shows from here on: near the limit, not all the time. */
const COUNT_FROM = 0.9;

// The composer's last send, until the server shows it as the shopper's bubble.
let unconfirmedText = "";

export function autoGrow() {
  textarea.style.height = "auto";
  textarea.style.height = Math.min(textarea.scrollHeight, 160) + "px";
}

/** Characters as the relay counts them (code points of the trimmed text). */
function length() {
  return Array.from(textarea.value.trim()).length;
}

export function tooLong() {
  return length() > limit;
}

function showCount() {
  const count = length();
  const over = count > limit;
  counter.hidden = count < limit * COUNT_FROM;
  counter.textContent = `${number(count)} / ${number(limit)}`;
  counter.toggleAttribute("data-over", over);
  limitNote.hidden = !over;
  if (over) textarea.setAttribute("aria-invalid", "true");
  else textarea.removeAttribute("aria-invalid");
  textarea.setAttribute("aria-describedby", over ? `${ID.counter} ${ID.limitNote}` : ID.counter);
}

export function canSend() {
  const state = currentState();
  const offline = state === "offline" || state === "connecting";
  return (state === "ready" || (offline && !session.queuedWhileOffline)) && !tooLong();
}

/** The text to send; "" when there is nothing to send (or too much). */
export function text() {
  return tooLong() ? "" : textarea.value.trim();
}

/** The text went: out of the textarea, kept until the server shows it. */
export function sent(value) {
  unconfirmedText = value;
  textarea.value = "";
  changed();
}

/** The server showed the shopper's message: it is safe now. */
export function confirmed() {
  unconfirmedText = "";
}

/** The send was refused before it was stored: give the shopper their words back instead of losing them. */
export function refused() {
  if (unconfirmedText && !textarea.value.trim()) {
    textarea.value = unconfirmedText;
    changed();
  }
  unconfirmedText = "";
}

/** A host's send (window.vizochok.send): waits for "ready" like the shopper's own; returns whether it went. */
export function hostSend(value) {
  const words = String(value == null ? "" : value).trim();
  if (!words || !canSend()) return false;
  textarea.value = Array.from(words).slice(0, limit).join("");
  changed();
  composer.requestSubmit();
  return true;
}

/** Send is offered when a send would go: ready, or offline with no message waiting yet, and not too long. */
function refreshSend() {
  const state = currentState();
  const offline = state === "offline" || state === "connecting";
  const sendButton = composer.querySelector(SEL.sendButton);
  sendButton.disabled = tooLong() || !(state === "ready" || (offline && !session.queuedWhileOffline));
}

function changed() {
  autoGrow();
  showCount();
  refreshSend();
}

/**
 * A phone or tablet (its main pointer a finger, nothing hovers): its on-screen keyboard's Enter makes a new line and
 * the Send button sends, as in messaging apps (issue 22: there was no way to type a second line). With a physical
 * keyboard (a fine pointer that hovers), Enter sends and Shift+Enter makes a new line.
 */
const touchFirst = window.matchMedia("(pointer: coarse) and (hover: none)");

function enterKeyHint() {
  textarea.setAttribute("enterkeyhint", touchFirst.matches ? "enter" : "send");
}

export function init() {
  textarea.addEventListener("keydown", (evt) => {
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing && !touchFirst.matches) {
      evt.preventDefault(); // a new line is Shift+Enter; during a reply Enter waits, the text stays
      if (canSend()) composer.requestSubmit();
    }
  });
  enterKeyHint();
  touchFirst.addEventListener("change", enterKeyHint);
  textarea.addEventListener("input", changed);
  document.getElementById(ID.chat).addEventListener(STATE_EVENT, refreshSend);
  changed();
}
