/*
 * The composer: the textarea, Enter to send (a new line on a touch screen), its growing height, the length limit,
 * and the shopper's words given back when a send is refused before it was stored.
 *
 * The textarea stays editable whatever the state (a phone would close its keyboard if it were disabled, and what
 * the shopper types during a reply must not be lost); Send waits for the reply to end.
 */
import { DATA, ID, SEL } from "./hooks.js";
import { currentState, STATE_EVENT } from "./state.js";
import { number } from "./texts.js";

const composer = document.getElementById(ID.composer);
const textarea = document.getElementById(ID.textarea);
const counter = document.getElementById(ID.counter);
const limitNote = document.getElementById(ID.limitNote);
const limit = Number(textarea.dataset[DATA.limit]) || 2000;
/** The counter shows from here on: near the limit, not all the time. */
const COUNT_FROM = 0.9;

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

/** Send is offered unless a reply runs: offline, a send waits in the outbox (outbox.js). */
export function canSend() {
  return currentState() !== "busy" && !tooLong();
}

/** The text to send; "" when there is nothing to send (or too much). */
export function text() {
  return tooLong() ? "" : textarea.value.trim();
}

/** The text went into the outbox (outbox.js), which keeps it until the server has stored it. */
export function sent() {
  textarea.value = "";
  changed();
}

/** A send was refused before it was stored: the shopper's words come back instead of being lost. */
export function giveBack(words) {
  const typed = textarea.value.trim();
  if (typed === words.trim()) return;
  textarea.value = typed ? `${words}\n${typed}` : words; // typed meanwhile: kept, after the words given back
  changed();
}

export function focus() {
  textarea.focus({ preventScroll: true });
}

/** A host's send (window.vizochok.send): refused while a reply runs, kept in the outbox while offline. */
export function hostSend(value) {
  const words = String(value == null ? "" : value).trim();
  if (!words || !canSend()) return false;
  textarea.value = Array.from(words).slice(0, limit).join("");
  changed();
  composer.requestSubmit();
  return true;
}

function refreshSend() {
  composer.querySelector(SEL.sendButton).disabled = !canSend();
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
