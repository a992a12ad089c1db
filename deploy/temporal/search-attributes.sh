#!/bin/sh
# Makes Ratchet's namespace and custom search attributes exist on a Temporal cluster. Safe to
# re-run: what already exists is left alone. The `temporal` CLI reads TEMPORAL_ADDRESS itself.
#
#   TEMPORAL_ADDRESS=temporal:7233 TEMPORAL_NAMESPACE=default sh search-attributes.sh
#
# Runs as the one-shot service temporal-search-attributes in docker-compose.yml, which the API
# and the workers wait for; on any other cluster run it once per namespace (deploy/README.md).
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS (host:port of the frontend) is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-168h}"
# Every one is a Keyword: exact-match filters in the UI and in List queries.
ATTRIBUTES="RatchetKind RatchetRepo RatchetStatus RatchetPolicy RatchetSentryIssue"

# Retries a command (quietly, up to $1 times, 2 s apart): the frontend answers before the
# namespace registry is ready, and a new namespace takes a few seconds to reach every cache.
retry() {
  tries="$1"
  shift
  n=1
  until "$@" >/dev/null 2>&1; do
    if [ "${n}" -ge "${tries}" ]; then
      echo "gave up after ${tries} tries: $*" >&2
      "$@" >&2 || true
      return 1
    fi
    n=$((n + 1))
    sleep 2
  done
}

# Runs a step; succeeds when it succeeds or when it only reports that its work is already done
# (some server versions answer AlreadyExists to a second create, newer ones accept it). A name
# already taken with another type is a real conflict: the CLI says "already exists and has
# different type", and that fails the job.
unless_done() {
  if output=$("$@" 2>&1); then
    echo "done: $*"
    return 0
  fi
  case "${output}" in
    *"different type"*) echo "${output}" >&2; return 1 ;;
    *"already exists"* | *"AlreadyExists"*) echo "already done: $*" ;;
    *) echo "${output}" >&2; return 1 ;;
  esac
}

retry 60 temporal operator cluster health
if ! temporal operator namespace describe --namespace "${NAMESPACE}" >/dev/null 2>&1; then
  unless_done temporal operator namespace create --namespace "${NAMESPACE}" \
    --retention "${RETENTION}"
fi
retry 30 temporal operator search-attribute list --namespace "${NAMESPACE}"

for name in ${ATTRIBUTES}; do
  unless_done temporal operator search-attribute create --namespace "${NAMESPACE}" \
    --name "${name}" --type Keyword
done
temporal operator search-attribute list --namespace "${NAMESPACE}"
