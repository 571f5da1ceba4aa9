/* The cart panel (a modal dialog opened from the badge) and cart changes told to hosts. */
import { emit } from "./bridges.js";
import { ATTR, ID, SEL } from "./hooks.js";

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
  let cart;
  try {
    cart = JSON.parse(node.getAttribute(ATTR.cart) || "{}");
  } catch {
    cart = {};
  }
  cart.action = action;
  emit("cart_changed", cart);
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
  window.open(button.dataset.checkoutUrl, "_top");
}

export function init() {
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest("button");
    if (!button) return;
    if (button.id === ID.cartBadge) open(button);
    if (button.hasAttribute(ATTR.closeCart)) document.getElementById(ID.cartPanel).close();
    if (button.matches(SEL.checkout)) checkout(button);
  });
  document.getElementById(ID.cartPanel).addEventListener("close", () => {
    const badge = document.getElementById(ID.cartBadge);
    (badge || opener || document.getElementById(ID.textarea)).focus();
  });
}
