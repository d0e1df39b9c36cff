#!/usr/bin/env bash
# One-shot set-up of a Temporal cluster for sitefleet (the temporal-setup service of docker-compose.yml; also
# usable by hand against any cluster: TEMPORAL_ADDRESS=host:7233 bash deploy/temporal/setup-namespace.sh).
#
# - creates the namespace (TEMPORAL_NAMESPACE, default "default") with NAMESPACE_RETENTION (default 30d);
# - registers sitefleet's search attributes, the ones in domain/search-attributes.ts;
# - waits until a visibility query accepts them, so workflows started right after this can use them.
# Safe to run again: what exists is left alone.
set -euo pipefail

: "${TEMPORAL_ADDRESS:=127.0.0.1:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${NAMESPACE_RETENTION:=30d}"
export TEMPORAL_ADDRESS

# name=type, as in domain/search-attributes.ts (KEYWORD -> Keyword, KEYWORD_LIST -> KeywordList, BOOL -> Bool).
SEARCH_ATTRIBUTES=(
  SitefleetSite=Keyword
  SitefleetPlatform=Keyword
  SitefleetCluster=Keyword
  SitefleetServer=KeywordList
  SitefleetHealthy=Bool
)

wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "setup: gave up waiting for ${what} after 120 s (TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS})" >&2
  exit 1
}

wait_for "the Temporal frontend" temporal operator cluster health

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "setup: namespace ${TEMPORAL_NAMESPACE} exists"
else
  echo "setup: creating namespace ${TEMPORAL_NAMESPACE} (retention ${NAMESPACE_RETENTION})"
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$NAMESPACE_RETENTION" \
    --description "sitefleet operations"
fi
wait_for "namespace ${TEMPORAL_NAMESPACE}" temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE"

existing=$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" --output json)
for pair in "${SEARCH_ATTRIBUTES[@]}"; do
  name=${pair%%=*}
  type=${pair#*=}
  if grep -q "\"${name}\"" <<<"$existing"; then
    echo "setup: search attribute ${name} exists"
  else
    echo "setup: registering search attribute ${name} (${type})"
    temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" --type "$type"
  fi
done

for pair in "${SEARCH_ATTRIBUTES[@]}"; do
  name=${pair%%=*}
  wait_for "search attribute ${name} to be queryable" \
    temporal workflow count --namespace "$TEMPORAL_NAMESPACE" --query "${name} = 'setup-probe'"
done
echo "setup: namespace ${TEMPORAL_NAMESPACE} is ready for sitefleet"
