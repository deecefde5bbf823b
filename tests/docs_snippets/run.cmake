# Compiles every C++ block of the docs, and runs the ones that have a main(), so the docs cannot
# rot. Called by CTest (tests/CMakeLists.txt, test docs.snippets):
#   cmake -DSOURCE_DIR=<repo> -DWORK_DIR=<scratch> -DCXX=<compiler> -DDOCS="README.md;docs/..."
#         -P run.cmake
# DOCS entries are paths relative to SOURCE_DIR and may be globs (docs/learn/*.md).
# WORK_DIR is kept between runs, so only changed blocks are recompiled.
# The rules for blocks (```cpp, ```cpp nocompile) are in extract_snippets.cpp.
cmake_minimum_required(VERSION 3.20)
foreach(var SOURCE_DIR WORK_DIR CXX DOCS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
set(here ${CMAKE_CURRENT_LIST_DIR})
cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)

# 1. The extractor: plain C++, no dependencies; rebuilt when its source changes.
set(extractor ${WORK_DIR}/extract_snippets)
if(NOT EXISTS ${extractor} OR ${here}/extract_snippets.cpp IS_NEWER_THAN ${extractor})
  file(MAKE_DIRECTORY ${WORK_DIR})
  execute_process(COMMAND ${CXX} -std=c++20 -O1 ${here}/extract_snippets.cpp -o ${extractor}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building the snippet extractor failed:\n${out}")
  endif()
endif()

# 2. Extract the blocks of every listed Markdown file.
set(files)
foreach(pattern ${DOCS})
  file(GLOB matched RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/${pattern})
  if(NOT matched)
    message(FATAL_ERROR "run.cmake: no Markdown file matches '${pattern}'")
  endif()
  list(SORT matched)
  list(APPEND files ${matched})
endforeach()
execute_process(COMMAND ${extractor} ${WORK_DIR}/src ${SOURCE_DIR} ${files} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "extracting the code blocks failed (see the message above)")
endif()

# 3. Configure once (the project includes the manifest, so CMake re-configures by itself when
#    the list of blocks changes), then build every block; -k reports every broken block at once.
if(NOT EXISTS ${WORK_DIR}/build/CMakeCache.txt)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${here} -B ${WORK_DIR}/build -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release
                          -DCMAKE_CXX_COMPILER=${CXX} -DHUBBLE_SOURCE_DIR=${SOURCE_DIR} -DSNIPPET_DIR=${WORK_DIR}/src
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    file(REMOVE_RECURSE ${WORK_DIR}/build)
    message(FATAL_ERROR "configuring the snippet project failed:\n${out}")
  endif()
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build -j${jobs} -- -k
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "a C++ block of the docs does not compile (errors name the Markdown file and line):\n${out}")
endif()

# 4. Run every block that has a main(), each in its own empty folder.
file(STRINGS ${WORK_DIR}/src/run_list.txt runs)
set(failed)
foreach(entry ${runs})
  string(REPLACE " " ";" entry "${entry}")
  list(GET entry 0 name)
  list(GET entry 1 origin)
  set(dir ${WORK_DIR}/run/${name})
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir})
  execute_process(COMMAND ${WORK_DIR}/build/${name} WORKING_DIRECTORY ${dir} TIMEOUT 300
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(STATUS "ok    ${origin}")
  else()
    message("FAIL  ${origin} (exit ${rc}):\n${out}")
    list(APPEND failed ${origin})
  endif()
endforeach()
list(LENGTH runs total)
if(failed)
  message(FATAL_ERROR "${total} runnable C++ blocks, these failed: ${failed}")
endif()
message(STATUS "every C++ block compiles; ${total} with main() ran and exited 0")
