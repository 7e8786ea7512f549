// The one place the library's version is written; CMake parses these lines.
#pragma once

#define ANNULUS_VERSION_MAJOR 0
#define ANNULUS_VERSION_MINOR 1
#define ANNULUS_VERSION_PATCH 0

namespace annulus {
inline constexpr int version_major = ANNULUS_VERSION_MAJOR;
inline constexpr int version_minor = ANNULUS_VERSION_MINOR;
inline constexpr int version_patch = ANNULUS_VERSION_PATCH;
inline constexpr const char* version_string = "0.1.0";
}  // namespace annulus
