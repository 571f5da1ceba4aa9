// The card's quantity parser (static/chat/cards.js): shoppers type quantities with their language's decimal mark
// ("0,3" in Ukrainian), with stray spaces from a phone keyboard; the server reads both marks, so must the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseQuantity } from "../../static/chat/cards.js";

test("a comma is a decimal mark like a point", () => {
  assert.equal(parseQuantity("0,3"), 0.3);
  assert.equal(parseQuantity("0.3"), 0.3);
  assert.equal(parseQuantity("12"), 12);
});

test("spaces anywhere are ignored", () => {
  assert.equal(parseQuantity(" 1,5 "), 1.5);
  assert.equal(parseQuantity("1 000"), 1000);
});

test("nothing typed is not a number, never zero", () => {
  assert.ok(Number.isNaN(parseQuantity("")));
  assert.ok(Number.isNaN(parseQuantity("   ")));
  assert.ok(Number.isNaN(parseQuantity(null)));
  assert.ok(Number.isNaN(parseQuantity(undefined)));
});

test("anything else is not a number", () => {
  assert.ok(Number.isNaN(parseQuantity("two")));
  assert.ok(Number.isNaN(parseQuantity("1,5,0")));
});
