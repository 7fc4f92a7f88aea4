#!/bin/bash
# Fails when a package's transitive deps (a genquery output) reach a
# package it must not depend on. See BUILD.bazel for the rules.
set -u
failed=0
for rule in "$@"; do
  file="${rule%%=*}"
  forbidden="${rule#*=}"
  if [[ ! -s "$file" ]]; then
    echo "FAIL: $file is empty or missing (the query found nothing?)"
    failed=1
    continue
  fi
  IFS=, read -r -a packages <<<"$forbidden"
  for package in "${packages[@]}"; do
    # A label in the package itself (//p:x) or below it (//p/q:x).
    hits=$(grep -E "^${package}(:|/)" "$file" || true)
    if [[ -n "$hits" ]]; then
      echo "FAIL: $(basename "$file" _deps) depends on ${package}:"
      echo "$hits" | sed 's/^/  /'
      failed=1
    fi
  done
done
if [[ $failed -eq 0 ]]; then
  echo "layering holds: $# rules checked"
fi
exit $failed
