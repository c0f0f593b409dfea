#!/usr/bin/env node
// Runs from package.json's postinstall, after every `npm ci` / `npm install`.
//
// The gateway's production image (Portkey-AI/gateway v1.15.2, Dockerfile) runs
// patch-package on install with the gateway's patches/async-retry+1.3.3.patch,
// which makes async-retry pass its `retry` operation to the retried function as
// a third argument:
//
//     -        val = fn(bail, num);
//     +        val = fn(bail, num, op);
//
// The published npm package ships neither the patch nor the patches/ folder, yet
// its build relies on it: in src/handlers/retryHandler.ts the retried callback
// takes (bail, attempt, rateLimiter) and, on a 429 carrying a retry-after header,
// sets rateLimiter._timeouts. Unpatched, rateLimiter is undefined and that path
// throws a TypeError instead of honouring the provider's retry-after.
//
// This script applies the same one-line change to the async-retry that the
// gateway resolves (its own node_modules first, then the project's). It is
// idempotent (an already patched file is left alone) and fails loudly when the
// package is not async-retry 1.3.3 or the line is not found exactly once.
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const GATEWAY_DIR = path.join(ROOT, 'node_modules', '@portkey-ai', 'gateway');
const EXPECTED_VERSION = '1.3.3';
const ORIGINAL = 'val = fn(bail, num);';
const PATCHED = 'val = fn(bail, num, op);';

function fail(message) {
  console.error(`patch_async_retry: ${message}`);
  process.exit(1);
}

function occurrences(text, needle) {
  return text.split(needle).length - 1;
}

if (!fs.existsSync(path.join(GATEWAY_DIR, 'package.json'))) {
  // e.g. `npm ci --omit=dev`: no gateway, nothing to patch.
  console.log('patch_async_retry: @portkey-ai/gateway is not installed; nothing to patch');
  process.exit(0);
}

let main;
try {
  main = require.resolve('async-retry', { paths: [GATEWAY_DIR] });
} catch (err) {
  fail(`async-retry does not resolve from ${path.relative(ROOT, GATEWAY_DIR)}: ${err.message}`);
}
const packageDir = path.resolve(path.dirname(main), '..');
const manifest = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
if (manifest.name !== 'async-retry' || manifest.version !== EXPECTED_VERSION) {
  fail(`expected async-retry@${EXPECTED_VERSION} at ${packageDir}, found ${manifest.name}@${manifest.version}`);
}
if (path.relative(packageDir, main) !== path.join('lib', 'index.js')) {
  fail(`unexpected entry point ${main}`);
}

const source = fs.readFileSync(main, 'utf8');
const original = occurrences(source, ORIGINAL);
const patched = occurrences(source, PATCHED);
const where = path.relative(ROOT, main);
if (original === 0 && patched === 1) {
  console.log(`patch_async_retry: ${where} already passes op to the retried function`);
  process.exit(0);
}
if (original !== 1 || patched !== 0) {
  fail(`${where} does not have the expected shape (${original} x "${ORIGINAL}", ${patched} x "${PATCHED}")`);
}

// Write a new file and rename it over the old one, so that a file shared with
// another tree (a hard link) is never modified in place.
const temporary = `${main}.patching`;
fs.writeFileSync(temporary, source.replace(ORIGINAL, PATCHED));
fs.renameSync(temporary, main);
if (occurrences(fs.readFileSync(main, 'utf8'), PATCHED) !== 1) {
  fail(`${where}: the patched line is missing after writing`);
}
console.log(`patch_async_retry: ${where} now passes op to the retried function (gateway patch async-retry+1.3.3)`);
