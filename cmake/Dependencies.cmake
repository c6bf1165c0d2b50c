# Every third-party package, all from Debian bookworm (scripts/install-deps.sh).
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
# libcrypto: SHA-256 and constant-time comparison (server/common/sha256).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# segctl's command line (libcli11-dev, header-only).
find_package(CLI11 CONFIG REQUIRED)
# OpenCV: only core/imgproc/imgcodecs are installed (the full libopencv-dev pulls ~60 more
# packages), and OpenCVConfig.cmake ships with the full one, so find the pieces directly.
find_path(OpenCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
set(OpenCV_LIBS)
foreach(component core imgproc imgcodecs)
  find_library(OpenCV_${component}_LIBRARY opencv_${component} REQUIRED)
  add_library(opencv::${component} UNKNOWN IMPORTED)
  set_target_properties(opencv::${component} PROPERTIES
    IMPORTED_LOCATION ${OpenCV_${component}_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${OpenCV_INCLUDE_DIR})
  list(APPEND OpenCV_LIBS opencv::${component})
endforeach()
find_package(Torch REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
if(SEGSERVE_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

# Torch's exported flags are for its own consumers; keep them off the interface so that
# only targets that link torch PRIVATE see them.
add_library(segserve_torch INTERFACE)
target_link_libraries(segserve_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(segserve_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
