# HUBBLE_SANITIZE=ON: hubble's own programs (tests, examples, benchmarks: everything that links
# hubble_build_flags) are built with AddressSanitizer + UndefinedBehaviorSanitizer, and every
# finding stops the program (-fno-sanitize-recover=all), so a ctest run fails on it. Consumers of
# hubble::hubble never see these flags.
#
# GCC's -fsanitize=undefined leaves out float-cast-overflow (a double too large for, or NaN cast
# to, an integer type: how a corrupt image or label turns into garbage), so it is named. -O1
# keeps the build and the run affordable in CI (ASan's own guidance); -g1 gives file:line in the
# reports for a fraction of -g's compile time. The run-time options (ASAN_OPTIONS,
# UBSAN_OPTIONS) are set by scripts/test.sh; see docs/hardening.md.
if(NOT HUBBLE_SANITIZE)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(FATAL_ERROR "HUBBLE_SANITIZE needs GCC or Clang (found ${CMAKE_CXX_COMPILER_ID})")
endif()
set(HUBBLE_SANITIZER_FLAGS -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all
    -fno-omit-frame-pointer)
target_compile_options(hubble_build_flags INTERFACE ${HUBBLE_SANITIZER_FLAGS} -O1 -g1)
target_link_options(hubble_build_flags INTERFACE ${HUBBLE_SANITIZER_FLAGS})
message(STATUS "hubble: sanitizer build (${HUBBLE_SANITIZER_FLAGS}; -O1 -g1)")
