/*
 * Times on every message (.msg time[datetime], items/_time.html) in the page's language and the shopper's own time
 * zone, and a separator where the day changes. The server writes ISO 8601; only the browser knows the shopper's
 * zone, so the words are written here.
 */
import { CLASS, ID, SEL } from "./hooks.js";
import { language, t } from "./texts.js";

const log = document.getElementById(ID.log);

function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(date) === dayKey(today)) return t("today");
  if (dayKey(date) === dayKey(yesterday)) return t("yesterday");
  const options = { day: "numeric", month: "long" };
  if (date.getFullYear() !== today.getFullYear()) options.year = "numeric";
  return new Intl.DateTimeFormat(language(), options).format(date);
}

/** Writes the times inside ``root`` in the page's language. */
export function write(root) {
  const clock = new Intl.DateTimeFormat(language(), { hour: "2-digit", minute: "2-digit" });
  const full = new Intl.DateTimeFormat(language(), { dateStyle: "long", timeStyle: "short" });
  root.querySelectorAll(SEL.messageTime).forEach((time) => {
    const date = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    time.textContent = clock.format(date);
    time.title = full.format(date);
  });
}

/** A separator before the first message of each day (and at the top when the conversation began before today). */
export function separateDays() {
  log.querySelectorAll(`.${CLASS.daySeparator}`).forEach((node) => node.remove());
  let previous = dayKey(new Date()); // so a conversation that began before today opens with its day
  log.querySelectorAll(`${SEL.message} > ${SEL.messageMeta} ${SEL.messageTime}`).forEach((time) => {
    const date = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    const key = dayKey(date);
    if (key !== previous) {
      const separator = document.createElement("p");
      separator.className = CLASS.daySeparator;
      const label = document.createElement("time");
      label.dateTime = date.toISOString().slice(0, 10);
      label.textContent = dayLabel(date);
      separator.append(label);
      time.closest(SEL.message).before(separator);
    }
    previous = key;
  });
}

export function init() {
  write(log);
  separateDays();
}
