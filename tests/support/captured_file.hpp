#pragma once
// A FILE* that writes into memory (open_memstream), for code that prints to a stream: a LiveView
// drawing as if stderr were a terminal, say. text() is what was written so far.

#include <cstdio>
#include <cstdlib>
#include <string>

namespace dagent::test {

struct Captured {
  char* data = nullptr;
  std::size_t size = 0;
  std::FILE* file = open_memstream(&data, &size);
  Captured() = default;
  Captured(const Captured&) = delete;
  Captured& operator=(const Captured&) = delete;
  ~Captured() {
    if (file) std::fclose(file);
    std::free(data);
  }
  std::string text() {
    std::fflush(file);
    return std::string(data, size);
  }
};

}  // namespace dagent::test
