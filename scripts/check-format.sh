#!/usr/bin/env bash
# Checks C++ files against .clang-format with Debian 12's clang-format 14 (--dry-run -Werror):
# lists every file that clang-format would change and fails if there is one. Changes nothing.
#   scripts/check-format.sh            the files kept formatted today (ctest format.check)
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
# The files that pass today; add a file here once it is formatted.
checked=(tests/fuzz/*.cpp tests/fuzz/*.hpp)
if [[ ${1:-} == --all ]]; then
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h')
elif (($# > 0)); then
  files=("$@")
else
  files=("${checked[@]}")
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
