#!/usr/bin/env bash
# contact_sheet on bad input: each case checks the exit status and the message.
#   contact_sheet.sh CONTACT_SHEET WORK_DIR
set -u
exe=$1
work=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
quick=(--real "$work/none.h5" --per-class 1 --thumb 8 --out "$work/sheet.png")

bad_value() {  # bad_value OPTION VALUE: exit 2 with a message naming the option
  begin "$1 '$2' is a usage error naming $1"
  rm -f "$work/sheet.png"
  run "$exe" "${quick[@]}" "$1" "$2"
  expect_status 2
  expect_text "contact_sheet: $1"
  expect_no_text "stoi"
  expect_no_text "stoull"
  [ ! -f "$work/sheet.png" ] || fail "wrote the sheet anyway"
}
bad_value --crop -5
bad_value --crop 0
bad_value --crop abc
bad_value --thumb 12px
bad_value --thumb 4
bad_value --per-class 99
bad_value --per-class 99999999999999999999
bad_value --seed -1
bad_value --seed 1e3

begin "an unknown option is a usage error"
run "$exe" "${quick[@]}" --colour red
expect_status 2
expect_text "unknown argument '--colour'"

begin "a missing value is a usage error"
run "$exe" "${quick[@]}" --crop
expect_status 2
expect_text "--crop needs a value"

begin "no --out is a usage error"
run "$exe" --per-class 1
expect_status 2
expect_text "--out FILE.png is required"

begin "a crop larger than the images is an error (exit 1)"
run "$exe" "${quick[@]}" --crop 300
expect_status 1
expect_text "300"

begin "good values make the sheet"
run "$exe" "${quick[@]}" --crop 64 --seed 7
expect_status 0
[ -f "$work/sheet.png" ] || fail "no sheet written"

finish
