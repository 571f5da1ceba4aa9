/*
 * The composer: the textarea, Enter to send, its growing height, and the shopper's words given back when a send
 * is refused before it was stored.
 */
import { ID } from "./hooks.js";
import { currentState } from "./state.js";

const composer = document.getElementById(ID.composer);
const textarea = document.getElementById(ID.textarea);

// The composer's last send, until the server shows it as the shopper's bubble.
let unconfirmedText = "";

export function autoGrow() {
  textarea.style.height = "auto";
  textarea.style.height = Math.min(textarea.scrollHeight, 160) + "px";
}

function canSend() {
  const state = currentState();
  return state === "ready" || state === "offline";
}

/** The text to send; "" when there is nothing to send. */
export function text() {
  return textarea.value.trim();
}

/** The text went: out of the textarea, kept until the server shows it. */
export function sent(value) {
  unconfirmedText = value;
  textarea.value = "";
  autoGrow();
}

/** The server showed the shopper's message: it is safe now. */
export function confirmed() {
  unconfirmedText = "";
}

/** The send was refused before it was stored: give the shopper their words back instead of losing them. */
export function refused() {
  if (unconfirmedText && !textarea.value.trim()) {
    textarea.value = unconfirmedText;
    autoGrow();
  }
  unconfirmedText = "";
}

/** A host's send (window.vizochok.send): waits for "ready" like the shopper's own; returns whether it went. */
export function hostSend(text) {
  const value = String(text == null ? "" : text).trim();
  if (!value || !canSend()) return false;
  textarea.value = value.slice(0, Number(textarea.maxLength) > 0 ? textarea.maxLength : 2000);
  composer.requestSubmit();
  return true;
}

export function init() {
  textarea.addEventListener("keydown", (evt) => {
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (canSend()) composer.requestSubmit();
    }
  });
  textarea.addEventListener("input", autoGrow);
  autoGrow();
}
