#!/usr/bin/env bash
# Checks C++ files against .clang-format with Debian 12's clang-format 14 (--dry-run -Werror):
# lists every file that clang-format would change and fails if there is one. Changes nothing.
#   scripts/check-format.sh            every tracked file but scripts/format-pending.txt (ctest format.check)
#   scripts/check-format.sh --all      every tracked .cpp/.hpp (most of the code predates the
#                                      .clang-format; see docs/hardening.md)
#   scripts/check-format.sh FILE...    the files named
# Fix a file with: clang-format-14 -i FILE
set -euo pipefail
cd "$(dirname "$0")/.."
formatter=$(command -v clang-format-14 || command -v clang-format || true)
if [[ -z $formatter ]]; then
  echo "check-format: clang-format 14 not found (scripts/install-deps.sh installs clang-format-14)" >&2
  exit 1
fi
# Every tracked file is checked except those in scripts/format-pending.txt: the files that
# predate .clang-format and have not been reformatted yet (a new file is checked from the start;
# remove a file from the list once it is formatted).
mapfile -t tracked < <(git ls-files '*.cpp' '*.hpp' '*.h')
if [[ ${1:-} == --all ]]; then
  files=("${tracked[@]}")
elif (($# > 0)); then
  files=("$@")
else
  mapfile -t pending < <(grep -v '^#' scripts/format-pending.txt)
  files=()
  for f in "${tracked[@]}"; do
    [[ " ${pending[*]} " == *" $f "* ]] || files+=("$f")
  done
fi
bad=()
for f in "${files[@]}"; do
  "$formatter" --dry-run -Werror --style=file "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]} > 0)); then
  echo "check-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format ($("$formatter" --version)):"
  printf '  %s\n' "${bad[@]}"
  echo "(see the changes: $formatter --dry-run FILE; apply them: $formatter -i FILE)"
  exit 1
fi
echo "check-format: ${#files[@]} files match .clang-format"
