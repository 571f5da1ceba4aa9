/*
 * Controls of the conversation itself: starters on an empty conversation (.starter[data-value]), copying a reply
 * (button[data-action=copy]) and the jump to the newest message (.chat-jump) when the shopper reads further up.
 */
import { announce } from "./announcer.js";
import * as composer from "./composer.js";
import { CLASS, DATA, ID, SEL } from "./hooks.js";
import { t } from "./texts.js";

const log = document.getElementById(ID.log);
let jump = null;
let toBottom = () => {};

/** Something new arrived while the shopper was reading further up. */
export function newBelow() {
  if (jump) jump.hidden = false;
}

/** The shopper is at the newest message again. */
export function atBottom() {
  if (jump) jump.hidden = true;
}

/** The conversation has begun: the starters have done their job. */
export function begun() {
  log.querySelectorAll(SEL.starters).forEach((node) => node.remove());
}

async function copy(button) {
  const text = button.closest(SEL.message).querySelector(SEL.messageText).innerText.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (an insecure context, an old WebView): copy through a selection instead.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = CLASS.visuallyHidden;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.dataset[DATA.copied] = "true";
  announce(t("copied"));
  window.setTimeout(() => delete button.dataset[DATA.copied], 1500);
}

export function init(scrollToBottom) {
  toBottom = scrollToBottom;
  jump = document.querySelector(SEL.jump);
  if (jump) {
    jump.addEventListener("click", () => {
      toBottom();
      atBottom();
    });
  }
  document.addEventListener("click", (evt) => {
    const starter = evt.target.closest(SEL.starter);
    if (starter) composer.hostSend(starter.dataset[DATA.value]);
    const copyButton = evt.target.closest(SEL.copy);
    if (copyButton) copy(copyButton);
  });
}
