/*
 * The menu (button[data-action=menu], #chat-menu): new conversation, recent conversations, language. It opens under
 * the header inside the screen (chat.css) and closes on Escape, on a tap outside it, on choosing an item and on
 * sending anything.
 */
import { ID, SEL } from "./hooks.js";

let toggle = null;
let panel = null;

function isOpen() {
  return panel && !panel.hidden;
}

export function close({ restoreFocus = false } = {}) {
  if (!isOpen()) return;
  panel.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  if (restoreFocus) toggle.focus();
}

function open() {
  panel.hidden = false;
  toggle.setAttribute("aria-expanded", "true");
  const first = panel.querySelector("a[aria-current], button, a");
  if (first) first.focus({ preventScroll: true });
}

export function init() {
  toggle = document.querySelector(SEL.menuToggle);
  panel = document.getElementById(ID.menu);
  if (!toggle || !panel) return;
  toggle.addEventListener("click", () => (isOpen() ? close() : open()));
  document.addEventListener("keydown", (evt) => {
    if (evt.key === "Escape" && isOpen()) {
      evt.preventDefault();
      close({ restoreFocus: true });
    }
  });
  // A tap outside (pointerdown: before focus moves, so the tap still reaches what it was meant for).
  document.addEventListener("pointerdown", (evt) => {
    if (isOpen() && !panel.contains(evt.target) && !toggle.contains(evt.target)) close();
  });
  // Focus leaving the menu by keyboard (Tab past its end) closes it too.
  panel.addEventListener("focusout", (evt) => {
    if (evt.relatedTarget && !panel.contains(evt.relatedTarget) && evt.relatedTarget !== toggle) close();
  });
  panel.addEventListener("click", (evt) => {
    if (evt.target.closest("a, button")) close();
  });
  // Any send (the composer, a card, the host's window.vizochok.send) closes it.
  document.addEventListener("submit", () => close(), true);
}
