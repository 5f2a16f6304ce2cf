#!/usr/bin/env bash
# Calls a model over HTTP with curl: TF Serving's REST API (real or embedded) or the Flask middleware.
#
#   serving/clients/predict.sh URL IMAGE_FILE          # an image (PNG/JPEG; any format via the middleware)
#   serving/clients/predict.sh URL --text "some text"  # a text model
#
# URL is a model on a TF Serving REST API, http://HOST:8501/v1/models/NAME[/versions/N|/labels/L]
# (images go to the `serving_bytes` signature as {"b64": ...}; set SIGNATURE=... for another), or a
# model behind the middleware, http://HOST:8080/v1/classify/NAME. Prints the JSON answer; exits
# non-zero with the server's error message on an HTTP error.
set -euo pipefail

usage() { sed -n '4,5p' "$0" | sed 's/^# *//' >&2; exit 2; }
[ $# -eq 2 ] || [ $# -eq 3 ] || usage
url=$1
shift
if [ "$1" = "--text" ]; then
  [ $# -eq 2 ] || usage
  text=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$2")
  case "$url" in
    */v1/classify/*) body="{\"text\": $text}"; endpoint=$url ;;
    *) body="{\"signature_name\": \"${SIGNATURE:-serving_default}\", \"instances\": [$text]}"; endpoint="$url:predict" ;;
  esac
  exec curl --silent --show-error --fail-with-body -H 'Content-Type: application/json' -d "$body" "$endpoint"
fi
image=$1
[ -f "$image" ] || { echo "predict.sh: no such image file: $image" >&2; exit 2; }
case "$url" in
  */v1/classify/*)
    exec curl --silent --show-error --fail-with-body -F "image=@$image" "$url" ;;
  *)
    # The body goes through a file: an image's base64 can be longer than a command line may be. Plain
    # `base64 | tr -d` works with GNU's base64 (which wraps lines; BSD's and macOS' have no -w) and BSD's.
    body=$(mktemp)
    trap 'rm -f "$body"' EXIT
    printf '{"signature_name": "%s", "instances": [{"b64": "%s"}]}' "${SIGNATURE:-serving_bytes}" \
      "$(base64 < "$image" | tr -d '\n')" > "$body"
    curl --silent --show-error --fail-with-body -H 'Content-Type: application/json' --data-binary "@$body" \
      "$url:predict" ;;
esac
