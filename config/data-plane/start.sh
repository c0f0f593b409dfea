# The data plane container's start command (run as /bin/sh -c). ECS sets
# AIGW_DATA_PLANE_BUNDLE from the bundle's S3 environment file; the task
# definition pins its sha256. A bundle that does not match is never run.
set -eu
home="${AIGW_HOME:-/etc/nginx/aigw}"
mkdir -p "$home"
printf '%s' "${AIGW_DATA_PLANE_BUNDLE:?is not set: the task definition names the bundle in environmentFiles}" \
  | base64 -d > "$home/bundle.tar.gz"
sum=$(sha256sum "$home/bundle.tar.gz")
sum=${sum%% *}
if [ "$sum" != "${AIGW_DATA_PLANE_SHA256:?is not set}" ]; then
  echo "data-plane: the bundle's sha256 is $sum, the task definition pins $AIGW_DATA_PLANE_SHA256; refusing to start" >&2
  exit 1
fi
tar -xzf "$home/bundle.tar.gz" -C "$home"
unset AIGW_DATA_PLANE_BUNDLE
exec /bin/sh "$home/entrypoint.sh"
