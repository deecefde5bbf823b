# Helpers for the command-line tests (sourced by tests/cli/*.sh). Each case is numbered and
# named; a failing check prints "FAIL [case N: name]: what" and the script goes on, then exits 1
# at the end when any case failed.
failures=0
case_no=0
case_name=""

begin() {
  case_no=$((case_no + 1))
  case_name="$*"
  echo "case $case_no: $case_name"
}
fail() {
  failures=$((failures + 1))
  printf 'FAIL [case %d: %s]: %s\n' "$case_no" "$case_name" "$*" >&2
  printf -- '--- its output:\n%s\n---\n' "$out" >&2
}
# run CMD...: runs it (at most 120 s: a hang is a failure too), its output in $out, status in $rc.
run() {
  out=$(timeout 120 "$@" 2>&1)
  rc=$?
  [ "$rc" -ne 124 ] || fail "timed out (hung?)"
}
expect_status() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"; }
expect_text() { grep -qF -- "$1" <<<"$out" || fail "the output lacks '$1'"; }
expect_no_text() { ! grep -qF -- "$1" <<<"$out" || fail "the output has '$1'"; }
finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed in $case_no cases" >&2
    exit 1
  fi
  echo "all $case_no cases passed"
}
