// Shared by the fuzz targets: the input is written to a file in /dev/shm (the loaders map files),
// and only scholar::Error may escape a loader: anything else, a crash or a sanitizer report, is a
// finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "scholar/io/file.hpp"

namespace scholar::fuzz {

inline std::string input_file(const uint8_t* data, size_t size, const char* ext) {
  static const std::string path = "/dev/shm/scholar_fuzz_" + std::to_string(::getpid()) + ext;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace scholar::fuzz
