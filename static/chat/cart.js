/*
 * The cart panel (a modal dialog opened from the badge) and cart changes told to hosts.
 *
 * Like a grocery app's (issue 22): each line has a stepper in its unit; a tap changes the field at once and the cart
 * follows a moment after the last tap (one update for a run of taps, sent when no turn runs); a quantity the line
 * cannot take is explained at the line ([role=alert]) and not sent, and so is the relay's refusal of a line's send.
 * The lines scroll between the header and the total, undo and checkout, which stay in view; a redraw (the server
 * swaps the panel's body on every cart change) keeps the list's scroll position and the focused control.
 */
import { emit } from "./bridges.js";
import * as cards from "./cards.js";
import { ATTR, DATA, ID, SEL } from "./hooks.js";
import { currentState, STATE_EVENT } from "./state.js";

let opener = null;

/** How long after the last stepper tap the line's new quantity goes out. */
const SETTLE_MS = 600;
/** Lines whose stepper changed and that wait to be sent (sku -> timer, or null: waiting for the turn to end). */
const waiting = new Map();
/** What the shopper set those lines to (sku -> the field's text): a redraw meanwhile must not undo a tap. */
const wanted = new Map();

/** The line whose checked quantity commit() is submitting right now. */
let committing = null;

function open(button) {
  const panel = document.getElementById(ID.cartPanel);
  opener = button;
  if (!panel.open) panel.showModal();
}

function lineOf(sku) {
  const body = document.getElementById(ID.cartBody);
  return body && body.querySelector(`${SEL.cartLine}[${ATTR.sku}="${CSS.escape(sku)}"]`);
}

/** Show (or clear) a problem at a line. */
function tell(line, text) {
  const note = line.querySelector(SEL.quantityProblem);
  note.textContent = text;
  note.hidden = !text;
  const input = line.querySelector(SEL.quantity);
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** The server swapped in a new cart (parts/cart_panel.html); a live change carries data-change. */
export function changed(node) {
  const action = node.getAttribute(ATTR.change);
  if (!action) return;
  let cart;
  try {
    cart = JSON.parse(node.getAttribute(ATTR.cart) || "{}");
  } catch {
    cart = {};
  }
  cart.action = action;
  emit("cart_changed", cart);
}

/**
 * A refusal the relay sent for a line's send (fragments/error.html, data-sku): shown at that line, not in the log
 * behind the panel. Returns whether it was taken.
 */
export function refused(node) {
  const line = lineFor(node);
  if (!line) return false;
  showHeld(line);
  tell(line, node.textContent.trim());
  node.remove();
  return true;
}

/** The cart line a refusal is for, if the panel shows it. */
export function lineFor(node) {
  const sku = node.getAttribute(ATTR.sku);
  return (sku && lineOf(sku)) || null;
}

/** The cart as hosts receive it: items and total (parts/cart_panel.html data-cart). */
function currentCart() {
  try {
    return JSON.parse(document.getElementById(ID.cartBody).getAttribute(ATTR.cart) || "{}");
  } catch {
    return {};
  }
}

/**
 * Checkout ([data-action=checkout], when VIZOCHOK_CHECKOUT_URL is set): hosts hear vizochok:checkout with the cart and
 * may take over (a listener's preventDefault(), or a native bridge, which is taken as handling it); otherwise the
 * store's checkout opens in the top window (out of a storefront's frame too).
 */
function checkout(button) {
  const { canceled, bridged } = emit("checkout", currentCart(), { cancelable: true });
  if (canceled || bridged) return;
  window.open(button.dataset[DATA.checkoutUrl], "_top");
}

/** The line's field shows what the cart holds (a send that changed nothing). */
function showHeld(line) {
  line.querySelector(SEL.quantity).value = cards.formatQuantity(Number(line.dataset[DATA.quantity]));
  cards.syncStepper(line);
}

/** The line's field differs from what the cart holds. */
function edited(line) {
  return cards.parseQuantity(line.querySelector(SEL.quantity).value) !== Number(line.dataset[DATA.quantity]);
}

/** Send the line's quantity now if a turn may start, else as soon as one may. */
function commit(sku) {
  clearTimeout(waiting.get(sku));
  waiting.delete(sku);
  const line = lineOf(sku);
  if (line) reapply(line);
  if (!line || !edited(line) || !cards.checkQuantity(line)) {
    wanted.delete(sku); // nothing to send, or said at the line
    return;
  }
  if (currentState() !== "ready") {
    waiting.set(sku, null);
    return;
  }
  wanted.delete(sku);
  // sending.js takes it from here (it marks the line pending until its turn ends); requestSubmit dispatches the
  // submit event synchronously, so the capture listener below knows this one is let through.
  committing = line;
  try {
    line.querySelector(SEL.cartLineStepper).requestSubmit();
  } finally {
    committing = null;
  }
}

/** A line redrawn while its change waited shows the shopper's quantity, not the cart's. */
function reapply(line) {
  const text = wanted.get(line.dataset[DATA.sku]);
  const input = line.querySelector(SEL.quantity);
  if (text !== undefined && input.value !== text) {
    input.value = text;
    cards.syncStepper(line);
  }
}

function settleLater(line) {
  const sku = line.dataset[DATA.sku];
  clearTimeout(waiting.get(sku));
  wanted.set(sku, line.querySelector(SEL.quantity).value);
  waiting.set(sku, setTimeout(() => commit(sku), SETTLE_MS));
}

/** Where the shopper was in the panel before a redraw: the list's scroll and the focused control's line and kind. */
let kept = null;

function keepPlace(evt) {
  if (!evt.detail || !evt.detail.target || evt.detail.target.id !== ID.cartBody) return;
  const list = evt.detail.target.querySelector(SEL.cartLines);
  const active = document.activeElement;
  const line = active && active.closest && active.closest(SEL.cartLine);
  kept = {
    scroll: list ? list.scrollTop : 0,
    sku: line ? line.dataset[DATA.sku] : null,
    focus: line ? active.getAttribute(ATTR.action) || (active.matches(SEL.quantity) ? "quantity" : null) : null,
    inPanel: Boolean(active && active.closest && active.closest(`#${ID.cartPanel}`)),
  };
}

function restorePlace() {
  if (!kept) return;
  const place = kept;
  kept = null;
  const body = document.getElementById(ID.cartBody);
  const list = body && body.querySelector(SEL.cartLines);
  if (list) list.scrollTop = place.scroll;
  if (body) body.querySelectorAll(SEL.cartLine).forEach(reapply);
  if (!place.inPanel || !body) return;
  const active = document.activeElement;
  if (active && active !== document.body && active.isConnected) return; // focus survived the swap
  const line = place.sku && lineOf(place.sku);
  let target = null;
  if (line && place.focus === "quantity") target = line.querySelector(SEL.quantity);
  else if (line && place.focus) target = line.querySelector(`[${ATTR.action}="${place.focus}"]`);
  // A removed line's place goes to the undo that follows it, else to the panel's close button.
  target = target || body.querySelector(SEL.undo) || document.querySelector(`[${ATTR.closeCart}]`);
  if (target && !target.disabled) target.focus({ preventScroll: true });
}

export function init() {
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("button");
    if (!button) return;
    if (button.id === ID.cartBadge) open(button);
    if (button.hasAttribute(ATTR.closeCart)) document.getElementById(ID.cartPanel).close();
    if (button.matches(SEL.checkout)) checkout(button);
    const line = button.closest(SEL.cartLine);
    const action = button.getAttribute(ATTR.action);
    if (line && (action === "increment" || action === "decrement")) {
      if (Number.isNaN(cards.parseQuantity(line.querySelector(SEL.quantity).value))) showHeld(line); // step from the cart
      cards.step(line, action === "increment" ? 1 : -1);
      tell(line, "");
      settleLater(line);
    }
  });
  document.addEventListener("input", (evt) => {
    const line = evt.target.matches && evt.target.matches(SEL.quantity) && evt.target.closest(SEL.cartLine);
    if (line) cards.syncStepper(line);
  });
  // A typed quantity goes when the field is left or Enter is pressed (the form's submit), checked first.
  document.addEventListener("change", (evt) => {
    const line = evt.target.matches && evt.target.matches(SEL.quantity) && evt.target.closest(SEL.cartLine);
    if (line) commit(line.dataset[DATA.sku]);
  });
  document.addEventListener(
    "submit",
    (evt) => {
      const line = evt.target.closest && evt.target.matches(SEL.cartLineStepper) && evt.target.closest(SEL.cartLine);
      if (!line || line === committing) return;
      // Enter in the field: checked here, sent by commit(); sending.js sends what commit() lets through.
      evt.preventDefault();
      evt.stopImmediatePropagation();
      commit(line.dataset[DATA.sku]);
    },
    true,
  );
  document.getElementById(ID.chat).addEventListener(STATE_EVENT, (evt) => {
    if (evt.detail.state !== "ready") return;
    // Lines changed while a turn ran (or the socket was down) go now.
    for (const [sku, timer] of waiting) if (timer === null) commit(sku);
  });
  // A line's send ended with no cart change (refused, answered in words, stopped, a drop): it shows what the cart
  // holds again, unless the shopper has set it to something newer meanwhile (that change waits to go).
  document.addEventListener(cards.PENDING_ENDED, (evt) => {
    const line = evt.target.closest && evt.target.closest(SEL.cartLine);
    if (line && !wanted.has(line.dataset[DATA.sku])) showHeld(line);
  });
  document.addEventListener("htmx:oobBeforeSwap", keepPlace);
  document.addEventListener("htmx:oobAfterSwap", restorePlace);
  document.getElementById(ID.cartPanel).addEventListener("close", () => {
    const badge = document.getElementById(ID.cartBadge);
    (badge || opener || document.getElementById(ID.textarea)).focus();
  });
}
