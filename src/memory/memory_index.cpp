#include "memory/memory_index.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <omp.h>

#include <simdjson.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include "text/simdjson_boost.hpp"

// The saved file, in the machine's byte order (as FAISS writes its own section):
//   header    "DAGENTMEM\n" | u32 version | u32 kind (0 flat, 1 hnsw) | u64 dimension | u64 count
//             | u64 generation (version 2; version 1 files have none and read as generation 0)
//   faiss     faiss::write_index bytes (absent while the dimension is 0)
//   metadata  JSON lines: {"model","dimension","kind","count","source_hashes"}, then one entry a line
//   footer    u64 faiss bytes | u64 metadata bytes | u64 checksum of every byte before it | "DGMEMEND"
// Beside it, `memory.lock` (flock'ed by each read-modify-write) and, during a save, its temporary
// file `memory.dgm.tmp.<pid>.<n>`, flock'ed by its writer until renamed.

namespace dagent::memory {

struct MemoryIndex::Faiss {
  std::unique_ptr<faiss::Index> index;
};

namespace {

using idx_t = faiss::Index::idx_t;

constexpr std::string_view k_magic = "DAGENTMEM\n";
constexpr std::string_view k_end_magic = "DGMEMEND";
constexpr std::uint32_t k_version = 2;
constexpr std::size_t k_header_size_v1 = k_magic.size() + 4 + 4 + 8 + 8;
constexpr std::size_t k_header_size = k_header_size_v1 + 8;
constexpr std::string_view k_temporary_prefix = "memory.dgm.tmp.";
constexpr std::size_t k_checksum_at = 16;  // in the footer, after the two section sizes
constexpr std::size_t k_end_magic_at = k_checksum_at + 8;
constexpr std::size_t k_footer_size = k_end_magic_at + k_end_magic.size();
constexpr std::size_t k_unchecked_size = k_footer_size - k_checksum_at;
constexpr std::size_t k_read_size = std::size_t{1} << 20;
constexpr idx_t k_rebuild_batch = 4096;

std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

MemoryError io_error(std::string what, const std::filesystem::path& path, int error) {
  return memory_error(MemoryErrc::io_error, what + " " + quoted(path) + ": " + std::strerror(error));
}

MemoryError corrupt(const std::filesystem::path& path, std::string why) {
  return memory_error(MemoryErrc::corrupt, "the memory index " + quoted(path) + " is corrupt: " + std::move(why));
}

template <class T>
void put(unsigned char* out, T value) {
  std::memcpy(out, &value, sizeof value);
}

template <class T>
T get(const unsigned char* in) {
  T value;
  std::memcpy(&value, in, sizeof value);
  return value;
}

// A 64-bit checksum of a byte stream fed in pieces of any size. Each 8-byte word goes through
// steps that are each a bijection, so a change confined to one word always changes the result;
// the length is mixed in at the end, so a truncated stream does not match either.
class Checksum {
 public:
  void update(const void* data, std::size_t size) {
    if (size == 0) return;
    const auto* bytes = static_cast<const unsigned char*>(data);
    length_ += size;
    if (pending_size_ > 0) {
      const auto take = std::min(size, sizeof pending_ - pending_size_);
      std::memcpy(pending_ + pending_size_, bytes, take);
      pending_size_ += take;
      bytes += take;
      size -= take;
      if (pending_size_ < sizeof pending_) return;
      mix(get<std::uint64_t>(pending_));
      pending_size_ = 0;
    }
    for (; size >= 8; bytes += 8, size -= 8) mix(get<std::uint64_t>(bytes));
    std::memcpy(pending_, bytes, size);
    pending_size_ = size;
  }

  std::uint64_t finish() const {
    auto state = state_;
    if (pending_size_ > 0) {
      unsigned char last[8] = {};
      std::memcpy(last, pending_, pending_size_);
      state = step(state, get<std::uint64_t>(last));
    }
    // murmur3's finalizer, so that every input bit reaches every output bit
    state ^= length_;
    state = (state ^ (state >> 33)) * 0xff51afd7ed558ccdULL;
    state = (state ^ (state >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    return state ^ (state >> 33);
  }

 private:
  static std::uint64_t step(std::uint64_t state, std::uint64_t word) {
    return std::rotl(state ^ (word * 0x9e3779b97f4a7c15ULL), 31) * 0x87c37b91114253d5ULL;
  }
  void mix(std::uint64_t word) { state_ = step(state_, word); }

  std::uint64_t state_ = 0x243f6a8885a308d3ULL;
  std::uint64_t length_ = 0;
  unsigned char pending_[8] = {};
  std::size_t pending_size_ = 0;
};

// Writes to a FILE*, counting and checksumming every byte; FAISS writes through it too.
class FileSink final : public faiss::IOWriter {
 public:
  explicit FileSink(std::FILE* file) : file_(file) {}

  size_t operator()(const void* data, size_t size, size_t count) override {
    const auto written = std::fwrite(data, size, count, file_);
    if (written < count && error_ == 0) error_ = errno != 0 ? errno : EIO;
    checksum_.update(data, size * written);
    bytes_ += size * written;
    return written;
  }
  void write(std::string_view bytes) { (*this)(bytes.data(), 1, bytes.size()); }

  std::uint64_t bytes() const { return bytes_; }
  const Checksum& checksum() const { return checksum_; }
  int error() const { return error_; }

 private:
  std::FILE* file_;
  Checksum checksum_;
  std::uint64_t bytes_ = 0;
  int error_ = 0;
};

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string_view kind_name(config::IndexKind kind) { return kind == config::IndexKind::hnsw ? "hnsw" : "flat"; }

std::unique_ptr<faiss::Index> make_index(std::size_t dimension, const IndexOptions& options) {
  if (options.kind == config::IndexKind::hnsw) {
    auto index =
        std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(dimension), options.hnsw_m, faiss::METRIC_INNER_PRODUCT);
    index->hnsw.efConstruction = options.hnsw_ef_construction;
    index->hnsw.efSearch = options.hnsw_ef_search;
    return index;
  }
  return std::make_unique<faiss::IndexFlatIP>(static_cast<idx_t>(dimension));
}

std::optional<config::IndexKind> kind_of(const faiss::Index& index) {
  if (index.metric_type != faiss::METRIC_INNER_PRODUCT) return std::nullopt;
  if (dynamic_cast<const faiss::IndexHNSWFlat*>(&index)) return config::IndexKind::hnsw;
  if (dynamic_cast<const faiss::IndexFlat*>(&index)) return config::IndexKind::flat;
  return std::nullopt;
}

// The same vectors in a new index of `options.kind`.
std::unique_ptr<faiss::Index> rebuild(const faiss::Index& from, const IndexOptions& options) {
  auto to = make_index(static_cast<std::size_t>(from.d), options);
  std::vector<float> rows;
  for (idx_t first = 0; first < from.ntotal; first += k_rebuild_batch) {
    const auto count = std::min(k_rebuild_batch, from.ntotal - first);
    rows.resize(static_cast<std::size_t>(count * from.d));
    from.reconstruct_n(first, count, rows.data());
    to->add(count, rows.data());
  }
  return to;
}

// Copies `vectors` scaled to unit length; a zero (or non-finite) vector has no direction to keep.
MemoryResult<std::vector<float>> normalized(std::span<const float> vectors, std::size_t dimension) {
  std::vector<float> out(vectors.begin(), vectors.end());
  for (std::size_t row = 0; row * dimension < out.size(); ++row) {
    const auto values = std::span(out).subspan(row * dimension, dimension);
    double sum = 0;
    for (const float v : values) sum += static_cast<double>(v) * v;
    const auto norm = std::sqrt(sum);
    if (!(norm > 0) || !std::isfinite(norm)) {
      return memory_error(MemoryErrc::invalid_argument,
                          "vector " + std::to_string(row) + " is zero or not finite and cannot be normalized");
    }
    for (float& v : values) v = static_cast<float>(v / norm);
  }
  return out;
}

boost::json::object entry_json(const Entry& e) {
  return {{"text", e.text}, {"metadata", e.metadata}, {"source", e.source},
          {"begin", e.begin}, {"end", e.end},           {"deleted", e.deleted}};
}

std::optional<Entry> entry_from_json(boost::json::value& line) {
  auto* object = line.if_object();
  if (!object) return std::nullopt;
  const auto field = [&](std::string_view name) { return object->if_contains(name); };
  auto* metadata = field("metadata");
  const auto* text = field("text");
  const auto* source = field("source");
  const auto* begin = field("begin");
  const auto* end = field("end");
  const auto* deleted = field("deleted");
  if (!text || !text->is_string() || !metadata || !metadata->is_object() || !source || !source->is_string() ||
      !begin || !begin->is_int64() || !end || !end->is_int64() || !deleted || !deleted->is_bool()) {
    return std::nullopt;
  }
  return Entry{std::string(text->get_string()), std::move(metadata->get_object()), std::string(source->get_string()),
               begin->get_int64(), end->get_int64(), deleted->get_bool()};
}

// What save() writes, borrowed from the index under its shared lock.
struct Contents {
  config::IndexKind kind;
  std::size_t dimension;
  std::uint64_t generation;
  const faiss::Index* index;  ///< nullptr while the dimension is 0
  const std::string& model;
  const std::deque<Entry>& entries;
  const std::map<std::string, std::string, std::less<>>& source_hashes;
};

// Writes the whole file (see the layout at the top) through `sink`; FAISS throws when a write fails.
void write_contents(FileSink& sink, const Contents& contents) {
  unsigned char header[k_header_size];
  std::memcpy(header, k_magic.data(), k_magic.size());
  auto* fields = header + k_magic.size();
  put<std::uint32_t>(fields, k_version);
  put<std::uint32_t>(fields + 4, contents.kind == config::IndexKind::hnsw ? 1 : 0);
  put<std::uint64_t>(fields + 8, contents.dimension);
  put<std::uint64_t>(fields + 16, contents.entries.size());
  put<std::uint64_t>(fields + 24, contents.generation);
  sink(header, 1, sizeof header);
  if (contents.index) faiss::write_index(contents.index, &sink);
  const auto faiss_bytes = sink.bytes() - k_header_size;

  boost::json::object hashes;
  for (const auto& [source, hash] : contents.source_hashes) hashes[source] = hash;
  const boost::json::object summary{{"model", contents.model},
                                    {"dimension", contents.dimension},
                                    {"kind", kind_name(contents.kind)},
                                    {"count", contents.entries.size()},
                                    {"source_hashes", std::move(hashes)}};
  sink.write(boost::json::serialize(summary));
  sink.write("\n");
  for (const auto& e : contents.entries) {
    sink.write(boost::json::serialize(entry_json(e)));
    sink.write("\n");
  }
  const auto metadata_bytes = sink.bytes() - k_header_size - faiss_bytes;

  unsigned char footer[k_footer_size];
  put<std::uint64_t>(footer, faiss_bytes);
  put<std::uint64_t>(footer + 8, metadata_bytes);
  sink(footer, 1, k_checksum_at);
  put<std::uint64_t>(footer + k_checksum_at, sink.checksum().finish());
  std::memcpy(footer + k_end_magic_at, k_end_magic.data(), k_end_magic.size());
  sink(footer + k_checksum_at, 1, k_unchecked_size);
}

// What a saved file holds, read and checked before it becomes a MemoryIndex.
struct Saved {
  std::size_t header_size = k_header_size;
  std::uint64_t generation = 0;
  config::IndexKind kind = config::IndexKind::flat;
  std::size_t dimension = 0;
  std::uint64_t count = 0;
  std::unique_ptr<faiss::Index> index;
  std::string model;
  std::deque<Entry> entries;
  std::size_t deleted = 0;
  std::map<std::string, std::string, std::less<>> source_hashes;
};

struct Footer {
  std::uint64_t faiss_bytes = 0;
  std::uint64_t metadata_bytes = 0;
};

// Reads exactly `size` bytes; a short read is corruption (the file ended) or an I/O error.
MemoryResult<void> read_exactly(std::FILE* file, void* out, std::size_t size, const std::filesystem::path& path) {
  if (std::fread(out, 1, size, file) == size) return {};
  if (std::ferror(file)) return io_error("cannot read", path, errno != 0 ? errno : EIO);
  return corrupt(path, "it ends early");
}

MemoryResult<void> seek(std::FILE* file, std::uint64_t offset, const std::filesystem::path& path) {
  if (::fseeko(file, static_cast<off_t>(offset), SEEK_SET) != 0) return io_error("cannot seek in", path, errno);
  return {};
}

// Checks the footer and the checksum of the whole file, streaming it, before anything is parsed:
// FAISS trusts the sizes it reads and may abort or allocate wildly on garbage.
MemoryResult<Footer> verify(std::FILE* file, std::size_t header_size, const std::filesystem::path& path) {
  struct stat status {};
  if (::fstat(::fileno(file), &status) != 0) return io_error("cannot stat", path, errno);
  const auto size = static_cast<std::uint64_t>(status.st_size);
  if (size < header_size + k_footer_size) return corrupt(path, "it holds only " + std::to_string(size) + " bytes");

  unsigned char footer[k_footer_size];
  if (auto r = seek(file, size - k_footer_size, path); !r) return r.error();
  if (auto r = read_exactly(file, footer, k_footer_size, path); !r) return r.error();
  if (std::string_view(reinterpret_cast<const char*>(footer) + k_end_magic_at, k_end_magic.size()) != k_end_magic) {
    return corrupt(path, "its end marker is missing (truncated or not a memory index)");
  }
  const Footer sections{get<std::uint64_t>(footer), get<std::uint64_t>(footer + 8)};
  const auto body = size - header_size - k_footer_size;
  if (sections.faiss_bytes > body || sections.metadata_bytes != body - sections.faiss_bytes) {
    return corrupt(path, "its section sizes do not add up to its size");
  }

  Checksum checksum;
  std::vector<unsigned char> buffer(k_read_size);
  if (auto r = seek(file, 0, path); !r) return r.error();
  for (std::uint64_t left = size - k_unchecked_size; left > 0;) {
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
    if (auto r = read_exactly(file, buffer.data(), take, path); !r) return r.error();
    checksum.update(buffer.data(), take);
    left -= take;
  }
  if (checksum.finish() != get<std::uint64_t>(footer + k_checksum_at)) return corrupt(path, "its checksum does not match");
  return sections;
}

// Its fields are trusted only once verify() has checked the checksum.
MemoryResult<void> read_header(std::FILE* file, Saved& saved, const std::filesystem::path& path) {
  unsigned char header[k_header_size];
  if (auto r = seek(file, 0, path); !r) return r.error();
  if (auto r = read_exactly(file, header, k_header_size_v1, path); !r) return r.error();
  if (std::string_view(reinterpret_cast<const char*>(header), k_magic.size()) != k_magic) {
    return corrupt(path, "it does not start with the memory index marker");
  }
  const auto* fields = header + k_magic.size();
  const auto version = get<std::uint32_t>(fields);
  if (version != 1 && version != k_version) return corrupt(path, "unsupported version " + std::to_string(version));
  saved.header_size = version == 1 ? k_header_size_v1 : k_header_size;
  if (version != 1) {
    if (auto r = read_exactly(file, header + k_header_size_v1, k_header_size - k_header_size_v1, path); !r) {
      return r.error();
    }
    saved.generation = get<std::uint64_t>(fields + 24);
  }
  const auto kind = get<std::uint32_t>(fields + 4);
  if (kind > 1) return corrupt(path, "unknown index kind " + std::to_string(kind));
  saved.kind = kind == 1 ? config::IndexKind::hnsw : config::IndexKind::flat;
  saved.dimension = get<std::uint64_t>(fields + 8);
  saved.count = get<std::uint64_t>(fields + 16);
  if (saved.dimension > INT_MAX || saved.count > static_cast<std::uint64_t>(INT64_MAX)) {
    return corrupt(path, "its header holds an impossible dimension or count");
  }
  return {};
}

// Walks FAISS's serialization of the two index kinds dagent writes (IndexFlatIP, and
// IndexHNSWFlat over one) without allocating: FAISS sizes its vectors from the length fields of
// the bytes before reading them, so a crafted file (the checksum catches accidents, not intent)
// could make it allocate terabytes, and an invalid metric would be loaded into an enum. Every
// length must fit in what is left of the section, and the section must end where the index does.
class FaissLayout {
 public:
  explicit FaissLayout(std::span<const std::uint8_t> bytes) : left_(bytes) {}

  // Why the bytes are not an index of `kind` with `dimension` and `count`, or nothing.
  std::optional<std::string> check(config::IndexKind kind, std::uint64_t dimension, std::uint64_t count) {
    if (kind == config::IndexKind::hnsw) {
      if (auto p = header("IHNf", dimension, count)) return p;
      // assign_probas (double), cum_nneighbor_per_level (int), levels (int), offsets (size_t),
      // neighbors (int32), then entry_point, max_level, efConstruction, efSearch, upper_beam.
      for (const std::size_t element : {8u, 4u, 4u, 8u, 4u}) {
        if (!vector(element)) return "an HNSW graph array is longer than the file";
      }
      if (!skip(5 * 4)) return "the HNSW graph is truncated";
    }
    if (auto p = header("IxFI", dimension, count)) return p;
    std::uint64_t floats = 0;
    if (!take(floats) || floats / dimension != count || floats % dimension != 0 || !skip_elements(floats, 4)) {
      return "its vectors do not match its dimension and count";
    }
    if (!left_.empty()) return "it has bytes after the index";
    return std::nullopt;
  }

 private:
  std::optional<std::string> header(std::string_view fourcc, std::uint64_t dimension, std::uint64_t count) {
    std::int32_t d = 0, metric = 0;
    std::int64_t ntotal = 0, unused = 0;
    std::uint8_t trained = 0;
    if (left_.size() < 4 || std::memcmp(left_.data(), fourcc.data(), 4) != 0) {
      return "it is not a FAISS index of the expected type";
    }
    left_ = left_.subspan(4);
    if (!take(d) || !take(ntotal) || !take(unused) || !take(unused) || !take(trained) || !take(metric)) {
      return "its FAISS header is truncated";
    }
    if (static_cast<std::uint64_t>(d) != dimension || static_cast<std::uint64_t>(ntotal) != count || d <= 0 ||
        ntotal < 0) {
      return "its FAISS header disagrees with the file's header";
    }
    if (metric != faiss::METRIC_INNER_PRODUCT) return "its FAISS index uses another metric";
    return std::nullopt;
  }
  template <class T>
  bool take(T& out) {
    if (left_.size() < sizeof(T)) return false;
    std::memcpy(&out, left_.data(), sizeof(T));
    left_ = left_.subspan(sizeof(T));
    return true;
  }
  bool skip(std::size_t n) {
    if (left_.size() < n) return false;
    left_ = left_.subspan(n);
    return true;
  }
  bool skip_elements(std::uint64_t n, std::size_t element) {
    return n <= left_.size() / element && skip(static_cast<std::size_t>(n) * element);
  }
  bool vector(std::size_t element) {
    std::uint64_t n = 0;
    return take(n) && skip_elements(n, element);
  }
  std::span<const std::uint8_t> left_;
};

// Why the graph FAISS read cannot be searched safely (a search follows neighbor ids and level
// ranges without checking them), or nothing.
std::optional<std::string> graph_problem(const faiss::HNSW& graph, idx_t ntotal) {
  const auto n = static_cast<std::size_t>(ntotal);
  const auto& cum = graph.cum_nneighbor_per_level;
  if (graph.levels.size() != n || graph.offsets.size() != n + 1 || graph.offsets.front() != 0 ||
      graph.offsets.back() != graph.neighbors.size()) {
    return "its arrays disagree with the vector count";
  }
  if (cum.empty() || cum.front() != 0) return "its neighbor counts per level are invalid";
  for (std::size_t l = 1; l < cum.size(); ++l)
    if (cum[l] < cum[l - 1]) return "its neighbor counts per level are invalid";
  int top = -1;
  for (std::size_t i = 0; i < n; ++i) {
    const int level = graph.levels[i];  // a node's level plus one
    if (level < 1 || static_cast<std::size_t>(level) >= cum.size() ||
        graph.offsets[i + 1] < graph.offsets[i] ||
        graph.offsets[i + 1] - graph.offsets[i] != static_cast<std::size_t>(cum[static_cast<std::size_t>(level)])) {
      return "node " + std::to_string(i) + " has an invalid level or neighbor range";
    }
    top = std::max(top, level - 1);
  }
  for (const auto neighbor : graph.neighbors)
    if (neighbor < -1 || neighbor >= static_cast<faiss::HNSW::storage_idx_t>(ntotal)) return "a neighbor id is out of range";
  if (graph.max_level != top) return "its top level disagrees with its nodes";
  if (n == 0 ? graph.entry_point != -1
             : graph.entry_point < 0 || static_cast<std::size_t>(graph.entry_point) >= n ||
                   graph.levels[static_cast<std::size_t>(graph.entry_point)] - 1 != top) {
    return "its entry point is invalid";
  }
  return std::nullopt;
}

MemoryResult<void> read_faiss(std::FILE* file, std::uint64_t bytes, Saved& saved, const std::filesystem::path& path) {
  if (auto r = seek(file, saved.header_size, path); !r) return r.error();
  if (bytes == 0) {
    if (saved.dimension != 0 || saved.count != 0) return corrupt(path, "its FAISS section is missing");
    return {};
  }
  if (saved.dimension == 0) return corrupt(path, "its header gives dimension 0 but it has a FAISS section");
  faiss::VectorIOReader reader;
  try {
    reader.data.resize(static_cast<std::size_t>(bytes));  // bytes fit in the file: verify() checked the sizes
  } catch (const std::bad_alloc&) {
    return corrupt(path, "its FAISS section is too large to read");
  }
  if (auto r = read_exactly(file, reader.data.data(), reader.data.size(), path); !r) return r.error();
  if (auto problem = FaissLayout(reader.data).check(saved.kind, saved.dimension, saved.count)) {
    return corrupt(path, "its FAISS section is invalid: " + *problem);
  }
  try {
    saved.index.reset(faiss::read_index(&reader));
  } catch (const std::exception& e) {  // faiss::FaissException, or bad_alloc
    return corrupt(path, std::string("FAISS cannot read its index: ") + e.what());
  }
  if (reader.rp != reader.data.size()) return corrupt(path, "its FAISS section has the wrong length");
  const auto& index = *saved.index;
  if (kind_of(index) != saved.kind) return corrupt(path, "its FAISS index is not of the kind its header names");
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSWFlat*>(&index)) {
    if (auto problem = graph_problem(hnsw->hnsw, hnsw->ntotal)) return corrupt(path, "its HNSW graph is invalid: " + *problem);
  }
  if (static_cast<std::size_t>(index.d) != saved.dimension) {
    return corrupt(path, "its FAISS index has dimension " + std::to_string(index.d) + ", its header " +
                             std::to_string(saved.dimension));
  }
  if (static_cast<std::uint64_t>(index.ntotal) != saved.count) {
    return corrupt(path, "its FAISS index holds " + std::to_string(index.ntotal) + " vectors, its header " +
                             std::to_string(saved.count));
  }
  return {};
}

// Takes the first metadata line: the model, source hashes and a copy of the header's fields.
MemoryResult<void> read_summary(const boost::json::value& line, Saved& saved, const std::filesystem::path& path) {
  const auto* object = line.if_object();
  const auto* model = object ? object->if_contains("model") : nullptr;
  const auto* dimension = object ? object->if_contains("dimension") : nullptr;
  const auto* kind = object ? object->if_contains("kind") : nullptr;
  const auto* count = object ? object->if_contains("count") : nullptr;
  const auto* hashes = object ? object->if_contains("source_hashes") : nullptr;
  if (!model || !model->is_string() || !dimension || !dimension->is_int64() || !kind || !kind->is_string() || !count ||
      !count->is_int64() || !hashes || !hashes->is_object()) {
    return corrupt(path, "its metadata summary is malformed");
  }
  if (dimension->get_int64() != static_cast<std::int64_t>(saved.dimension) || kind->get_string() != kind_name(saved.kind) ||
      count->get_int64() != static_cast<std::int64_t>(saved.count)) {
    return corrupt(path, "its metadata disagrees with its header");
  }
  saved.model = std::string(model->get_string());
  for (const auto& [source, hash] : hashes->get_object()) {
    if (!hash.is_string()) return corrupt(path, "a source hash is not a string");
    saved.source_hashes.emplace(std::string(source), std::string(hash.get_string()));
  }
  return {};
}


// One metadata line. simdjson reads doubles exactly, where Boost 1.81's parser can be a unit in
// the last place off (metadata must read back as it was added); a line holding bytes that are
// not UTF-8 (texts stored as their files had them) goes to Boost.JSON, which lets them through.
boost::json::value parse_line(simdjson::dom::parser& parser, const std::string& line, boost::system::error_code& ec) {
  simdjson::dom::element root;
  const auto error = parser.parse(line.data(), line.size()).get(root);
  if (error == simdjson::SUCCESS) return text::to_boost_json(root);
  if (error != simdjson::UTF8_ERROR) {
    ec = boost::json::error::syntax;
    return nullptr;
  }
  boost::json::parse_options options;
  options.allow_invalid_utf8 = true;
  options.max_depth = k_max_metadata_depth + 1;  // an entry's line wraps its metadata in one object
  return boost::json::parse(line, ec, {}, options);
}

// Reads the metadata lines in 1 MiB pieces, so only one line is held beside the entries.
MemoryResult<void> read_metadata(std::FILE* file, std::uint64_t bytes, Saved& saved, const std::filesystem::path& path) {
  simdjson::dom::parser parser;
  std::vector<char> buffer(k_read_size);
  std::string line;
  std::size_t line_number = 0;
  const auto take_line = [&]() -> MemoryResult<void> {
    boost::system::error_code ec;
    auto value = parse_line(parser, line, ec);
    if (ec) return corrupt(path, "metadata line " + std::to_string(line_number + 1) + " is not JSON: " + ec.message());
    if (line_number == 0) return read_summary(value, saved, path);
    if (saved.entries.size() == saved.count) return corrupt(path, "its metadata has more entries than its header");
    auto entry = entry_from_json(value);
    if (!entry) return corrupt(path, "metadata line " + std::to_string(line_number + 1) + " is not an entry");
    if (entry->deleted) ++saved.deleted;
    saved.entries.push_back(std::move(*entry));
    return {};
  };
  for (std::uint64_t left = bytes; left > 0;) {
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
    if (auto r = read_exactly(file, buffer.data(), take, path); !r) return r.error();
    left -= take;
    for (std::string_view piece(buffer.data(), take); !piece.empty();) {
      const auto newline = piece.find('\n');
      line.append(piece.substr(0, newline));
      if (newline == std::string_view::npos) break;
      if (auto r = take_line(); !r) return r.error();
      line.clear();
      ++line_number;
      piece.remove_prefix(newline + 1);
    }
  }
  if (!line.empty() || line_number != saved.count + 1) {
    return corrupt(path, "its metadata holds " + std::to_string(line_number) + " lines for " +
                             std::to_string(saved.count) + " entries");
  }
  return {};
}

MemoryResult<Saved> read_saved(std::FILE* file, const std::filesystem::path& path) {
  Saved saved;
  if (auto r = read_header(file, saved, path); !r) return r.error();
  auto sections = verify(file, saved.header_size, path);
  if (!sections) return sections.error();
  if (auto r = read_faiss(file, sections->faiss_bytes, saved, path); !r) return r.error();
  if (auto r = read_metadata(file, sections->metadata_bytes, saved, path); !r) return r.error();
  return saved;
}

// The identity of the file open as `file`: what the inode says, and the generation its header
// counts (a rename can bring back an inode number, and sizes and coarse mtimes can repeat).
MemoryResult<MemoryIndex::FileIdentity> identity_of(std::FILE* file, const std::filesystem::path& path) {
  struct stat status {};
  if (::fstat(::fileno(file), &status) != 0) return io_error("cannot stat", path, errno);
  MemoryIndex::FileIdentity identity;
  identity.exists = true;
  identity.device = static_cast<std::uint64_t>(status.st_dev);
  identity.inode = static_cast<std::uint64_t>(status.st_ino);
  identity.size = static_cast<std::int64_t>(status.st_size);
  identity.mtime_ns = static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec;
  unsigned char header[k_header_size];
  if (::pread(::fileno(file), header, sizeof header, 0) == static_cast<ssize_t>(sizeof header) &&
      std::string_view(reinterpret_cast<const char*>(header), k_magic.size()) == k_magic &&
      get<std::uint32_t>(header + k_magic.size()) == k_version) {
    identity.generation = get<std::uint64_t>(header + k_magic.size() + 24);
  }
  return identity;
}

// An open file with an advisory lock, released when closed. flock locks belong to the open file
// description, so two opens lock each other out even in one process, and a child process does not
// inherit them (O_CLOEXEC).
class LockedFile {
 public:
  LockedFile() = default;
  explicit LockedFile(int fd) : fd_(fd) {}
  LockedFile(LockedFile&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  LockedFile& operator=(LockedFile&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~LockedFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// Takes the folder's lock, polling so that waiting can end: flock itself waits without a limit.
MemoryResult<LockedFile> lock_folder(const std::filesystem::path& folder, std::chrono::milliseconds timeout) {
  const auto path = MemoryIndex::lock_file_in(folder);
  LockedFile lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666));
  if (lock.fd() < 0) return io_error("cannot open the lock file", path, errno);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (::flock(lock.fd(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return io_error("cannot lock", path, errno);
    if (std::chrono::steady_clock::now() >= deadline) {
      return memory_error(MemoryErrc::io_error,
                          "timed out after " + std::to_string(timeout.count() / 1000.0).substr(0, 6) +
                              " s waiting for the lock " + quoted(path) +
                              ", held by another process writing this memory (an ingest or a run)");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return lock;
}

// A temporary file for a save, locked by its writer until renamed or removed: cleanup in another
// process removes only temporary files whose lock it can take.
MemoryResult<std::pair<LockedFile, std::filesystem::path>> create_temporary(const std::filesystem::path& folder) {
  static std::atomic<unsigned> counter = 0;
  for (;;) {
    auto path = folder / (std::string(k_temporary_prefix) + std::to_string(::getpid()) + "." + std::to_string(counter++));
    LockedFile file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (file.fd() < 0) {
      if (errno == EEXIST) continue;  // left by a dead process that had this pid
      return io_error("cannot create", path, errno);
    }
    int locked;
    while ((locked = ::flock(file.fd(), LOCK_EX)) != 0 && errno == EINTR) {
    }
    if (locked != 0) return io_error("cannot lock", path, errno);
    // A cleanup may have taken the lock between create and flock and removed the file.
    struct stat status {};
    if (::fstat(file.fd(), &status) != 0) return io_error("cannot stat", path, errno);
    if (status.st_nlink > 0) return std::pair{std::move(file), std::move(path)};
  }
}

// A killed save leaves its temporary file behind; it never became the index, so it goes. A save
// in progress (its writer holds the file's lock) is left alone.
void remove_leftovers(const std::filesystem::path& folder) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->path().filename().string().starts_with(k_temporary_prefix)) continue;
    const LockedFile file(::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (file.fd() < 0 || ::flock(file.fd(), LOCK_EX | LOCK_NB) != 0) continue;
    std::error_code ignored;
    std::filesystem::remove(it->path(), ignored);
  }
}

MemoryResult<void> sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open folder", folder, errno);
  const int synced = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (synced != 0) return io_error("cannot fsync folder", folder, error);
  return {};
}

// The dotted path of the first value nested deeper than the limit, or holding a non-finite number.
struct Unstorable {
  std::string where;
  bool too_deep = false;
};

std::optional<Unstorable> find_unstorable(const boost::json::value& value, int depth) {
  const auto inside = [](std::string key, Unstorable found) {
    found.where = found.where.empty() ? std::move(key) : key + "." + found.where;
    return found;
  };
  if (const auto* object = value.if_object()) {
    if (depth > k_max_metadata_depth) return Unstorable{"", true};
    for (const auto& [key, item] : *object) {
      if (auto found = find_unstorable(item, depth + 1)) return inside(std::string(key), std::move(*found));
    }
  } else if (const auto* array = value.if_array()) {
    if (depth > k_max_metadata_depth) return Unstorable{"", true};
    for (std::size_t i = 0; i < array->size(); ++i) {
      if (auto found = find_unstorable((*array)[i], depth + 1)) return inside(std::to_string(i), std::move(*found));
    }
  } else if (const auto* number = value.if_double(); number && !std::isfinite(*number)) {
    return Unstorable{"", false};  // JSON has no NaN or infinity: it would read back as null
  }
  return std::nullopt;
}

MemoryError changing_model(const std::filesystem::path& path, const std::string& saved, const std::string& configured) {
  return memory_error(MemoryErrc::model_mismatch,
                      "the memory index " + quoted(path) + " was built with the embedding model '" + saved +
                          "', but llm.embedding_model is '" + configured +
                          "': vectors of two models cannot be compared. Use '" + saved +
                          "', another memory.path for '" + configured + "', or remove " + quoted(path.parent_path()) +
                          " and ingest again");
}

}  // namespace

MemoryResult<void> check_storable(const boost::json::object& metadata) {
  std::optional<Unstorable> found;
  for (auto it = metadata.begin(); !found && it != metadata.end(); ++it) {
    found = find_unstorable(it->value(), 2);
    if (found) found->where = found->where.empty() ? std::string(it->key()) : std::string(it->key()) + "." + found->where;
  }
  if (!found) return {};
  if (found->too_deep) {
    return memory_error(MemoryErrc::invalid_argument,
                        "metadata is nested more than " + std::to_string(k_max_metadata_depth) +
                            " levels deep (at 'metadata." + found->where + "'); the memory stores at most " +
                            std::to_string(k_max_metadata_depth));
  }
  return memory_error(MemoryErrc::invalid_argument,
                      "metadata 'metadata." + found->where + "' is a number that is not finite, which JSON cannot hold");
}

std::filesystem::path MemoryIndex::file_in(const std::filesystem::path& folder) { return folder / "memory.dgm"; }
std::filesystem::path MemoryIndex::lock_file_in(const std::filesystem::path& folder) { return folder / "memory.lock"; }

MemoryIndex::MemoryIndex(std::filesystem::path folder, IndexOptions options)
    : folder_(std::move(folder)), options_(std::move(options)) {}

MemoryIndex::~MemoryIndex() = default;

MemoryResult<std::unique_ptr<MemoryIndex>> MemoryIndex::open(std::filesystem::path folder, IndexOptions options) {
  std::unique_ptr<MemoryIndex> index(new MemoryIndex(std::move(folder), std::move(options)));
  remove_leftovers(index->folder_);
  const std::scoped_lock one_writer(index->write_mutex_);
  if (auto loaded = index->reload_if_changed(); !loaded) return loaded.error();
  return index;
}

MemoryResult<void> MemoryIndex::reload_if_changed() {
  const auto path = file_in(folder_);
  const File file(std::fopen(path.c_str(), "rbe"));
  if (!file) {
    if (errno != ENOENT) return io_error("cannot open", path, errno);
    if (loaded_ && !loaded_->exists) return {};
    // Never saved, or the folder was removed: what is on disk is an empty index.
    std::unique_lock lock(mutex_);
    faiss_.reset();
    dimension_ = 0;
    model_.clear();
    entries_.clear();
    deleted_ = 0;
    source_hashes_.clear();
    loaded_ = FileIdentity{};
    return {};
  }
  auto identity = identity_of(file.get(), path);
  if (!identity) return identity.error();
  if (loaded_ == *identity) return {};
  auto saved = read_saved(file.get(), path);
  if (!saved) return saved.error();
  if (!options_.model.empty() && !saved->model.empty() && saved->model != options_.model) {
    return changing_model(path, saved->model, options_.model);
  }
  if (saved->index) {
    if (saved->kind != options_.kind) saved->index = rebuild(*saved->index, options_);
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(saved->index.get())) {
      hnsw->hnsw.efConstruction = options_.hnsw_ef_construction;
      hnsw->hnsw.efSearch = options_.hnsw_ef_search;
    }
  }
  // A version 1 file has no generation; counting on from 0 makes our save differ from it anyway.
  identity->generation = std::max(identity->generation, saved->generation);
  std::unique_lock lock(mutex_);
  dimension_ = saved->dimension;
  model_ = std::move(saved->model);
  entries_ = std::move(saved->entries);
  deleted_ = saved->deleted;
  source_hashes_ = std::move(saved->source_hashes);
  if (saved->index) {
    faiss_ = std::make_unique<Faiss>(Faiss{std::move(saved->index)});
  } else {
    faiss_.reset();
  }
  loaded_ = *identity;
  return {};
}

MemoryResult<void> MemoryIndex::refresh() {
  const std::unique_lock one_writer(write_mutex_, std::try_to_lock);
  if (!one_writer.owns_lock()) return {};
  try {
    return reload_if_changed();
  } catch (const std::exception& e) {  // FAISS, or bad_alloc
    return memory_error(MemoryErrc::io_error, "reading the memory index " + quoted(file_in(folder_)) + " failed: " + e.what());
  }
}

struct MemoryIndex::Queued {
  Change change;
  std::optional<MemoryResult<Committed>> result;  ///< set, under write_mutex_, by the commit that took it
};

std::size_t MemoryIndex::queued() const {
  const std::scoped_lock queue(queue_mutex_);
  return queued_.size();
}

MemoryResult<Committed> MemoryIndex::commit(Change change) {
  auto mine = std::make_shared<Queued>(Queued{std::move(change), std::nullopt});
  {
    const std::scoped_lock queue(queue_mutex_);
    queued_.push_back(mine);
  }
  const std::scoped_lock one_writer(write_mutex_);
  if (mine->result) return std::move(*mine->result);  // a commit that ran while this one waited took it
  // Taken once the folder lock is held: every change that arrived while this commit waited for
  // it goes into the same save.
  std::vector<std::shared_ptr<Queued>> batch;
  const auto take_queued = [&] {
    const std::scoped_lock queue(queue_mutex_);
    batch.swap(queued_);
  };
  const auto fail_all = [&](const MemoryError& error) {
    if (batch.empty()) take_queued();
    for (auto& q : batch) q->result = error;
    return std::move(*mine->result);
  };
  std::error_code ec;
  std::filesystem::create_directories(folder_, ec);
  if (ec) return fail_all(io_error("cannot create folder", folder_, ec.value()));
  auto lock = lock_folder(folder_, options_.lock_timeout);
  if (!lock) return fail_all(lock.error());
  try {
    if (auto loaded = reload_if_changed(); !loaded) return fail_all(loaded.error());
    take_queued();
    bool changed = false;
    for (auto& q : batch) {  // in arrival order; a refused change leaves no trace and fails alone
      q->result = apply(std::move(q->change));
      changed = changed || q->result->has_value();
    }
    if (changed) {
      if (auto saved = save(); !saved) {
        loaded_.reset();  // the contents hold changes the file does not: read the file again next time
        return fail_all(saved.error());
      }
    }
  } catch (const std::exception& e) {  // FAISS, or bad_alloc
    loaded_.reset();
    return fail_all(memory_error(MemoryErrc::io_error,
                                 "updating the memory index " + quoted(file_in(folder_)) + " failed: " + e.what()));
  }
  return std::move(*mine->result);
}

std::size_t MemoryIndex::dimension() const {
  std::shared_lock lock(mutex_);
  return dimension_;
}

std::size_t MemoryIndex::size() const {
  std::shared_lock lock(mutex_);
  return entries_.size() - deleted_;
}

std::string MemoryIndex::model() const {
  std::shared_lock lock(mutex_);
  return model_;
}

namespace {

MemoryResult<void> check_vectors(std::size_t count, std::size_t floats, std::size_t dimension) {
  if (dimension == 0 || dimension > INT_MAX) {
    return memory_error(MemoryErrc::invalid_argument, "invalid vector dimension " + std::to_string(dimension));
  }
  if (floats != count * dimension) {
    return memory_error(MemoryErrc::invalid_argument, std::to_string(floats) + " floats are not " +
                                                          std::to_string(count) + " vectors of dimension " +
                                                          std::to_string(dimension));
  }
  return {};
}

MemoryError other_dimension(std::size_t given, std::size_t have) {
  return memory_error(MemoryErrc::dimension_mismatch, "vectors of dimension " + std::to_string(given) +
                                                          " do not fit the index's dimension " + std::to_string(have));
}

}  // namespace

MemoryResult<std::vector<std::int64_t>> MemoryIndex::add(std::span<const float> vectors, std::size_t dimension,
                                                         std::vector<Entry> entries) {
  Change change;
  change.vectors.assign(vectors.begin(), vectors.end());
  change.dimension = dimension;
  change.entries = std::move(entries);
  auto applied = apply(std::move(change));
  if (!applied) return applied.error();
  return std::move(applied->ids);
}

MemoryResult<Committed> MemoryIndex::apply(Change change) {
  // Everything is checked before anything changes, so a refused change leaves no trace.
  std::optional<std::vector<float>> rows;
  if (!change.entries.empty()) {
    if (auto ok = check_vectors(change.entries.size(), change.vectors.size(), change.dimension); !ok) return ok.error();
    for (const auto& e : change.entries)
      if (auto ok = check_storable(e.metadata); !ok) return ok.error();
    auto unit = normalized(change.vectors, change.dimension);
    if (!unit) return unit.error();
    rows = std::move(*unit);
  }
  std::unique_lock lock(mutex_);
  if (rows && dimension_ != 0 && change.dimension != dimension_) return other_dimension(change.dimension, dimension_);

  Committed out;
  for (const auto& source : change.remove_sources) {
    if (source.empty()) continue;  // entries that were not ingested have no source
    for (auto& e : entries_) {
      if (!e.deleted && e.source == source) {
        e.deleted = true;
        ++out.removed;
      }
    }
  }
  deleted_ += out.removed;
  if (rows) {
    if (!faiss_) faiss_ = std::make_unique<Faiss>(Faiss{make_index(change.dimension, options_)});
    dimension_ = change.dimension;
    const auto first = static_cast<std::int64_t>(entries_.size());
    faiss_->index->add(static_cast<idx_t>(change.entries.size()), rows->data());
    out.ids.reserve(change.entries.size());
    for (auto& e : change.entries) {
      if (e.deleted) ++deleted_;
      out.ids.push_back(first + static_cast<std::int64_t>(out.ids.size()));
      entries_.push_back(std::move(e));
    }
  }
  for (auto& [source, hash] : change.source_hashes) source_hashes_[source] = std::move(hash);
  return out;
}

namespace {

// Runs this thread's OpenMP regions single-threaded until destroyed.
class OneOmpThread {
 public:
  OneOmpThread() : before_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(before_); }
  OneOmpThread(const OneOmpThread&) = delete;
  OneOmpThread& operator=(const OneOmpThread&) = delete;

 private:
  int before_;
};

}  // namespace

MemoryResult<std::vector<Hit>> MemoryIndex::search(std::span<const float> query, int k) const {
  if (k < 1) return memory_error(MemoryErrc::invalid_argument, "k must be at least 1, not " + std::to_string(k));
  std::shared_lock lock(mutex_);
  if (!faiss_) return std::vector<Hit>{};
  if (query.size() != dimension_) {
    return memory_error(MemoryErrc::dimension_mismatch, "a query of dimension " + std::to_string(query.size()) +
                                                            " does not fit the index's dimension " +
                                                            std::to_string(dimension_));
  }
  auto unit = normalized(query, dimension_);
  if (!unit) return unit.error();
  if (entries_.size() == deleted_) return std::vector<Hit>{};

  // Deleted entries stay in FAISS: ask for enough more that k live ones remain.
  const auto& index = *faiss_->index;
  const auto fetch = std::min<idx_t>(static_cast<idx_t>(k) + static_cast<idx_t>(deleted_), index.ntotal);
  std::vector<float> scores(static_cast<std::size_t>(fetch));
  std::vector<idx_t> ids(static_cast<std::size_t>(fetch));
  // One query gains nothing from an OpenMP team, and on a busy machine its spinning threads
  // cost ten times the search itself (bench/README.md, "Memory"); adds keep their threads.
  const OneOmpThread one_thread;
  if (dynamic_cast<const faiss::IndexHNSW*>(&index)) {
    // FAISS 1.7.3 sizes the beam as max(hnsw.efSearch, k) and stops by the parameters' efSearch
    // (faiss PR #3233 later made both follow the parameters); hnsw.efSearch stays at the option,
    // so max(option, fetch) here is the beam width, and concurrent searches change nothing shared.
    faiss::SearchParametersHNSW params;
    params.efSearch = static_cast<int>(std::max<idx_t>(options_.hnsw_ef_search, std::min<idx_t>(fetch, INT_MAX)));
    index.search(1, unit->data(), fetch, scores.data(), ids.data(), &params);
  } else {
    index.search(1, unit->data(), fetch, scores.data(), ids.data());
  }
  std::vector<Hit> hits;
  for (std::size_t i = 0; i < ids.size() && hits.size() < static_cast<std::size_t>(k); ++i) {
    if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= entries_.size()) continue;  // -1 pads when fewer found
    const Entry& e = entries_[static_cast<std::size_t>(ids[i])];
    if (!e.deleted) hits.push_back({ids[i], scores[i], e});
  }
  return hits;
}

std::optional<Entry> MemoryIndex::entry(std::int64_t id) const {
  std::shared_lock lock(mutex_);
  if (id < 0 || static_cast<std::size_t>(id) >= entries_.size()) return std::nullopt;
  return entries_[static_cast<std::size_t>(id)];
}

std::size_t MemoryIndex::remove_source(const std::string& source) {
  Change change;
  change.remove_sources.push_back(source);
  auto applied = apply(std::move(change));
  return applied ? applied->removed : 0;
}

std::optional<std::string> MemoryIndex::source_hash(const std::string& source) const {
  std::shared_lock lock(mutex_);
  const auto it = source_hashes_.find(source);
  if (it == source_hashes_.end()) return std::nullopt;
  return it->second;
}

void MemoryIndex::set_source_hash(const std::string& source, std::string hash) {
  std::unique_lock lock(mutex_);
  source_hashes_[source] = std::move(hash);
}

MemoryResult<void> MemoryIndex::save() {
  // Called by commit() holding the folder lock, so no other save of this folder runs meanwhile.
  {
    std::unique_lock lock(mutex_);
    if (model_.empty()) model_ = options_.model;  // an index that named no model adopts the configured one
  }
  const std::shared_lock lock(mutex_);
  const auto path = file_in(folder_);
  auto created = create_temporary(folder_);
  if (!created) return created.error();
  // Named members, not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
  LockedFile locked = std::move(created->first);
  const std::filesystem::path temporary = std::move(created->second);
  const int fd = locked.fd();
  File file(::fdopen(::dup(fd), "wb"));
  if (!file) return io_error("cannot open", temporary, errno);
  std::error_code ec;
  const auto failed = [&](MemoryError error) {
    file.reset();
    std::filesystem::remove(temporary, ec);  // still locked by us: nobody else removes it meanwhile
    return error;
  };

  FileSink sink(file.get());
  sink.name = temporary.string();
  const auto generation = (loaded_ ? loaded_->generation : 0) + 1;
  try {
    write_contents(sink, {options_.kind, dimension_, generation, faiss_ ? faiss_->index.get() : nullptr, model_,
                          entries_, source_hashes_});
  } catch (const std::exception& e) {  // FAISS throws when a write fails
    if (sink.error() == 0) {
      return failed(memory_error(MemoryErrc::io_error, "cannot write " + quoted(temporary) + ": " + e.what()));
    }
  }
  if (sink.error() != 0) return failed(io_error("cannot write", temporary, sink.error()));
  if (std::fflush(file.get()) != 0 || ::fsync(fd) != 0) return failed(io_error("cannot flush", temporary, errno));
  if (std::fclose(file.release()) != 0) return failed(io_error("cannot close", temporary, errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0) return failed(io_error("cannot stat", temporary, errno));
  // Renamed while its lock is held: until then a cleanup elsewhere must not take it for a leftover.
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return failed(io_error("cannot rename " + quoted(temporary) + " to", path, errno));
  }
  locked = LockedFile();
  FileIdentity identity;
  identity.exists = true;
  identity.device = static_cast<std::uint64_t>(status.st_dev);
  identity.inode = static_cast<std::uint64_t>(status.st_ino);
  identity.size = static_cast<std::int64_t>(status.st_size);
  identity.mtime_ns = static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec;
  identity.generation = generation;
  loaded_ = identity;
  if (auto synced = sync_folder(folder_); !synced) return synced.error();
  return {};
}

}  // namespace dagent::memory
