# Builds a standalone example project against this checkout (its CMakeLists falls back to
# add_subdirectory of the repository; find_package(hubble) is disabled so an installed copy
# elsewhere on the machine cannot be picked up by mistake) and runs one of its programs,
# which must exit 0.
#   cmake -DPROJECT_DIR=<example> -DWORK_DIR=<scratch> -DCXX=<compiler> -DPROGRAM=<name> -P run_project.cmake
# WORK_DIR is kept between runs, so an unchanged example is not rebuilt.
cmake_minimum_required(VERSION 3.20)
foreach(var PROJECT_DIR WORK_DIR CXX PROGRAM)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_project.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS ${WORK_DIR}/build/CMakeCache.txt)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${PROJECT_DIR} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
                          -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_DISABLE_FIND_PACKAGE_hubble=ON
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    file(REMOVE_RECURSE ${WORK_DIR}/build)
    message(FATAL_ERROR "configuring ${PROJECT_DIR} failed:\n${out}")
  endif()
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building ${PROJECT_DIR} failed:\n${out}")
endif()
execute_process(COMMAND ${WORK_DIR}/build/${PROGRAM} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc} (its output is above)")
endif()
