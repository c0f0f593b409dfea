# Start command of the data plane container (OpenResty image), run as
# `/bin/sh -c "<this file>"`; the local harness runs the very same text.
#
# 1. Each organisation key ECS injected (the names listed in
#    AIGW_KEY_VARIABLES) is trimmed of surrounding whitespace (a secret
#    stored with a trailing newline is the classic mistake) and must then
#    consist of the characters provider API keys use. Anything else refuses
#    the start with one clear line on stderr (the container log).
# 2. The configuration, the Lua code and its settings are written from the
#    container's environment into AIGW_HOME (nginx's prefix).
# 3. nginx runs in the foreground; the keys stay in its environment, never
#    in a file.
set -eu
home="${AIGW_HOME:-/etc/nginx/aigw}"
for name in ${AIGW_KEY_VARIABLES:-}; do
  eval "value=\${$name-}"
  value=$(printf '%s' "$value" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
  case "$value" in
    "")
      echo "data-plane: $name is empty; set the value of its secret in Secrets Manager and start the task again" >&2
      exit 1
      ;;
    *[!A-Za-z0-9._~+/=-]*)
      echo "data-plane: $name has characters a provider API key never has (inner whitespace, quotes, \$, ; or others); refusing to start" >&2
      exit 1
      ;;
  esac
  export "$name=$value"
done
mkdir -p "$home/temp"
{ printf '%s\n' "${AIGW_NGINX_PRELUDE:-}"; printf '%s\n' "$AIGW_NGINX_MAIN"; } > "$home/nginx.conf"
printf '%s\n' "$AIGW_NGINX_SERVER" > "$home/gateway.conf"
printf '%s\n' "$AIGW_DATAPLANE_LUA" > "$home/aigw_dataplane.lua"
printf '%s\n' "$AIGW_DATAPLANE_CONFIG" > "$home/dataplane.json"
exec nginx -p "$home/" -c "$home/nginx.conf" -g 'daemon off;'
