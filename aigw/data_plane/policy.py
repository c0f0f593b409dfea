"""What the data plane lets an authenticated but untrusted client do: the
routes, the headers, the routing configs, the model names and the body
fields it accepts. Everything not listed here is refused (allow-lists).
docs/gateway-contract.md gives each rule and the reason for it."""

from __future__ import annotations

from typing import Any

# Secret name (Secrets Manager, `gateway.provider_keys`) -> Portkey provider slug.
PROVIDER_SLUGS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "azure": "azure-openai",
}
AZURE_SLUG = PROVIDER_SLUGS["azure"]
BEDROCK_SLUG = "bedrock"


def key_variable(secret_name: str) -> str:
    """Environment variable the data plane container receives an org key in."""
    return f"{secret_name.upper()}_API_KEY"


# The inference routes (POST only), each with the providers it is offered
# for. Everything else is refused. Files, batches, fine-tuning, stored
# completions/responses, assistants, vector stores, `/v1/proxy` and the
# catch-all `/v1/*` passthrough would let any client read or delete the
# organisation's data at the provider with the organisation's key.
INFERENCE_ROUTES: dict[str, frozenset[str]] = {
    "/v1/chat/completions": frozenset({"openai", "anthropic", "google", "azure-openai", "bedrock"}),
    "/v1/completions": frozenset({"openai", "azure-openai"}),
    "/v1/embeddings": frozenset({"openai", "google", "azure-openai"}),
    "/v1/messages": frozenset({"anthropic", "bedrock"}),
    "/v1/responses": frozenset({"openai"}),
    "/v1/images/generations": frozenset({"openai", "azure-openai"}),
    "/v1/images/edits": frozenset({"openai", "azure-openai"}),
    "/v1/audio/speech": frozenset({"openai", "azure-openai"}),
    "/v1/audio/transcriptions": frozenset({"openai", "azure-openai"}),
    "/v1/audio/translations": frozenset({"openai", "azure-openai"}),
    "/v1/moderations": frozenset({"openai"}),
}
# Routes that take multipart uploads; every other route takes JSON only.
MULTIPART_ROUTES: tuple[str, ...] = ("/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations")

# Client request headers passed on to the gateway, besides the ones the data
# plane decides itself (Authorization, x-api-key, x-portkey-provider,
# x-portkey-config, Azure's and AWS's). Nothing else reaches the gateway: not
# x-portkey-custom-host, not x-portkey-forward-headers, not any credential
# or host selector (x-portkey-aws-*, -vertex-*, -azure-*,
# -openai-organization/-project, -huggingface-base-url, …).
FORWARDED_HEADERS: tuple[str, ...] = (
    "content-type",
    "accept",
    "x-portkey-trace-id",
    "x-portkey-metadata",
    "x-portkey-retry-count",
    "x-portkey-request-timeout",
    "x-portkey-strict-open-ai-compliance",
    "x-portkey-anthropic-version",
    "x-portkey-anthropic-beta",
    "anthropic-version",
    "anthropic-beta",
    "x-amzn-trace-id",
)
# Headers the data plane reads to decide (besides the forwarded ones).
DECIDING_HEADERS: tuple[str, ...] = (
    "authorization", "x-api-key", "x-portkey-provider", "x-portkey-config", "x-aigw-route", "cache-control",
    "x-aigw-cache",
)  # fmt: skip
# Each header the data plane reads or forwards must appear once: nginx passes
# the first of a repeated header on, while a check could have read another.
SINGLE_HEADERS: tuple[str, ...] = tuple(sorted(set(FORWARDED_HEADERS) | set(DECIDING_HEADERS)))
# More request headers than this are refused: the ones past it would not be seen.
MAX_HEADERS = 100

# Anthropic betas a client may ask for (anthropic-beta, x-portkey-anthropic-beta).
# Left out on purpose: the files API, code execution and skills (objects
# stored at the provider under the organisation's account), the MCP
# connector and web fetch (the provider calls hosts the request names).
ANTHROPIC_BETAS: tuple[str, ...] = (
    "prompt-caching-2024-07-31",
    "pdfs-2024-09-25",
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "fine-grained-tool-streaming-2025-05-14",
    "extended-cache-ttl-2025-04-11",
    "context-1m-2025-08-07",
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
)

# Client routing configs (x-portkey-config) may use these keys only: routing
# among providers with the client's own keys. Everything that would choose a
# host, a region, a resource, an account, a credentials source or a callback
# (custom_host, resource_name, aws_region, vertex_*, hooks, guardrails,
# forward_headers, …) is refused. Conditional routing is not offered.
CONFIG_KEYS: tuple[str, ...] = (
    "strategy", "mode", "on_status_codes", "targets", "provider", "api_key", "weight", "retry", "attempts",
    "use_retry_after_header", "request_timeout", "cache", "max_age", "strict_open_ai_compliance", "override_params",
    "model", "temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k", "stop", "seed",
    "presence_penalty", "frequency_penalty", "n",
)  # fmt: skip
# Upstream calls one client config may make at most: each leaf target once
# plus its retries (a target inherits the retry of the config around it). Each
# bound alone (8 targets, 5 attempts, nesting) still let one request make
# hundreds of calls, which the gateway keeps making after the client is gone.
MAX_CONFIG_UPSTREAM_CALLS = 16
# Providers a client config may name (their hosts are fixed; Azure's is not).
CONFIG_PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "google")
# What each config key may hold, wherever it appears. The gateway trusts these
# values: an unbounded retry count made it build an array of that length and
# abort (V8 "invalid size"), and a weight of 0 left it with no target and a
# request that never answered. Kinds: object, array (of `items`, at most
# `max_items`), string (at most `max_length`, one of `enum`), integer and
# number (finite, from `min` to `max`; `above` excludes its bound), boolean,
# and text (a string or an array of at most 4 strings: `stop`).
CONFIG_VALUES: dict[str, dict[str, Any]] = {
    "strategy": {"kind": "object"},
    # Strategy modes, and the cache's (same key name).
    "mode": {"kind": "string", "enum": ["single", "fallback", "loadbalance", "simple", "semantic"]},
    "on_status_codes": {"kind": "array", "max_items": 20, "items": {"kind": "integer", "min": 100, "max": 599}},
    "targets": {"kind": "array", "min_items": 1, "max_items": 8, "items": {"kind": "object"}},
    "provider": {"kind": "string", "max_length": 32},
    "api_key": {"kind": "string", "max_length": 512},
    "weight": {"kind": "number", "above": 0, "max": 1000},
    "retry": {"kind": "object"},
    "attempts": {"kind": "integer", "min": 0, "max": 5},
    "use_retry_after_header": {"kind": "boolean"},
    "request_timeout": {"kind": "integer", "min": 1, "max": 300_000},  # ms; the data plane waits 300 s
    "cache": {"kind": "object"},
    "max_age": {"kind": "integer", "min": 1, "max": 604_800},
    "strict_open_ai_compliance": {"kind": "boolean"},
    "override_params": {"kind": "object"},
    "model": {"kind": "string", "max_length": 200},
    "temperature": {"kind": "number", "min": 0, "max": 2},
    "max_tokens": {"kind": "integer", "min": 1, "max": 1_000_000},
    "max_completion_tokens": {"kind": "integer", "min": 1, "max": 1_000_000},
    "top_p": {"kind": "number", "min": 0, "max": 1},
    "top_k": {"kind": "integer", "min": 1, "max": 1000},
    "stop": {"kind": "text", "max_length": 256},
    "seed": {"kind": "integer", "min": -(2**53), "max": 2**53},
    "presence_penalty": {"kind": "number", "min": -2, "max": 2},
    "frequency_penalty": {"kind": "number", "min": -2, "max": 2},
    "n": {"kind": "integer", "min": 1, "max": 8},
}

# What `model` may look like per provider. Google and Bedrock put it into the
# upstream URL (Google next to the key): no slash, no query, no fragment.
# PCRE; anchored with \z, the real end: `$` would also match before a
# trailing newline.
MODEL_PATTERNS: dict[str, str] = {
    "default": r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}\z",
    "google": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\z",
    # provider.model[-version][:n], optionally a cross-region prefix (us., eu., …);
    # never an ARN: the gateway calls Bedrock's control plane for those.
    BEDROCK_SLUG: r"^(?:(?:us|eu|apac|au|ca|jp|global)\.)?[a-z0-9-]+\.[A-Za-z0-9._-]{1,160}(?::[0-9]{1,3})?\z",
}

# Body fields that point at objects stored at the provider under the
# organisation's account (other teams' files, responses, vector stores,
# containers, skills), refused anywhere in a JSON body.
STORED_OBJECT_FIELDS: tuple[str, ...] = (
    "file_id", "file_ids", "vector_store_ids", "previous_response_id", "container_id", "skill_id",
    "anthropic_beta", "guardrailConfig", "guardrail_config",
)  # fmt: skip
# ... and at the top of a body of these routes (common words elsewhere).
STORED_OBJECT_TOP_LEVEL: dict[str, tuple[str, ...]] = {
    "/v1/responses": ("conversation", "prompt", "container"),
    "/v1/messages": ("container",),
    "/v1/chat/completions": ("container",),
}
# ... and in a tool definition (code interpreter: a container id, or a new
# container that later requests could name).
STORED_OBJECT_TOOL_FIELDS: tuple[str, ...] = ("container",)
# Tools that make the provider call a host the request names (remote MCP).
REMOTE_TOOL_TOP_LEVEL: tuple[str, ...] = ("mcp_servers",)
REMOTE_TOOL_TYPES: tuple[str, ...] = ("mcp",)
REMOTE_TOOL_FIELDS: tuple[str, ...] = ("server_url",)
MAX_BODY_DEPTH = 32
# Objects and arrays a JSON body may hold: decoding builds a table for each,
# and a 10 MiB body of empty arrays grew a worker by 285 MiB. A long
# conversation with tools has thousands; this bounds what one request costs.
MAX_BODY_CONTAINERS = 100_000
# Content items whose "type" points at a stored object (an item of a stored
# response), and keys whose object value is a stored object when it carries
# an "id" (a previous audio answer, an organisation's custom voice).
STORED_OBJECT_TYPES: tuple[str, ...] = ("item_reference",)
STORED_OBJECT_ID_HOLDERS: tuple[str, ...] = ("audio", "voice")
# Strings a provider reads as its own stored objects, by provider (Lua
# patterns over the lowercased value): Bedrock's s3:// (read with the task
# role), Google's gs:// and any URL of its API host (its Files API URIs name
# files under the organisation's key, in more spellings than a path pattern
# would catch: a port, a trailing dot, percent-encoding). Every pattern is
# literal text after an optional `^%s*`: a wildcard such as `.*` backtracks,
# and one body string repeating the text cost seconds of a worker's CPU.
STORED_OBJECT_URLS: dict[str, tuple[str, ...]] = {
    BEDROCK_SLUG: ("^%s*s3:",),
    "google": ("^%s*gs:", "generativelanguage%.googleapis%.com"),
}

# Model names that keep their own value in the metric dimension `model`;
# every other model counts as "other" (a client must not mint new metrics).
# The providers' current models, plus `observability.metric_models`.
KNOWN_MODELS: tuple[str, ...] = (
    # OpenAI
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "gpt-5-nano",
    "o1", "o3", "o3-mini", "o4-mini", "text-embedding-3-small", "text-embedding-3-large", "whisper-1",
    "gpt-image-1", "dall-e-3", "tts-1", "omni-moderation-latest",
    # Anthropic
    "claude-opus-4-1", "claude-opus-4-0", "claude-sonnet-4-5", "claude-sonnet-4-0", "claude-3-7-sonnet-latest",
    "claude-3-5-haiku-latest", "claude-haiku-4-5",
    # Google
    "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash", "text-embedding-004",
    # Bedrock
    "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0", "amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0",
    "amazon.titan-embed-text-v2:0",
)  # fmt: skip

# The data plane's own errors (nginx-generated, never the gateway's), as JSON.
OWN_ERRORS: dict[int, str] = {
    400: "the request could not be read",
    404: "not an offered route",
    408: "the request was not received in time",
    411: "the request needs a length",
    413: "the request body is larger than the gateway accepts (gateway.max_request_body_mib)",
    414: "the request line is too long",
    494: "the request headers are too large",
    500: "the data plane failed",
    501: "the request uses a transfer encoding the data plane does not implement",
    502: "the gateway did not answer",
    503: "the gateway is unavailable",
    504: "the gateway did not answer in time",
    505: "the HTTP version is not supported",
}


def refusal(rule: str, message: str) -> dict[str, Any]:
    """The JSON body of a refusal: OpenAI-style error with the rule that refused."""
    return {"error": {"message": message, "type": "aigw_refused", "rule": rule}}
