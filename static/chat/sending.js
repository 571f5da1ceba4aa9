/*
 * Every send: the composer's text, a card's Add, a quick reply, a checklist, a cart line. A form marked ws-send
 * (hooks.js) is sent over the chat socket as JSON of its fields, plus an idempotency key, so a frame resent after a
 * reconnect never starts a turn twice. One turn at a time; one message may wait for the connection.
 */
import { emit } from "./bridges.js";
import * as cards from "./cards.js";
import * as composer from "./composer.js";
import * as connection from "./connection.js";
import { follow } from "./feed.js";
import { ATTR, ID, SEL } from "./hooks.js";
import { currentState, session, setState, STATE_EVENT } from "./state.js";

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
}

/** A form's fields as the relay reads them: repeated names (checklist items) become lists. */
function fields(form, submitter) {
  const values = {};
  for (const [name, value] of new FormData(form, submitter)) {
    if (typeof value !== "string") continue;
    if (name in values) values[name] = [].concat(values[name], value);
    else values[name] = value;
  }
  return values;
}

function submitted(evt) {
  const form = evt.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute(ATTR.wsSend)) return;
  evt.preventDefault();
  const state = currentState();
  const offline = state === "offline" || state === "connecting";
  if (state === "busy" || state === "error" || (offline && session.queuedWhileOffline)) {
    return; // one turn at a time; one message may wait for the connection
  }
  const card = form.closest(SEL.card);
  if (card && (card.hasAttribute(ATTR.pending) || !cards.checkQuantity(card))) return; // said on the card
  const parameters = fields(form, evt.submitter);
  const text = form.id === ID.composer ? composer.text() : "";
  if (form.id === ID.composer) {
    if (!text) return;
    parameters.text = text;
  }
  parameters.key = newKey();
  const went = connection.send(JSON.stringify(parameters));
  if (!went) return;
  if (text) composer.sent(text);
  if (went === "waiting") session.queuedWhileOffline += 1;
  if (card) {
    cards.markPending(card);
    emit("product_click", { sku: card.dataset.sku, quantity: cards.parseQuantity(parameters.quantity) });
  }
  const pills = form.closest(SEL.quickReplies);
  if (pills) pills.querySelectorAll("button").forEach((b) => (b.disabled = true));
  const checklist = form.closest(SEL.checklist);
  if (checklist) checklist.querySelector("fieldset").disabled = true;
  setState(went === "waiting" ? state : "busy");
  follow();
}

/** Stop (button[data-action=stop]): the relay ends the turn; the page turns ready when it says so. */
function stop(evt) {
  const button = evt.target.closest(SEL.stop);
  if (!button || currentState() !== "busy") return;
  if (connection.sendNow(JSON.stringify({ kind: "stop" }))) button.setAttribute("aria-disabled", "true");
}

export function init() {
  document.addEventListener("submit", submitted);
  document.addEventListener("click", stop);
  document.getElementById(ID.chat).addEventListener(STATE_EVENT, (evt) => {
    if (evt.detail.state !== "busy") document.querySelector(SEL.stop).removeAttribute("aria-disabled");
  });
}
