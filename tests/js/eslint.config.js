// ESLint for the page's own ES modules (static/chat/) and these tests: the recommended rules, browser globals for
// the page, Node's for the tests. Run from the repository root:
//   npm ci --prefix tests/js && tests/js/node_modules/.bin/eslint --config tests/js/eslint.config.js
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    // Patterns are relative to the directory ESLint runs in (with --config: the repository root, as in .ci/run).
    ignores: ["**/node_modules/**", "staticfiles/**"],
  },
  {
    files: ["static/**/*.js"],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser, htmx: "readonly" },
    },
  },
  {
    // Classic scripts for storefront pages (a plain <script> tag, no modules); "_"-names mark an unused catch.
    files: ["static/chat/embed.js", "static/chat/demo_storefront.js"],
    languageOptions: { sourceType: "script" },
    rules: { "no-unused-vars": ["error", { caughtErrorsIgnorePattern: "^_" }] },
  },
  {
    files: ["tests/js/**/*.js"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.node },
  },
];
