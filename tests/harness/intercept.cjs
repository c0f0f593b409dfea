'use strict';
/*
 * Outbound-traffic interceptor for the Portkey gateway under test.
 *
 *   node --require tests/harness/intercept.cjs build/start-server.js --port=N
 *
 * The gateway runs exactly as deployed (no custom_host, no provider URL
 * overrides); this preload redirects its upstream traffic *inside* the
 * process so that nothing can leave 127.0.0.1, and records what the gateway
 * tried to reach. CommonJS, no dependencies, Node 20 and 22.
 *
 * Environment:
 *   AIGW_INTERCEPT_MAP   JSON object {"<host>": "http://127.0.0.1:PORT[/prefix]"}.
 *                        <host> is the upstream URL's host as the WHATWG URL
 *                        parser gives it: the hostname, or hostname:port when a
 *                        non-default port was explicit ("api.openai.com",
 *                        "evil.example:8443"). Matching is exact (lowercased):
 *                        api.openai.com:8443 does NOT match "api.openai.com".
 *   AIGW_INTERCEPT_SINK  loopback base URL receiving every request to a host
 *                        that is not in the map (the "attacker" server). When
 *                        unset, such requests fail (fetch rejects, http
 *                        requests emit 'error'); they never go out.
 *   AIGW_INTERCEPT_LOG   JSON-lines file; one line per event, appended
 *                        synchronously (fs.appendFileSync), so a test can read
 *                        it as soon as it has the gateway's response. Unset:
 *                        nothing is recorded.
 * Map values and the sink must be http:// URLs on 127.0.0.1, localhost or
 * [::1]; anything else makes the preload throw at startup (node exits).
 *
 * Events (every line also has "ts" (ms since epoch) and "pid"):
 *   {"kind":"fetch","url":<original absolute URL>,"host":<original host[:port]>,
 *    "method","headers":{<lowercased name>: value},"target":<URL actually fetched>,
 *    "routed":"map"|"sink"|"none"}
 *   {"kind":"dns","host":<name looked up>}
 *   {"kind":"http","host":<host[:port]>,"path","method","protocol","headers",
 *    "target","routed"}                      (http.request/https.request/get)
 *   {"kind":"inbound-connection","remote":<addr:port>,"local_port":<port>}
 *
 * What is intercepted, and the limits:
 * - globalThis.fetch (the gateway calls every provider with fetch). The
 *   request goes to <mapped base or sink> + original pathname + search with the
 *   same method, headers, body and signal, plus `x-intercepted-url: <original
 *   URL>`. The URL fragment is never sent (as with a real fetch). A body is
 *   passed through untouched (streams too, with duplex: 'half'). Redirects are
 *   followed here, through the wrapper (each hop is mapped and recorded), not
 *   by undici, so a redirect cannot lead to an unmapped address. A 307/308
 *   redirect of a streamed body fails (it cannot be replayed), as in undici.
 *   Non-http(s) URLs (data:, blob:) go to the original fetch unchanged. A fetch
 *   `dispatcher` option is kept: a proxy dispatcher would still only see
 *   loopback URLs. Code that captured fetch before this preload ran (none: a
 *   preload runs first) or that uses undici's own request API is not covered.
 * - dns.lookup and dns.promises.lookup (also require('dns/promises')) answer
 *   127.0.0.1 (family 4) for every name, so any other client connection by
 *   name (net/tls/ws/ioredis) can only reach loopback. Loopback and
 *   unspecified IP literals (127.x, ::1, 0.0.0.0, ::) are answered unchanged
 *   so local listen() calls keep working. dns.resolve*() / dns.Resolver (c-ares)
 *   are NOT patched, and a raw net/tls connection to an IP literal does not
 *   use DNS at all: only fetch and http(s).request are rewritten. A name
 *   resolved to 127.0.0.1 keeps its port (e.g. 443 on loopback).
 * - http.request, http.get, https.request, https.get (what the `ws` package
 *   uses for WebSocket clients): recorded, then sent over plain HTTP to the
 *   mapped base (host in the map) or to the sink, with a fresh socket
 *   (agent and createConnection are replaced, so TLS is never attempted) and
 *   `x-intercepted-url`. Headers added later with req.setHeader() are sent but
 *   not in the record. `new http.ClientRequest()` used directly is not hooked.
 * - Inbound: every 'connection' emitted by an http.Server (the gateway's
 *   @hono/node-server) is recorded. https/http2 servers are not counted.
 * - Listening: a net.Server listen() that names no host binds 127.0.0.1
 *   (the gateway's own server would bind every interface).
 * - ESM importers of node builtins see the patches (syncBuiltinESMExports).
 * The recorder never throws; malformed configuration throws at startup.
 */

const fs = require('fs');
const dns = require('dns');
const http = require('http');
const https = require('https');
const net = require('net');
const { syncBuiltinESMExports } = require('module');

const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;

function parseTarget(label, value) {
  let url;
  try {
    url = new URL(String(value));
  } catch (error) {
    throw new Error(`intercept.cjs: ${label} is not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' || !LOOPBACK_HOSTNAMES.has(url.hostname)) {
    throw new Error(`intercept.cjs: ${label} must be an http:// URL on loopback, got ${JSON.stringify(value)}`);
  }
  const hostname = url.hostname === '[::1]' ? '::1' : url.hostname;
  return {
    origin: url.origin,
    prefix: url.pathname.replace(/\/+$/, ''),
    hostname,
    port: Number(url.port || 80),
  };
}

function loadConfig() {
  const map = new Map();
  const rawMap = process.env.AIGW_INTERCEPT_MAP;
  if (rawMap) {
    let parsed;
    try {
      parsed = JSON.parse(rawMap);
    } catch (error) {
      throw new Error(`intercept.cjs: AIGW_INTERCEPT_MAP is not JSON: ${error.message}`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error('intercept.cjs: AIGW_INTERCEPT_MAP must be a JSON object');
    }
    for (const [host, base] of Object.entries(parsed)) {
      map.set(host.toLowerCase(), parseTarget(`AIGW_INTERCEPT_MAP[${JSON.stringify(host)}]`, base));
    }
  }
  const sink = process.env.AIGW_INTERCEPT_SINK
    ? parseTarget('AIGW_INTERCEPT_SINK', process.env.AIGW_INTERCEPT_SINK)
    : null;
  return { map, sink, log: process.env.AIGW_INTERCEPT_LOG || '' };
}

const CONFIG = loadConfig();

function record(event) {
  try {
    if (!CONFIG.log) return;
    fs.appendFileSync(CONFIG.log, JSON.stringify({ ts: Date.now(), pid: process.pid, ...event }) + '\n');
  } catch (error) {
    // The recorder never throws into the gateway.
  }
}

function route(hostKey) {
  const mapped = CONFIG.map.get(String(hostKey).toLowerCase());
  if (mapped) return { target: mapped, routed: 'map' };
  if (CONFIG.sink) return { target: CONFIG.sink, routed: 'sink' };
  return { target: null, routed: 'none' };
}

function safeHeaderRecord(headers) {
  const out = {};
  try {
    headers.forEach((value, name) => {
      out[name.toLowerCase()] = value;
    });
  } catch (error) {
    // best effort
  }
  return out;
}

/* ------------------------------------------------------------------ fetch */

const originalFetch = globalThis.fetch;

function isRequestLike(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    !(value instanceof URL) &&
    typeof value.url === 'string' &&
    typeof value.method === 'string'
  );
}

function isReplayableBody(body) {
  return (
    body === null ||
    body === undefined ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams ||
    (typeof Blob !== 'undefined' && body instanceof Blob) ||
    (typeof FormData !== 'undefined' && body instanceof FormData)
  );
}

async function interceptedFetch(input, init, redirectsLeft) {
  const request = isRequestLike(input) ? input : null;
  const options = init && typeof init === 'object' ? init : {};
  const originalUrl = new URL(request ? request.url : String(input));

  if (originalUrl.protocol !== 'http:' && originalUrl.protocol !== 'https:') {
    record({ kind: 'fetch', url: originalUrl.href, host: originalUrl.host, method: 'GET', headers: {}, routed: 'passthrough' });
    return originalFetch(input, init);
  }

  const method = String(options.method || (request && request.method) || 'GET').toUpperCase();
  const headers = new Headers(options.headers !== undefined ? options.headers : request ? request.headers : undefined);
  let body = options.body !== undefined ? options.body : request ? request.body : null;
  if (body === undefined) body = null;
  const signal = options.signal !== undefined ? options.signal : request ? request.signal : undefined;
  const redirectMode = options.redirect || (request && request.redirect) || 'follow';

  const { target, routed } = route(originalUrl.host);
  const targetUrl = target ? `${target.origin}${target.prefix}${originalUrl.pathname}${originalUrl.search}` : null;
  record({
    kind: 'fetch',
    url: originalUrl.href,
    host: originalUrl.host,
    method,
    headers: safeHeaderRecord(headers),
    target: targetUrl,
    routed,
  });
  if (!targetUrl) {
    throw new TypeError(`intercept.cjs: no AIGW_INTERCEPT_SINK for unmapped host ${originalUrl.host}`);
  }

  const outHeaders = new Headers(headers);
  outHeaders.set('x-intercepted-url', originalUrl.href);
  const outInit = { ...options, method, headers: outHeaders, redirect: 'manual' };
  if (signal !== undefined && signal !== null) outInit.signal = signal;
  if (body !== null) {
    outInit.body = body;
    outInit.duplex = 'half';
  } else {
    delete outInit.body;
    delete outInit.duplex;
  }

  const response = await originalFetch(targetUrl, outInit);
  const location = response.headers.get('location');
  if (!REDIRECT_STATUSES.has(response.status) || !location || redirectMode === 'manual') {
    return response;
  }
  try {
    if (response.body) await response.body.cancel();
  } catch (error) {
    // ignore
  }
  if (redirectMode === 'error') throw new TypeError('fetch failed: unexpected redirect');
  if (redirectsLeft <= 0) throw new TypeError('fetch failed: redirect count exceeded');

  // The Location is resolved against the ORIGINAL URL, then goes through the map again.
  const next = new URL(location, originalUrl);
  let nextMethod = method;
  let nextBody = body;
  const nextHeaders = new Headers(headers);
  if ((response.status === 303 && method !== 'GET' && method !== 'HEAD') ||
      ((response.status === 301 || response.status === 302) && method === 'POST')) {
    nextMethod = 'GET';
    nextBody = null;
    for (const name of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) {
      nextHeaders.delete(name);
    }
  } else if (!isReplayableBody(body)) {
    throw new TypeError('fetch failed: cannot follow a redirect with a streamed body');
  }
  if (next.origin !== originalUrl.origin) nextHeaders.delete('authorization');
  const nextInit = { ...options, method: nextMethod, headers: nextHeaders, body: nextBody, redirect: 'follow' };
  if (signal !== undefined && signal !== null) nextInit.signal = signal;
  return interceptedFetch(next.href, nextInit, redirectsLeft - 1);
}

if (typeof originalFetch === 'function') {
  globalThis.fetch = function fetch(input, init) {
    return interceptedFetch(input, init, MAX_REDIRECTS);
  };
}

/* -------------------------------------------------------------------- dns */

function isLocalLiteral(name) {
  const family = net.isIP(name);
  if (family === 4) return name.startsWith('127.') || name === '0.0.0.0';
  if (family === 6) return name === '::1' || name === '::' || name === '0:0:0:0:0:0:0:1' || name === '0:0:0:0:0:0:0:0';
  return false;
}

function lookupAnswer(hostname) {
  const name = String(hostname);
  if (isLocalLiteral(name)) return { address: name, family: net.isIP(name) };
  return { address: '127.0.0.1', family: 4 };
}

function fakeLookup(hostname, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  if (typeof options === 'number') options = { family: options };
  const all = Boolean(options && options.all);
  record({ kind: 'dns', host: String(hostname) });
  const answer = lookupAnswer(hostname);
  process.nextTick(() => {
    if (all) callback(null, [answer]);
    else callback(null, answer.address, answer.family);
  });
}

async function fakePromisesLookup(hostname, options) {
  if (typeof options === 'number') options = { family: options };
  record({ kind: 'dns', host: String(hostname) });
  const answer = lookupAnswer(hostname);
  return options && options.all ? [answer] : answer;
}

dns.lookup = fakeLookup;
if (dns.promises) dns.promises.lookup = fakePromisesLookup;

/* -------------------------------------------------------- http(s).request */

const originalHttpRequest = http.request;

function urlToOptions(url) {
  const options = {
    protocol: url.protocol,
    hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    path: `${url.pathname || '/'}${url.search || ''}`,
  };
  if (url.port !== '') options.port = Number(url.port);
  if (url.username || url.password) {
    options.auth = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  }
  return options;
}

function headersToObject(headers) {
  const out = {};
  if (!headers) return out;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) out[String(headers[i]).toLowerCase()] = String(headers[i + 1]);
    return out;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

function hookedRequest(defaultProtocol, args) {
  let index = 0;
  let options = {};
  if (typeof args[0] === 'string' || args[0] instanceof URL) {
    options = urlToOptions(new URL(String(args[0])));
    index = 1;
  }
  if (args[index] && typeof args[index] === 'object') {
    options = { ...options, ...args[index] };
    index += 1;
  }
  const callback = typeof args[index] === 'function' ? args[index] : undefined;

  const protocol = options.protocol || defaultProtocol;
  const defaultPort = protocol === 'https:' ? 443 : 80;
  let hostname = String(options.hostname || options.host || 'localhost');
  if (hostname.startsWith('[') && hostname.endsWith(']')) hostname = hostname.slice(1, -1);
  const port = Number(options.port || options.defaultPort || defaultPort);
  const bracketed = net.isIP(hostname) === 6 ? `[${hostname}]` : hostname;
  const hostKey = port === defaultPort ? bracketed : `${bracketed}:${port}`;
  const path = String(options.path || '/');
  const originalUrl = `${protocol}//${hostKey}${path}`;
  const { target, routed } = route(hostKey);

  const headers = headersToObject(options.headers);
  record({
    kind: 'http',
    host: hostKey,
    path,
    method: String(options.method || 'GET').toUpperCase(),
    protocol,
    headers,
    target: target ? `${target.origin}${target.prefix}${path}` : null,
    routed,
  });

  const rewritten = { ...options, headers: { ...headers, 'x-intercepted-url': originalUrl } };
  for (const key of ['agent', '_defaultAgent', 'socketPath', 'lookup', 'localAddress', 'family']) delete rewritten[key];
  rewritten.protocol = 'http:';
  rewritten.defaultPort = 80;
  if (target) {
    rewritten.host = target.hostname;
    rewritten.hostname = target.hostname;
    rewritten.port = target.port;
    rewritten.path = `${target.prefix}${path}`;
    rewritten.createConnection = () => net.connect({ host: target.hostname, port: target.port });
  } else {
    rewritten.host = '127.0.0.1';
    rewritten.hostname = '127.0.0.1';
    rewritten.port = 9;
    rewritten.createConnection = () => {
      const socket = new net.Socket();
      process.nextTick(() => socket.destroy(new Error(`intercept.cjs: no AIGW_INTERCEPT_SINK for unmapped host ${hostKey}`)));
      return socket;
    };
  }
  return callback ? originalHttpRequest(rewritten, callback) : originalHttpRequest(rewritten);
}

function patchClientModule(mod, defaultProtocol) {
  mod.request = function request(...args) {
    return hookedRequest(defaultProtocol, args);
  };
  mod.get = function get(...args) {
    const req = hookedRequest(defaultProtocol, args);
    req.end();
    return req;
  };
}

patchClientModule(http, 'http:');
patchClientModule(https, 'https:');

/* ---------------------------------------------------------------- inbound */

const originalServerEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function emit(event, ...args) {
  if (event === 'connection') {
    const socket = args[0];
    let remote = null;
    let localPort = null;
    try {
      remote = socket && socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : null;
      localPort = socket ? socket.localPort : null;
    } catch (error) {
      // best effort
    }
    record({ kind: 'inbound-connection', remote, local_port: localPort });
  }
  return originalServerEmit.call(this, event, ...args);
};

/*
 * Listening on loopback only. The gateway's @hono/node-server calls
 * server.listen(port, undefined, cb): every interface. A listen() by port
 * (or by options with a port) that names no host gets 127.0.0.1, so a local
 * run never exposes the gateway to the network; a host given explicitly and
 * a Unix socket path are left alone.
 */
const LISTEN_HOST = '127.0.0.1';
const originalListen = net.Server.prototype.listen;
// A port as Node reads one: a number, or a string Number() turns into one (' 0', '0x0', '+0').
const isPort = (value) => (typeof value === 'number' || typeof value === 'string') && value !== ''
  && Number(value) >= 0;
net.Server.prototype.listen = function listen(...args) {
  const first = args[0];
  if (first == null || typeof first === 'function') {
    // listen(), listen(cb): a random port on every interface.
    args = [0, LISTEN_HOST, ...args.slice(first == null ? 1 : 0)];
  } else if (isPort(first)) {
    if (args[1] == null || args[1] === '') {
      args[1] = LISTEN_HOST;
    } else if (typeof args[1] !== 'string') {
      args.splice(1, 0, LISTEN_HOST);
    }
  } else if (typeof first === 'object' && first.path == null && first.handle == null && first.fd == null
             && first._handle == null && !first.host) {
    args[0] = { ...first, host: LISTEN_HOST };
  }
  return originalListen.apply(this, args);
};

syncBuiltinESMExports();
