/*
 * Every send: the composer's text, a card's Add, a quick reply, a checklist, a cart line. One turn at a time; one
 * message may wait for the connection; every send carries an idempotency key, so a queue resent after a reconnect
 * never starts a turn twice.
 */
import { emit } from "./bridges.js";
import * as cards from "./cards.js";
import * as composer from "./composer.js";
import { follow } from "./feed.js";
import { ID, SEL } from "./hooks.js";
import { currentState, session, setState } from "./state.js";

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
}

export function init(chat) {
  const composerForm = document.getElementById(ID.composer);
  chat.addEventListener("htmx:wsConfigSend", (evt) => {
    const form = evt.target;
    const state = currentState();
    if (state === "busy" || state === "error" || (state === "offline" && session.queuedWhileOffline)) {
      evt.preventDefault(); // one turn at a time; one message may wait for the connection
      return;
    }
    const parameters = evt.detail.parameters;
    if (form === composerForm) {
      const text = composer.takeText();
      if (!text) {
        evt.preventDefault();
        return;
      }
      parameters.text = text;
    }
    if (state === "offline") session.queuedWhileOffline += 1;
    evt.detail.headers = null; // the relay needs none of htmx's request headers
    parameters.key = newKey();
    const card = form.closest(SEL.card);
    if (card) {
      cards.markPending(card);
      emit("product_click", { sku: card.dataset.sku, quantity: cards.parseQuantity(parameters.quantity) });
    }
    const pills = form.closest(SEL.quickReplies);
    if (pills) pills.querySelectorAll("button").forEach((b) => (b.disabled = true));
    const checklist = form.closest(SEL.checklist);
    if (checklist) checklist.querySelector("fieldset").disabled = true;
    if (state !== "offline") setState("busy");
    follow();
  });
}
