# Cross-compiling for 64-bit ARM (NEON) with Debian's g++-aarch64-linux-gnu;
# tests run under qemu-aarch64 (Debian's qemu-user). The header-only
# dependencies (Eigen, xsimd, Catch2) are the build machine's; libraries and
# the C library come from the aarch64 sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
find_program(ANNULUS_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(ANNULUS_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ANNULUS_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu)
endif()
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# Debian installs xsimd's package files under the build machine's multiarch
# directory, which a search rooted in the aarch64 sysroot does not visit.
if(EXISTS /usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/cmake/xsimd)
  set(xsimd_DIR /usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/cmake/xsimd)
endif()
