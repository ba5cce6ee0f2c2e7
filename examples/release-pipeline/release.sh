#!/usr/bin/env bash
# What a CI job does for each release of an agent (or of droverd): sign the artifact with the
# release key, publish it to the manager (which checks the signature against its own trust
# policy), then start a rollout through the deploy API (POST /manager/v1/updates/notify).
# Driven by environment variables; see --help and examples/release-pipeline/README.md.
#
# It never prints a secret: no `set -x`, the deploy token only ever travels in the environment of
# the drover CLI (never on a command line, where `ps` and CI logs would show it).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: release.sh [--help]

Signs ARTIFACT, publishes it to the manager and starts a rollout of it. Everything comes from the
environment:

Required
  DROVER_MANAGER_URL   The manager, e.g. https://manager.example.com:8443
  DROVER_DEPLOY_TOKEN  The manager's deploy token (secret): publishes releases and starts rollouts
  RELEASE_KEY          Path to the release private key (drover keygen's NAME.key; secret). Several
                       paths separated by ':' sign with several keys (a k-of-n trust policy)
  ARTIFACT             Path to the artifact file to release (one file: a bundle or a binary)
  VERSION              The version to release, e.g. 1.4.0 (semantic version or commit SHA)
  PLATFORM             The platform it runs on, e.g. linux-x64, linux-arm64

Optional
  ARTIFACT_NAME        agent (default) or daemon (a droverd self-update)
  CHANNEL              Release channel (default: stable)
  STRATEGY             canary (default), immediate or manual
  CHANGELOG            Path to the release notes, one entry a line (signed into the release and
                       shown to agents in the shutdown reason)
  COMMIT_SHA           The commit the artifact was built from
  EXPIRES_IN           How long the release stays installable, e.g. 30d (default: drover's 90d)
  TRUST                Path to the trust policy (trust.json): verify the signed release locally
                       before publishing it
  ROLLOUT_OPTIONS      More options for `drover rollout start`, split on spaces, e.g.
                       "--percentages 10,50,100 --soak-seconds 600"
  DROVER               The drover CLI (default: drover on PATH), e.g. "node packages/cli/dist/bin.js"

Writes ARTIFACT.release.json (the signed envelope) beside ARTIFACT. Exit codes: 0 released and
rollout started; 2 a variable is missing or names no file; otherwise the failing drover command's
code, with its error code (docs/errors.md) on stderr.
USAGE
}

while (($# > 0)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    *) echo "release.sh: unknown argument $1 (everything comes from the environment; see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'release.sh: %s\n' "$*" >&2; }
usage_error() { printf 'release.sh: %s (see --help)\n' "$*" >&2; exit 2; }

missing=()
for name in DROVER_MANAGER_URL DROVER_DEPLOY_TOKEN RELEASE_KEY ARTIFACT VERSION PLATFORM; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
((${#missing[@]} == 0)) || usage_error "missing environment: set ${missing[*]}"

artifact_name="${ARTIFACT_NAME:-agent}"
channel="${CHANNEL:-stable}"
strategy="${STRATEGY:-canary}"
[[ "$artifact_name" == agent || "$artifact_name" == daemon ]] || usage_error "ARTIFACT_NAME is agent or daemon, not \"$artifact_name\""
[[ "$strategy" =~ ^(canary|immediate|manual)$ ]] || usage_error "STRATEGY is canary, immediate or manual, not \"$strategy\""
[[ -f "$ARTIFACT" ]] || usage_error "ARTIFACT=$ARTIFACT is not a file"
[[ -z "${CHANGELOG:-}" || -f "$CHANGELOG" ]] || usage_error "CHANGELOG=$CHANGELOG is not a file"
[[ -z "${TRUST:-}" || -f "$TRUST" ]] || usage_error "TRUST=$TRUST is not a file"

key_args=()
IFS=':' read -r -a keys <<<"$RELEASE_KEY"
for key in "${keys[@]}"; do
  [[ -f "$key" ]] || usage_error "RELEASE_KEY names $key, which is not a file"
  key_args+=(--key "$key")
done

read -r -a drover <<<"${DROVER:-drover}"
command -v "${drover[0]}" >/dev/null || usage_error "the drover CLI (${drover[0]}) is not found: put drover on PATH or set DROVER"

# Only the deploy token: publishing and notifying need no more, so an admin token that happens to
# be in the CI environment is not passed on (least privilege).
unset DROVER_ADMIN_TOKEN
export DROVER_MANAGER_URL DROVER_DEPLOY_TOKEN

envelope="$ARTIFACT.release.json"
step=""
on_exit() {
  local code=$?
  ((code == 0)) || say "failed at step: $step (exit $code)"
}
trap on_exit EXIT

# 1. Sign: a DSSE envelope over the file's name, size, SHA-256, version, platform and expiry.
step="sign"
sign_args=("${key_args[@]}" --artifact "$artifact_name" --version "$VERSION" --platform "$PLATFORM" --channel "$channel" --out "$envelope")
[[ -z "${CHANGELOG:-}" ]] || sign_args+=(--changelog-file "$CHANGELOG")
[[ -z "${COMMIT_SHA:-}" ]] || sign_args+=(--commit-sha "$COMMIT_SHA")
[[ -z "${EXPIRES_IN:-}" ]] || sign_args+=(--expires-in "$EXPIRES_IN")
say "signing $artifact_name $VERSION for $PLATFORM ($channel)"
"${drover[@]}" release sign "${sign_args[@]}" "$ARTIFACT"

# 2. Optionally, verify it as a host will, before the manager sees it.
if [[ -n "${TRUST:-}" ]]; then
  step="verify"
  say "verifying against $TRUST"
  "${drover[@]}" release verify --trust "$TRUST" --platform "$PLATFORM" --artifact "$artifact_name" --release "$envelope" "$ARTIFACT"
fi

# 3. Publish: the envelope (the manager checks it against its trust policy), then the bytes.
step="publish"
say "publishing to $DROVER_MANAGER_URL"
"${drover[@]}" release publish --manager "$DROVER_MANAGER_URL" "$ARTIFACT" "$envelope"

# 4. Notify: start a deployment of this version through the deploy API.
step="rollout"
rollout_args=(--manager "$DROVER_MANAGER_URL" --version "$VERSION" --artifact "$artifact_name" --strategy "$strategy")
[[ -z "${CHANGELOG:-}" ]] || rollout_args+=(--changelog-file "$CHANGELOG")
[[ -z "${COMMIT_SHA:-}" ]] || rollout_args+=(--commit-sha "$COMMIT_SHA")
read -r -a extra <<<"${ROLLOUT_OPTIONS:-}"
say "starting a $strategy rollout of $VERSION"
"${drover[@]}" rollout start "${rollout_args[@]}" ${extra[@]+"${extra[@]}"}
step="done"
