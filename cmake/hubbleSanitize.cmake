# HUBBLE_SANITIZE=ON: hubble's own programs (tests, examples, benchmarks: everything that links
# hubble_build_flags) are built with AddressSanitizer + UndefinedBehaviorSanitizer, and every
# finding stops the program (-fno-sanitize-recover=all), so a ctest run fails on it. Consumers of
# hubble::hubble never see these flags. scripts/test.sh builds it with Clang 14 (its sanitize
# stage, together with the fuzz targets); GCC works too.
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
# At -O1 under ASan Clang cannot vectorise some `omp simd` loops and warns for each one
# (-Wpass-failed): noise in the log, and an error in a build that turns warnings into errors.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(hubble_build_flags INTERFACE -Wno-pass-failed)
endif()
target_link_options(hubble_build_flags INTERFACE ${HUBBLE_SANITIZER_FLAGS})
# LeakSanitizer's suppressions for libhdf5's own leaks, compiled into each program.
target_sources(hubble_build_flags INTERFACE ${CMAKE_CURRENT_LIST_DIR}/lsan_suppressions.cpp)
message(STATUS "hubble: sanitizer build (${HUBBLE_SANITIZER_FLAGS}; -O1 -g1)")
