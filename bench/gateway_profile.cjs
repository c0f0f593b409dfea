// Preloaded into the gateway (NODE_OPTIONS=--require) by `bench.concurrency
// --profile-gateway DIR`: samples its CPU with the inspector's profiler (what
// `node --cpu-prof` does, which writes nothing when the process is stopped by
// a signal) and writes DIR/gateway-<pid>.cpuprofile when it is stopped.
"use strict";
const inspector = require("node:inspector");
const fs = require("node:fs");
const path = require("node:path");

const dir = process.env.AIGW_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 }); // microseconds
  session.post("Profiler.start");
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // A session in the same thread answers synchronously: the file exists before the process exits.
    session.post("Profiler.stop", (error, result) => {
      if (!error) fs.writeFileSync(path.join(dir, `gateway-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  };
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => { write(); process.exit(0); });
  process.on("exit", write);
}
