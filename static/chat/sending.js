/*
 * Every send: the composer's text, a card's Add, a quick reply, a checklist, a cart line. A form marked ws-send
 * (hooks.js) is sent over the chat socket as JSON of its fields, plus an idempotency key, so a frame resent after a
 * reconnect never starts a turn twice. Each goes through the outbox (outbox.js): at once when the socket is open and
 * no turn runs, else kept, shown and sent when it can be. One turn at a time: while a reply runs, Send waits.
 */
import { emit } from "./bridges.js";
import * as cards from "./cards.js";
import * as composer from "./composer.js";
import * as connection from "./connection.js";
import { follow } from "./feed.js";
import { ATTR, DATA, ID, SEL } from "./hooks.js";
import * as outbox from "./outbox.js";
import { currentState, STATE_EVENT } from "./state.js";

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

/** What the pending bubble says for an action: the button's words and what it acts on. */
function actionLabel(form, submitter, parameters) {
  const card = form.closest(SEL.card);
  const checklist = form.closest(SEL.checklist);
  const line = form.closest(SEL.cartLine);
  let what = "";
  if (card) what = cards.addLabel(card, parameters.quantity);
  else if (checklist) {
    what = Array.from(checklist.querySelectorAll(`${SEL.checklistBox}:checked`))
      .map((box) => (box.closest("label") || box).textContent.trim())
      .join(", ");
  } else if (line) what = ((line.querySelector(SEL.cartLineName) || {}).textContent || "").trim();
  const said = ((submitter && submitter.textContent) || "").trim();
  return [said, what].filter(Boolean).join(": ") || said || what;
}

function submitted(evt) {
  const form = evt.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute(ATTR.wsSend)) return;
  evt.preventDefault();
  if (currentState() === "busy") return; // one turn at a time; the composer keeps its text
  const card = form.closest(SEL.card);
  const owner = card || form.closest(SEL.cartLine); // what shows the send on its way until its turn ends
  if (owner && owner.hasAttribute(ATTR.pending)) return;
  if (card && !cards.checkQuantity(card)) return; // said on the card
  const parameters = fields(form, evt.submitter);
  const text = form.id === ID.composer ? composer.text() : "";
  if (form.id === ID.composer) {
    if (!text) return;
    parameters.text = text;
  }
  parameters.key = newKey();
  const label = text || actionLabel(form, evt.submitter, parameters);
  if (text) composer.sent();
  if (owner) cards.markPending(owner, parameters.key);
  if (card) {
    emit("product_click", { sku: card.dataset[DATA.sku], quantity: cards.parseQuantity(parameters.quantity) });
  }
  const pills = form.closest(SEL.quickReplies);
  if (pills) pills.querySelectorAll("button").forEach((b) => (b.disabled = true));
  const checklist = form.closest(SEL.checklist);
  if (checklist) checklist.querySelector("fieldset").disabled = true;
  outbox.submit({
    key: parameters.key,
    frame: JSON.stringify(parameters),
    label,
    text,
    sku: owner ? owner.dataset[DATA.sku] : "",
  });
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
