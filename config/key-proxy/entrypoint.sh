# Start command of the key proxy container (official nginx image), run as
# `/bin/sh -c "<this file>"`; the local harness runs the very same text.
#
# 1. Each organisation key ECS injected (the names listed in
#    AIGW_KEY_VARIABLES) is trimmed of surrounding whitespace (a secret
#    stored with a trailing newline is the classic mistake) and must then
#    consist of the characters provider API keys use. Anything else refuses
#    the start with one clear line on stderr (the container log): a key with
#    a quote, `$`, `;` or inner whitespace would corrupt the configuration.
# 2. The configuration (AIGW_PROXY_TEMPLATE) is rendered with envsubst,
#    filling only those key variables, over the image's default server.
# 3. nginx runs in the foreground.
#
# Paths and nginx arguments can be moved (AIGW_PROXY_CONF, AIGW_NGINX_ARGS)
# for the harness; ECS sets neither.
set -eu
conf="${AIGW_PROXY_CONF:-/etc/nginx/conf.d/default.conf}"
fill=""
for name in ${AIGW_KEY_VARIABLES:-}; do
  eval "value=\${$name-}"
  value=$(printf '%s' "$value" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
  case "$value" in
    "")
      echo "key-proxy: $name is empty; set the value of its secret in Secrets Manager and start the task again" >&2
      exit 1
      ;;
    *[!A-Za-z0-9._~+/=-]*)
      echo "key-proxy: $name has characters a provider API key never has (inner whitespace, quotes, \$, ; or others); refusing to start" >&2
      exit 1
      ;;
  esac
  export "$name=$value"
  fill="$fill \${$name}"
done
printf '%s\n' "$AIGW_PROXY_TEMPLATE" | envsubst "$fill" > "$conf"
# shellcheck disable=SC2086  # AIGW_NGINX_ARGS is a list of words on purpose
exec nginx ${AIGW_NGINX_ARGS:-} -g 'daemon off;'
