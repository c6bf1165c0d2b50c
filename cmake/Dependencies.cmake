# Every third-party package, all from Debian bookworm (scripts/install-deps.sh).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
# libcrypto: SHA-256 and constant-time comparison (server/common/sha256).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# zlib: CRC-32 of torch.save archive records (server/model/torch_zip).
find_package(ZLIB REQUIRED)
# Which LibTorch: Debian's 1.13 (CPU, what CI and the CPU image use) by default; any other
# LibTorch through -DTorch_DIR=<prefix>/share/cmake/Torch (a libtorch zip, or a PyTorch
# wheel's torch/share/cmake/Torch: the CUDA image and scripts/gpu-check.sh build this way).
find_package(Torch REQUIRED)
# LibTorch 2.x from about 2.10 needs C++20 in its own headers (c10 declares operator<=>);
# 1.13 is C++17. Every target uses one standard, so the shared torch PCH stays usable.
# Checked against Debian's 2.6 and 2.14 headers with scripts/torch-compile-check.py.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.0)
  set(CMAKE_CXX_STANDARD 20)
endif()
if(TORCH_CUDA_LIBRARIES)
  set(SEGSERVE_TORCH_CUDA ON)
else()
  set(SEGSERVE_TORCH_CUDA OFF)
endif()
message(STATUS "LibTorch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX}), CUDA: ${SEGSERVE_TORCH_CUDA}, "
               "C++${CMAKE_CXX_STANDARD}")
if(NOT SEGSERVE_CORE_ONLY)
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  find_package(prometheus-cpp CONFIG REQUIRED)
  find_package(SQLite3 REQUIRED)
  # libpq (libpq-dev): the PostgreSQL job store (server/postgres, --database).
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
  # PLplot (libplplot-dev): segctl's PNG figures (client/plot). Its drivers are plugins in
  # the package's driver directory, found at run time; pngcairo is plplot-driver-cairo.
  pkg_check_modules(PLPLOT REQUIRED IMPORTED_TARGET plplot)
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
  find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  # NIfTI-1/2 (libnifti2-dev, nifti_clib 3.0): the header structs, byte swapping and
  # quaternion math of server/data/nifti. Its NIFTIConfig.cmake also imports the nifti_tool
  # executables (package nifti-bin, not installed), so find the library directly.
  find_path(NIFTI_INCLUDE_DIR nifti2_io.h PATH_SUFFIXES nifti REQUIRED)
  find_library(NIFTI2_LIBRARY nifti2 REQUIRED)
  find_library(ZNZ_LIBRARY znz REQUIRED)
  add_library(nifti::nifti2 UNKNOWN IMPORTED)
  set_target_properties(nifti::nifti2 PROPERTIES
    IMPORTED_LOCATION ${NIFTI2_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${NIFTI_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES "${ZNZ_LIBRARY};ZLIB::ZLIB;m")
endif()
if(SEGSERVE_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

# Torch's exported flags are for its own consumers; keep them off the interface so that
# only targets that link torch PRIVATE see them.
add_library(segserve_torch INTERFACE)
target_link_libraries(segserve_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(segserve_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
