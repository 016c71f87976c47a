// Opening memory.dgm (src/memory/memory_index) from bytes written to a file. The file's checksum
// is recomputed over the fuzzer's bytes before writing (with the algorithm the index uses), so
// mutations get past the checksum to the header, FAISS and metadata readers. Checks that a file
// either opens or is refused as corrupt with a message naming it, and that an index that opened
// can be searched, saved and opened again with the same contents: what the index writes, it reads.

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "memory/memory_index.hpp"
#include "text/utf8.hpp"

namespace {

namespace fs = std::filesystem;
using namespace dagent::memory;
using dagent::fuzz::check;
using dagent::fuzz::check_utf8;

// The footer ends with u64 checksum | "DGMEMEND"; the checksum covers every byte before itself.
constexpr std::size_t k_unchecked = 16;

// memory_index.cpp's Checksum, for whole buffers: 8-byte words, the tail zero-padded, the length
// mixed in, then murmur3's finalizer.
std::uint64_t checksum(std::string_view bytes) {
  auto step = [](std::uint64_t state, std::uint64_t word) {
    return std::rotl(state ^ (word * 0x9e3779b97f4a7c15ULL), 31) * 0x87c37b91114253d5ULL;
  };
  std::uint64_t state = 0x243f6a8885a308d3ULL;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    state = step(state, word);
  }
  if (i < bytes.size()) {
    unsigned char last[8] = {};
    std::memcpy(last, bytes.data() + i, bytes.size() - i);
    std::uint64_t word;
    std::memcpy(&word, last, 8);
    state = step(state, word);
  }
  state ^= bytes.size();
  state = (state ^ (state >> 33)) * 0xff51afd7ed558ccdULL;
  state = (state ^ (state >> 33)) * 0xc4ceb9fe1a85ec53ULL;
  return state ^ (state >> 33);
}

const fs::path& scratch() { return dagent::fuzz::scratch_dir("memory"); }

bool same_entry(const Entry& a, const Entry& b) {
  return a.text == b.text && a.metadata == b.metadata && a.source == b.source && a.begin == b.begin &&
         a.end == b.end && a.deleted == b.deleted;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= k_unchecked) {
    const std::uint64_t sum = checksum(std::string_view(bytes).substr(0, bytes.size() - k_unchecked));
    std::memcpy(bytes.data() + bytes.size() - k_unchecked, &sum, 8);
  }
  const fs::path folder = scratch() / "memory";
  std::error_code ec;
  fs::remove_all(folder, ec);
  fs::create_directories(folder);
  const fs::path file = MemoryIndex::file_in(folder);
  {
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    check(out.good(), "cannot write the input file");
  }

  auto opened = MemoryIndex::open(folder);
  if (!opened) {
    check(opened.error().code == MemoryErrc::corrupt, "a file that does not open is not reported corrupt");
    check(opened.error().message.find(file.string()) != std::string::npos, "the error does not name the file");
    check_utf8(dagent::text::is_valid_utf8(opened.error().message), "the error is not UTF-8");
    return 0;
  }
  MemoryIndex& index = **opened;
  const std::size_t dim = index.dimension();
  std::vector<Entry> entries;
  std::size_t live = 0;
  for (std::int64_t id = 0;; ++id) {
    auto e = index.entry(id);
    if (!e) break;
    if (!e->deleted) ++live;
    entries.push_back(std::move(*e));
  }
  check(index.size() == live, "size() does not count the live entries");

  if (dim > 0 && dim <= 4096) {
    std::vector<float> query(dim, 0.0f);
    query[0] = 1.0f;
    auto hits = index.search(query, 3);
    check(hits.has_value(), "a search of an opened index failed");
    check(hits->size() <= 3 && hits->size() <= live, "too many hits");
    for (const auto& hit : *hits) {
      const auto stored = index.entry(hit.id);
      check(stored && !stored->deleted && !hit.entry.deleted && stored->text == hit.entry.text &&
                stored->metadata == hit.entry.metadata,
            "a hit that is not a live entry");
    }
  }

  // Saved again and reopened, the index holds the same entries: what it writes, it reads.
  auto saved = index.commit(dagent::memory::Change{});  // an empty change: a save of what is there
  check(saved.has_value(), "an opened index cannot be saved");
  const std::string model = index.model();
  opened->reset();
  auto again = MemoryIndex::open(folder);
  if (!again) std::fprintf(stderr, "%s\n", again.error().message.c_str());
  check(again.has_value(), "a saved index does not open");
  check((*again)->dimension() == dim && (*again)->model() == model && (*again)->size() == live,
        "the reopened index differs");
  for (std::size_t id = 0; id < entries.size(); ++id) {
    const auto e = (*again)->entry(static_cast<std::int64_t>(id));
    check(e && same_entry(*e, entries[id]), "an entry changed across save and open");
  }
  check(!(*again)->entry(static_cast<std::int64_t>(entries.size())), "the reopened index has more entries");
  return 0;
}
