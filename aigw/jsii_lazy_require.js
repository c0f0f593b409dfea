// The Node half of the provider fast path (see modules/fast_import.py).
//
// Preloaded into the jsii runtime's Node process (NODE_OPTIONS=--require=…).
// The prebuilt AWS bindings' lib/index.js is 2,212 lines of
//   exports.vpc = require("./vpc");
// so loading the assembly requires every resource module (~3.5 s). This hook
// serves that one file as lazy getters instead: a submodule is required the
// first time the jsii kernel looks a type up in it. Files are not modified.
// If the file has any other statement, it is loaded normally and one note is
// written to stderr.
"use strict";

const Module = require("module");
const fs = require("fs");
const path = require("path");

const TARGET = path.join("node_modules", "@cdktf", "provider-aws", "lib", "index.js");
const REQUIRE_LINE = /^exports\.([A-Za-z_$][\w$]*) = require\("(\.\/[\w.-]+)"\);$/;
const DECLARE_LINE = /^exports\.[A-Za-z_$][\w$]*( = exports\.[A-Za-z_$][\w$]*)* = void 0;$/;
const ES_MODULE_LINE = 'Object.defineProperty(exports, "__esModule", { value: true });';
const MIN_ENTRIES = 100;

function lazyPlan(source) {
  const entries = [];
  for (const raw of source.split("\n")) {
    const line = raw.trim();
    if (line === "" || line === '"use strict";' || line === ES_MODULE_LINE || DECLARE_LINE.test(line)) continue;
    if (line.startsWith("/*") || line.startsWith("*") || line.startsWith("//")) continue;
    const match = REQUIRE_LINE.exec(line);
    if (!match) return null;
    entries.push([match[1], match[2]]);
  }
  return entries.length >= MIN_ENTRIES ? entries : null;
}

function defineLazily(module, entries) {
  const exported = module.exports;
  Object.defineProperty(exported, "__esModule", { value: true });
  for (const [name, relative] of entries) {
    Object.defineProperty(exported, name, {
      configurable: true,
      enumerable: true,
      get() {
        const value = module.require(relative);
        Object.defineProperty(exported, name, { value, writable: true, enumerable: true, configurable: true });
        return value;
      },
    });
  }
}

const loadJs = Module._extensions[".js"];
Module._extensions[".js"] = function (module, filename) {
  if (filename.endsWith(TARGET)) {
    const entries = lazyPlan(fs.readFileSync(filename, "utf8"));
    if (entries) {
      defineLazily(module, entries);
      return;
    }
    process.stderr.write(`note: ${filename} has an unexpected shape; loading it eagerly\n`);
  }
  return loadJs(module, filename);
};
