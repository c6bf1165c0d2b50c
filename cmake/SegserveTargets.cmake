# Helpers that give every segserve target the same flags, warnings and PCH.

# -pthread on every target: GoogleTest adds it to tests, and the torch precompiled header is
# only used by units compiled with the same macro set (_REENTRANT included).
set(SEGSERVE_WARNINGS -pthread -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(SEGSERVE_WERROR)
  list(APPEND SEGSERVE_WARNINGS -Werror)
endif()
# clang checks the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations on absl::Mutex
# (docs/THREADS.md, "Locks"); a violation fails the build even with SEGSERVE_WERROR=OFF, so
# CI (scripts/test.sh builds with clang) enforces them. GCC has no such analysis.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND SEGSERVE_WARNINGS -Wthread-safety -Werror=thread-safety)
endif()

function(segserve_target_options target)
  target_compile_options(${target} PRIVATE ${SEGSERVE_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  if(SEGSERVE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()

# segserve_library(NAME SOURCES... [TORCH]) -> static library segserve_<NAME>.
# TORCH links LibTorch privately and reuses the shared torch precompiled header.
function(segserve_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(segserve_${name} STATIC ${ARG_SOURCES})
  segserve_target_options(segserve_${name})
  target_link_libraries(segserve_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  if(ARG_TORCH)
    target_link_libraries(segserve_${name} PRIVATE segserve_torch)
    target_precompile_headers(segserve_${name} REUSE_FROM segserve_torch_pch)
  endif()
endfunction()

# The one torch precompiled header (~60 s, ~540 MB to build once); every torch target
# reuses it, so compile options of torch targets must match this one.
add_library(segserve_torch_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/torch_pch.cc)
segserve_target_options(segserve_torch_pch)
target_link_libraries(segserve_torch_pch PRIVATE segserve_torch)
target_precompile_headers(segserve_torch_pch PRIVATE <torch/torch.h>)

# segserve_test(NAME SOURCES... DEPS... [TORCH] [POSTGRES]) -> GoogleTest binary registered
# with ctest, one ctest entry per test. POSTGRES: the tests named Postgres* share the
# binary's private PostgreSQL (tests/testing/postgres_server.h), so they run as ONE ctest
# entry (NAME.Postgres): one PostgreSQL start per binary instead of one per test.
function(segserve_test name)
  cmake_parse_arguments(ARG "TORCH;POSTGRES" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  segserve_target_options(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(ARG_TORCH)
    target_link_libraries(${name} PRIVATE segserve_torch)
    target_precompile_headers(${name} REUSE_FROM segserve_torch_pch)
  endif()
  target_include_directories(${name} PRIVATE ${PROJECT_BINARY_DIR}/generated)
  if(ARG_POSTGRES)
    target_link_libraries(${name} PRIVATE segserve_testing_postgres)
    gtest_discover_tests(${name} TEST_PREFIX "${name}." TEST_FILTER "-Postgres*"
                         DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
    add_test(NAME ${name}.Postgres COMMAND ${name} --gtest_filter=Postgres*)
    set_tests_properties(${name}.Postgres PROPERTIES TIMEOUT 900)
  else()
    gtest_discover_tests(${name} TEST_PREFIX "${name}." DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
  endif()
endfunction()

# Paths tests need, as a header rather than -D flags so test targets keep the PCH's flags.
configure_file(${PROJECT_SOURCE_DIR}/cmake/test_paths.h.in ${PROJECT_BINARY_DIR}/generated/test_paths.h @ONLY)
