# Installs hubble from BINARY_DIR into a scratch prefix, then builds and runs the consumer project
# (tests/consumer) against it with find_package(hubble CONFIG REQUIRED), with -Wall -Wextra
# -Wpedantic -Werror, for each of COMPILERS (a ;-list; default CXX, plus g++ and clang++-14 /
# clang++ when installed, so a GCC build also checks Clang and the other way round):
#   the first (CXX):  with no flags (plain x86-64) and with -mavx2 -mfma
#   the others:       with no flags only
# Each build is one translation unit that instantiates the whole library (the four builds of
# g++ and clang++ took 316 s of CI's plain stage). Clang with -mavx2 -mfma is left out because
# scripts/test.sh's sanitize stage builds hubble's own programs with Clang and hubble's default
# flags, -mavx2 -mfma included (-Wall -Wextra -Wshadow -Wconversion there, without -Werror).
# Every build runs; the test fails if any failed, and prints one line per build.
#   cmake -DBINARY_DIR=<hubble build> -DWORK_DIR=<scratch> -DCONSUMER_DIR=<tests/consumer>
#         -DCXX=<compiler> [-DCOMPILERS=a;b] -P run.cmake
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed")
endif()

if(NOT COMPILERS)
  set(COMPILERS ${CXX})
  find_program(gxx NAMES g++)
  find_program(clangxx NAMES clang++-14 clang++)
  foreach(c IN ITEMS ${gxx} ${clangxx})
    get_filename_component(real ${c} REALPATH)
    set(known FALSE)
    foreach(k IN LISTS COMPILERS)
      get_filename_component(kreal ${k} REALPATH)
      if(kreal STREQUAL real)
        set(known TRUE)
      endif()
    endforeach()
    if(NOT known)
      list(APPEND COMPILERS ${c})
    endif()
  endforeach()
endif()

set(results "")
set(failed 0)
set(index 0)
list(GET COMPILERS 0 first)
foreach(cxx IN LISTS COMPILERS)
  get_filename_component(cname ${cxx} NAME)
  set(flag_sets "")
  if(cxx STREQUAL first)
    set(flag_sets "-mavx2 -mfma")
  endif()
  foreach(flags IN ITEMS "" ${flag_sets})
    math(EXPR index "${index} + 1")
    set(dir ${WORK_DIR}/build${index})
    set(label "${cname} -Wall -Wextra -Wpedantic -Werror ${flags}")
    set(stage configure)
    execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${dir} -DCMAKE_BUILD_TYPE=Release
                            -DCMAKE_CXX_COMPILER=${cxx} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
                            "-DHUBBLE_CONSUMER_FLAGS=${flags}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(rc EQUAL 0)
      set(stage build)
      execute_process(COMMAND ${CMAKE_COMMAND} --build ${dir} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    endif()
    if(rc EQUAL 0)
      set(stage run)
      execute_process(COMMAND ${dir}/consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    endif()
    if(rc EQUAL 0)
      string(APPEND results "  ok      ${label}\n")
    else()
      set(failed 1)
      string(APPEND results "  FAILED  ${label} (${stage}, exit ${rc})\n")
      message("---- ${label}: ${stage} failed:\n${out}")
    endif()
  endforeach()
endforeach()
message("consumer builds:\n${results}")
if(failed)
  message(FATAL_ERROR "a consumer build failed")
endif()
