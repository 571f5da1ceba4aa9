/* The cart panel (a modal dialog opened from the badge) and cart changes told to hosts. */
import { emit } from "./bridges.js";
import { ATTR, ID } from "./hooks.js";

let opener = null;

function open(button) {
  const panel = document.getElementById(ID.cartPanel);
  opener = button;
  if (!panel.open) panel.showModal();
}

/** The server swapped in a new cart (parts/cart_panel.html); a live change carries data-change. */
export function changed(node) {
  const action = node.getAttribute(ATTR.change);
  if (!action) return;
  let cart = {};
  try {
    cart = JSON.parse(node.getAttribute(ATTR.cart) || "{}");
  } catch (err) {
    cart = {};
  }
  cart.action = action;
  emit("cart_changed", cart);
}

export function init() {
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("button");
    if (!button) return;
    if (button.id === ID.cartBadge) open(button);
    if (button.hasAttribute(ATTR.closeCart)) document.getElementById(ID.cartPanel).close();
  });
  document.getElementById(ID.cartPanel).addEventListener("close", () => {
    const badge = document.getElementById(ID.cartBadge);
    (badge || opener || document.getElementById(ID.textarea)).focus();
  });
}
