/*
 * Wording the scripts show, rendered by the server in the page's language (#chat-texts, from
 * chat/presentation/texts.py PAGE_TEXTS), and numbers in that language.
 */
import { ID } from "./hooks.js";

let lang = "uk";

export function setLanguage(value) {
  lang = value;
}

export function language() {
  return lang;
}

/** The text of ``key`` with %(name)s placeholders filled in. */
export function t(key, params = {}) {
  const holder = document.getElementById(ID.texts);
  const camel = key.replace(/-([a-z])/g, (_m, c) => c.toUpperCase());
  const text = (holder && holder.dataset[camel]) || key;
  return text.replace(/%\((\w+)\)s/g, (_m, name) => (name in params ? String(params[name]) : ""));
}

/** A number as the page's language writes it ("0,5" in Ukrainian), without grouping for quantities. */
export function number(value, options = {}) {
  return new Intl.NumberFormat(lang, { maximumFractionDigits: 3, ...options }).format(value);
}
