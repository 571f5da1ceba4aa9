/*
 * The product sheet (issue 16): tapping a card's image or name opens a dialog with the card larger and whole: the
 * image, name, brand, unit, price and promo, the description when the catalog has one, the stepper and Add.
 *
 * The sheet shows a copy of the card itself (the server's markup, nothing rebuilt from data), so the stepper, the
 * quantity check and Add work exactly as on the card (cards.js, sending.js).
 */
import { ATTR, CLASS, ID, SEL } from "./hooks.js";

let sheet = null;
let body = null;
let opener = null;

/** The card as a sheet: a copy with ids of its own and every part shown. */
function copyOf(card) {
  // Not a .product-card (a public hook that counts the cards in the conversation), but read the same way.
  const copy = document.createElement("div");
  for (const { name, value } of card.attributes) {
    if (name.startsWith("data-")) copy.setAttribute(name, value);
  }
  copy.removeAttribute(ATTR.pending);
  copy.className = CLASS.sheetCard;
  copy.append(...Array.from(card.children, (child) => child.cloneNode(true)));
  copy.querySelectorAll("[id]").forEach((node) => (node.id = `${node.id}-sheet`));
  copy.querySelectorAll("[aria-describedby]").forEach((node) => {
    node.setAttribute("aria-describedby", `${node.getAttribute("aria-describedby")}-sheet`);
  });
  // The image is plain here (not a button), and the name is the dialog's title.
  const media = copy.querySelector(SEL.cardMedia);
  const picture = document.createElement("div");
  picture.className = media.className;
  picture.append(...media.childNodes);
  media.replaceWith(picture);
  const title = copy.querySelector(SEL.cardName);
  title.id = ID.sheetTitle;
  title.textContent = title.textContent.trim();
  copy.querySelectorAll(SEL.cardDescription).forEach((node) => (node.hidden = false));
  copy.querySelector(SEL.quantity).value = card.querySelector(SEL.quantity).value; // what the shopper chose
  copy.querySelector(SEL.cardAdd).removeAttribute("aria-disabled");
  return copy;
}

export function open(card, from) {
  opener = from;
  body.replaceChildren(copyOf(card));
  if (!sheet.open) sheet.showModal();
}

function close() {
  if (sheet.open) sheet.close();
}

export function init() {
  sheet = document.getElementById(ID.sheet);
  body = document.getElementById(ID.sheetBody);
  if (!sheet || !body) return;
  document.addEventListener("click", (evt) => {
    const trigger = evt.target.closest(SEL.details);
    if (trigger && !sheet.contains(trigger)) {
      const card = trigger.closest(SEL.card);
      // The image is no keyboard stop: focus goes back to the name, the card's own button.
      if (card) open(card, card.querySelector(SEL.cardOpen));
    }
    if (evt.target.closest(`[${ATTR.closeSheet}]`)) close();
  });
  // A tap on the backdrop (the dialog element itself, outside its box) closes it.
  sheet.addEventListener("click", (evt) => {
    if (evt.target === sheet) close();
  });
  // Add in the sheet went (sending.js, listening on the document, marked the copy pending): the sheet has done its
  // job. A task later, not a microtask: those run between this listener and the document's.
  sheet.addEventListener("submit", () => {
    window.setTimeout(() => {
      if (body.querySelector(`.${CLASS.sheetCard}[${ATTR.pending}]`)) close();
    }, 0);
  });
  sheet.addEventListener("close", () => {
    body.replaceChildren();
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  });
}
