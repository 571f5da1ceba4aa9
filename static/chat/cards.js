/*
 * Product cards and checklists: steppers in the unit's steps, quantities in the language's decimal mark, an Add
 * on its way, and images that fail to load.
 */
import { ACTION, ATTR, DATA, SEL } from "./hooks.js";
import { t } from "./texts.js";

let quantityFormat = new Intl.NumberFormat("uk", { maximumFractionDigits: 3, useGrouping: false });

// Quantities are shown and typed with the language's decimal mark ("0,3" in Ukrainian); the server reads both.
export function parseQuantity(text) {
  const value = String(text == null ? "" : text).replace(/\s/g, "").replace(",", ".");
  return value === "" ? NaN : Number(value);
}

function decimals(value) {
  const text = String(value);
  return text.indexOf(".") < 0 ? 0 : text.length - text.indexOf(".") - 1;
}

/** A card's (or a cart line's) stepper: its step, its minimum and maximum (data-step, data-min, data-max). */
function bounds(card) {
  const step = Number(card.dataset[DATA.step]) || 1;
  return {
    step,
    minimum: Number(card.dataset[DATA.min]) || step,
    maximum: Number(card.dataset[DATA.max]) || MAXIMUM,
    places: Math.max(decimals(card.dataset[DATA.step]), decimals(card.dataset[DATA.min])),
  };
}

/** The relay's ceiling for one line when the page names none (VIZOCHOK_MAX_QUANTITY, chat/web/consumer.py). */
const MAXIMUM = 50;

function withUnit(card, value) {
  return `${quantityFormat.format(value)}\u00a0${card.dataset[DATA.unitLabel] || ""}`.trim();
}

/**
 * Why the quantity of a card (or a cart line) cannot be sent, in the page's language, saying what is allowed ("from
 * 1 to 50 pcs"); "" when it can (the relay's own rules, chat/web/consumer.py _valid_quantity).
 */
export function quantityProblem(card) {
  const limits = bounds(card);
  const value = parseQuantity(card.querySelector(SEL.quantity).value);
  const range = { minimum: quantityFormat.format(limits.minimum), maximum: withUnit(card, limits.maximum) };
  if (!Number.isFinite(value)) return t("not-a-number", range);
  if (value < limits.minimum - 1e-9 || value > limits.maximum + 1e-9) return t("out-of-range", range);
  const scale = Math.pow(10, Math.max(limits.places, 3));
  const offset = Math.round((value - limits.minimum) * scale);
  if (Math.abs((value - limits.minimum) * scale - offset) > 1e-6 || offset % Math.round(limits.step * scale) !== 0) {
    return t("in-steps", { ...range, step: withUnit(card, limits.step) });
  }
  return "";
}

/** Shows (or clears) the card's quantity problem; returns whether the quantity is fine. */
export function checkQuantity(card) {
  const problem = quantityProblem(card);
  const note = card.querySelector(SEL.quantityProblem);
  const input = card.querySelector(SEL.quantity);
  note.textContent = problem;
  note.hidden = !problem;
  if (problem) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return !problem;
}

export function syncStepper(card) {
  const current = parseQuantity(card.querySelector(SEL.quantity).value);
  const limits = bounds(card);
  card.querySelector(SEL.decrement).disabled = !(current > limits.minimum);
  card.querySelector(SEL.increment).disabled = !(isNaN(current) || current < limits.maximum);
  const note = card.querySelector(SEL.quantityProblem);
  if (note && !note.hidden) checkQuantity(card); // said what was wrong: say when it is right
}

/** One step up or down (a card's or a cart line's stepper), within its bounds. */
export function step(card, direction) {
  const input = card.querySelector(SEL.quantity);
  const limits = bounds(card);
  const current = parseQuantity(input.value);
  let next = (isNaN(current) ? limits.minimum : current) + direction * limits.step;
  next = Math.max(limits.minimum, Math.min(limits.maximum, Number(next.toFixed(limits.places))));
  input.value = quantityFormat.format(next);
  syncStepper(card);
}

/**
 * A card's Add (or a cart line's action) was sent with send key ``key``: shown on its way until its turn ends
 * (outbox.js owns the end: lifecycle.js Pending). The button is marked, not disabled: a disabled button drops the
 * focus, and the shopper's place (and a phone's keyboard) must stay put.
 */
export function markPending(owner, key) {
  owner.setAttribute(ATTR.pending, key);
  owner.removeAttribute(ATTR.error);
  owner.querySelectorAll(SEL.pendingButtons).forEach((button) => button.setAttribute("aria-disabled", "true"));
}

/** Dispatched on a card or cart line whose send is over (clearPending), whatever ended it. */
export const PENDING_ENDED = "chat:pending-ended";

/** The add sent with ``key`` is over; ``message`` says why it failed, if it did. */
export function clearPending(key, message) {
  document.querySelectorAll(`[${ATTR.pending}="${CSS.escape(key)}"]`).forEach((owner) => {
    owner.removeAttribute(ATTR.pending);
    owner.querySelectorAll(SEL.pendingButtons).forEach((button) => button.removeAttribute("aria-disabled"));
    if (message) owner.setAttribute(ATTR.error, message);
    // The outbox owns the pending state (lifecycle.js); a cart line then shows what the cart holds (cart.js).
    owner.dispatchEvent(new CustomEvent(PENDING_ENDED, { bubbles: true }));
  });
}

/** What a pending bubble says about a card's Add: the product and the quantity with its unit. */
export function addLabel(card, quantity) {
  const name = ((card.querySelector(SEL.cardName) || {}).textContent || "").trim();
  const value = parseQuantity(quantity);
  return Number.isFinite(value) ? `${name} × ${withUnit(card, value)}` : name;
}

/** Nothing was sent: choices this tab locked on sending are open again (the server re-renders used ones). */
export function unlockChoices(log) {
  log.querySelectorAll(SEL.lockedChecklistSets).forEach((set) => {
    set.disabled = false;
  });
  log.querySelectorAll(SEL.openQuickReplyPills).forEach((pill) => {
    pill.disabled = false;
  });
}

/** A product image that fails to load leaves the card's letter placeholder, not a broken icon. */
export function watchImages(root) {
  root.querySelectorAll(SEL.cardImage).forEach((img) => {
    // decode() rejects only for a broken image; an SVG without a size of its own still decodes.
    if (img.complete) img.decode().catch(() => img.remove());
  });
}

export function init(lang) {
  quantityFormat = new Intl.NumberFormat(lang, { maximumFractionDigits: 3, useGrouping: false });
  // "Show more" cards (an htmx GET, items/_more_cards.html) replace the button that asked for them: keep keyboard
  // focus in the list, on the first new card.
  let lastBeforeMore = null;
  document.body.addEventListener("htmx:beforeSwap", (evt) => {
    const more = evt.detail.target && evt.detail.target.closest && evt.detail.target.closest(SEL.moreCards);
    lastBeforeMore = more ? more.previousElementSibling : null;
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    if (!lastBeforeMore) return;
    const first = lastBeforeMore.nextElementSibling;
    lastBeforeMore = null;
    const add = first && first.querySelector(SEL.focusAfterMore);
    if (add) add.focus({ preventScroll: false });
  });
  document.addEventListener("input", (evt) => {
    const card = evt.target.matches && evt.target.matches(SEL.quantity) && evt.target.closest(SEL.card);
    if (card) syncStepper(card);
  });
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("button");
    if (!button) return;
    const card = button.closest(SEL.card);
    if (card && button.dataset[DATA.action] === ACTION.increment) step(card, 1);
    if (card && button.dataset[DATA.action] === ACTION.decrement) step(card, -1);
    if (button.hasAttribute(ATTR.check)) {
      const checked = button.getAttribute(ATTR.check) === "all";
      button.closest(SEL.checklist).querySelectorAll(SEL.checklistBox).forEach((box) => {
        box.checked = checked;
      });
    }
  });
  document.addEventListener(
    "error",
    (evt) => {
      const img = evt.target;
      if (img && img.matches && img.matches(SEL.cardImage)) img.remove();
    },
    true,
  );
  // Images of the first paint may have failed before this deferred script was there to hear it.
  watchImages(document);
}

/** A quantity as the page's language writes it in a field ("0,5"). */
export function formatQuantity(value) {
  return quantityFormat.format(value);
}
