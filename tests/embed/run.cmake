# The embedding test: install hubble into a scratch prefix, build two separate CMake projects
# against it with find_package(hubble CONFIG REQUIRED), and check that examples/embed classifies
# a picture the way the network itself does.
#   cmake -DSOURCE_DIR=<repo> -DBINARY_DIR=<hubble build> -DWORK_DIR=<scratch> -DCXX=<compiler> -P run.cmake
#  1. cmake --install BINARY_DIR --prefix WORK_DIR/prefix
#  2. tests/embed/fixture: make_fixture writes model.h5 (a PaperNet checkpoint), galaxy.png and
#     expected.txt (the class PaperNet predicts for the picture, computed without hubble::Model)
#  3. examples/embed: classify model.h5 galaxy.png must print that class
# It also holds the example to its promise of fewer than 30 lines.
cmake_minimum_required(VERSION 3.20)
foreach(var SOURCE_DIR BINARY_DIR WORK_DIR CXX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit ${rc}):\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

function(build_project name source)
  step("configuring ${name}" ${CMAKE_COMMAND} -S ${source} -B ${WORK_DIR}/${name} -DCMAKE_BUILD_TYPE=Release
       -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
  step("building ${name}" ${CMAKE_COMMAND} --build ${WORK_DIR}/${name})
endfunction()

file(STRINGS ${SOURCE_DIR}/examples/embed/classify.cpp lines)
list(LENGTH lines count)
if(count GREATER_EQUAL 30)
  message(FATAL_ERROR "examples/embed/classify.cpp has ${count} lines; the README promises fewer than 30")
endif()

file(REMOVE_RECURSE ${WORK_DIR})
step("installing hubble" ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${WORK_DIR}/prefix)
build_project(fixture ${SOURCE_DIR}/tests/embed/fixture)
step("make_fixture" ${WORK_DIR}/fixture/make_fixture ${WORK_DIR}/data)
build_project(embed ${SOURCE_DIR}/examples/embed)

file(STRINGS ${WORK_DIR}/data/expected.txt expected)
step("classify" ${WORK_DIR}/embed/classify ${WORK_DIR}/data/model.h5 ${WORK_DIR}/data/galaxy.png)
message(STATUS "classify printed: ${step_output}")
string(FIND "${step_output}" "${expected} " at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "classify printed '${step_output}', expected the class '${expected}' first")
endif()

# A missing picture is a clear error, not a crash.
execute_process(COMMAND ${WORK_DIR}/embed/classify ${WORK_DIR}/data/model.h5 ${WORK_DIR}/data/missing.png
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "missing.png")
  message(FATAL_ERROR "classify on a missing picture: exit ${rc}, stderr '${err}' (expected exit 1 naming the file)")
endif()
message(STATUS "examples/embed (${count} lines) classified the picture as the network does: ${expected}")
