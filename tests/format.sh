#!/usr/bin/env bash
# Every C source and header is formatted with the project's .clang-format.
set -u
cd "$CONDUIT_SRCDIR"
echo "1..1"
if ! command -v clang-format >/dev/null; then echo "ok 1 - clang-format clean # SKIP clang-format missing"; exit 0; fi
# tracked and not-yet-tracked files alike (a clean clone has only tracked)
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || files=$(find src include tests examples -name '*.[ch]')
bad=""
for f in $files; do
  [ -f "$f" ] || continue
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
count=$(echo "$files" | wc -w)
if [ -z "$bad" ]; then echo "ok 1 - clang-format clean ($count files)"; else
  echo "not ok 1 - clang-format clean"; for f in $bad; do echo "#   needs clang-format -i $f"; done; fi
