#include "memory/memory_index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <omp.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

// The saved file, in the machine's byte order (as FAISS writes its own section):
//   header    "DAGENTMEM\n" | u32 version | u32 kind (0 flat, 1 hnsw) | u64 dimension | u64 count
//   faiss     faiss::write_index bytes (absent while the dimension is 0)
//   metadata  JSON lines: {"model","dimension","kind","count","source_hashes"}, then one entry a line
//   footer    u64 faiss bytes | u64 metadata bytes | u64 checksum of every byte before it | "DGMEMEND"

namespace dagent::memory {

struct MemoryIndex::Faiss {
  std::unique_ptr<faiss::Index> index;
};

namespace {

using idx_t = faiss::Index::idx_t;

constexpr std::string_view k_magic = "DAGENTMEM\n";
constexpr std::string_view k_end_magic = "DGMEMEND";
constexpr std::uint32_t k_version = 1;
constexpr std::size_t k_header_size = k_magic.size() + 4 + 4 + 8 + 8;
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
MemoryResult<Footer> verify(std::FILE* file, const std::filesystem::path& path) {
  struct stat status {};
  if (::fstat(::fileno(file), &status) != 0) return io_error("cannot stat", path, errno);
  const auto size = static_cast<std::uint64_t>(status.st_size);
  if (size < k_header_size + k_footer_size) return corrupt(path, "it holds only " + std::to_string(size) + " bytes");

  unsigned char footer[k_footer_size];
  if (auto r = seek(file, size - k_footer_size, path); !r) return r.error();
  if (auto r = read_exactly(file, footer, k_footer_size, path); !r) return r.error();
  if (std::string_view(reinterpret_cast<const char*>(footer) + k_end_magic_at, k_end_magic.size()) != k_end_magic) {
    return corrupt(path, "its end marker is missing (truncated or not a memory index)");
  }
  const Footer sections{get<std::uint64_t>(footer), get<std::uint64_t>(footer + 8)};
  const auto body = size - k_header_size - k_footer_size;
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

MemoryResult<void> read_header(std::FILE* file, Saved& saved, const std::filesystem::path& path) {
  unsigned char header[k_header_size];
  if (auto r = seek(file, 0, path); !r) return r.error();
  if (auto r = read_exactly(file, header, k_header_size, path); !r) return r.error();
  if (std::string_view(reinterpret_cast<const char*>(header), k_magic.size()) != k_magic) {
    return corrupt(path, "it does not start with the memory index marker");
  }
  const auto* fields = header + k_magic.size();
  if (const auto version = get<std::uint32_t>(fields); version != k_version) {
    return corrupt(path, "unsupported version " + std::to_string(version));
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

MemoryResult<void> read_faiss(std::FILE* file, std::uint64_t bytes, Saved& saved, const std::filesystem::path& path) {
  if (bytes == 0) {
    if (saved.dimension != 0 || saved.count != 0) return corrupt(path, "its FAISS section is missing");
    return {};
  }
  try {
    faiss::FileIOReader reader(file);
    reader.name = path.string();
    saved.index.reset(faiss::read_index(&reader));
  } catch (const std::exception& e) {  // faiss::FaissException, or bad_alloc on absurd sizes
    return corrupt(path, std::string("FAISS cannot read its index: ") + e.what());
  }
  if (static_cast<std::uint64_t>(::ftello(file)) != k_header_size + bytes) {
    return corrupt(path, "its FAISS section has the wrong length");
  }
  const auto& index = *saved.index;
  if (kind_of(index) != saved.kind) return corrupt(path, "its FAISS index is not of the kind its header names");
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

// Reads the metadata lines in 1 MiB pieces, so only one line is held beside the entries.
MemoryResult<void> read_metadata(std::FILE* file, std::uint64_t bytes, Saved& saved, const std::filesystem::path& path) {
  boost::json::parse_options options;
  options.allow_invalid_utf8 = true;  // texts are stored as their files had them
  std::vector<char> buffer(k_read_size);
  std::string line;
  std::size_t line_number = 0;
  const auto take_line = [&]() -> MemoryResult<void> {
    boost::system::error_code ec;
    auto value = boost::json::parse(line, ec, {}, options);
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
  auto sections = verify(file, path);
  if (!sections) return sections.error();
  Saved saved;
  if (auto r = read_header(file, saved, path); !r) return r.error();
  if (auto r = read_faiss(file, sections->faiss_bytes, saved, path); !r) return r.error();
  if (auto r = read_metadata(file, sections->metadata_bytes, saved, path); !r) return r.error();
  return saved;
}

// A killed save leaves its temporary file behind; it never became the index, so it goes.
void remove_leftovers(const std::filesystem::path& folder) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().starts_with("memory.dgm.tmp.")) {
      std::error_code ignored;
      std::filesystem::remove(it->path(), ignored);
    }
  }
}

MemoryResult<void> sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return io_error("cannot open folder", folder, errno);
  const int synced = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (synced != 0) return io_error("cannot fsync folder", folder, error);
  return {};
}

}  // namespace

std::filesystem::path MemoryIndex::file_in(const std::filesystem::path& folder) { return folder / "memory.dgm"; }

MemoryIndex::MemoryIndex(std::filesystem::path folder, IndexOptions options)
    : folder_(std::move(folder)), options_(options) {}

MemoryIndex::~MemoryIndex() = default;

MemoryResult<std::unique_ptr<MemoryIndex>> MemoryIndex::open(std::filesystem::path folder, IndexOptions options) {
  std::unique_ptr<MemoryIndex> index(new MemoryIndex(std::move(folder), options));
  remove_leftovers(index->folder_);
  const auto path = file_in(index->folder_);
  const File file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    if (errno == ENOENT) return index;
    return io_error("cannot open", path, errno);
  }
  auto saved = read_saved(file.get(), path);
  if (!saved) return saved.error();

  index->dimension_ = saved->dimension;
  index->model_ = std::move(saved->model);
  index->entries_ = std::move(saved->entries);
  index->deleted_ = saved->deleted;
  index->source_hashes_ = std::move(saved->source_hashes);
  if (saved->index) {
    if (saved->kind != options.kind) {
      saved->index = rebuild(*saved->index, options);
      index->dirty_ = true;
    }
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(saved->index.get())) {
      hnsw->hnsw.efConstruction = options.hnsw_ef_construction;
      hnsw->hnsw.efSearch = options.hnsw_ef_search;
    }
    index->faiss_ = std::make_unique<Faiss>(Faiss{std::move(saved->index)});
  }
  return index;
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

void MemoryIndex::set_model(std::string model) {
  std::unique_lock lock(mutex_);
  if (model == model_) return;
  model_ = std::move(model);
  dirty_ = true;
}

MemoryResult<std::vector<std::int64_t>> MemoryIndex::add(std::span<const float> vectors, std::size_t dimension,
                                                         std::vector<Entry> entries) {
  if (dimension == 0 || dimension > INT_MAX) {
    return memory_error(MemoryErrc::invalid_argument, "invalid vector dimension " + std::to_string(dimension));
  }
  if (vectors.size() != entries.size() * dimension) {
    return memory_error(MemoryErrc::invalid_argument, std::to_string(vectors.size()) + " floats are not " +
                                                          std::to_string(entries.size()) + " vectors of dimension " +
                                                          std::to_string(dimension));
  }
  if (entries.empty()) return std::vector<std::int64_t>{};
  auto rows = normalized(vectors, dimension);
  if (!rows) return rows.error();

  std::unique_lock lock(mutex_);
  if (dimension_ != 0 && dimension != dimension_) {
    return memory_error(MemoryErrc::dimension_mismatch, "vectors of dimension " + std::to_string(dimension) +
                                                            " do not fit the index's dimension " +
                                                            std::to_string(dimension_));
  }
  if (!faiss_) faiss_ = std::make_unique<Faiss>(Faiss{make_index(dimension, options_)});
  dimension_ = dimension;
  const auto first = static_cast<std::int64_t>(entries_.size());
  faiss_->index->add(static_cast<idx_t>(entries.size()), rows->data());
  std::vector<std::int64_t> ids;
  ids.reserve(entries.size());
  for (auto& e : entries) {
    if (e.deleted) ++deleted_;
    ids.push_back(first + static_cast<std::int64_t>(ids.size()));
    entries_.push_back(std::move(e));
  }
  dirty_ = true;
  return ids;
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
    if (!e.deleted) hits.push_back({ids[i], scores[i], &e});
  }
  return hits;
}

const Entry* MemoryIndex::entry(std::int64_t id) const {
  std::shared_lock lock(mutex_);
  if (id < 0 || static_cast<std::size_t>(id) >= entries_.size()) return nullptr;
  return &entries_[static_cast<std::size_t>(id)];
}

std::size_t MemoryIndex::remove_source(const std::string& source) {
  if (source.empty()) return 0;  // entries that were not ingested have no source
  std::unique_lock lock(mutex_);
  std::size_t removed = 0;
  for (auto& e : entries_) {
    if (!e.deleted && e.source == source) {
      e.deleted = true;
      ++removed;
    }
  }
  deleted_ += removed;
  if (removed > 0) dirty_ = true;
  return removed;
}

std::optional<std::string> MemoryIndex::source_hash(const std::string& source) const {
  std::shared_lock lock(mutex_);
  const auto it = source_hashes_.find(source);
  if (it == source_hashes_.end()) return std::nullopt;
  return it->second;
}

void MemoryIndex::set_source_hash(const std::string& source, std::string hash) {
  std::unique_lock lock(mutex_);
  auto& stored = source_hashes_[source];
  if (stored == hash) return;
  stored = std::move(hash);
  dirty_ = true;
}

bool MemoryIndex::dirty() const { return dirty_; }

MemoryResult<void> MemoryIndex::save() {
  const std::scoped_lock one_save(save_mutex_);
  const std::shared_lock lock(mutex_);
  std::error_code ec;
  std::filesystem::create_directories(folder_, ec);
  if (ec) return io_error("cannot create folder", folder_, ec.value());

  const auto path = file_in(folder_);
  const auto temporary = folder_ / ("memory.dgm.tmp." + std::to_string(::getpid()));
  File file(std::fopen(temporary.c_str(), "wb"));
  if (!file) return io_error("cannot create", temporary, errno);
  const auto failed = [&](MemoryError error) {
    file.reset();
    std::filesystem::remove(temporary, ec);
    return error;
  };

  FileSink sink(file.get());
  sink.name = temporary.string();
  try {
    write_contents(sink, {options_.kind, dimension_, faiss_ ? faiss_->index.get() : nullptr, model_, entries_,
                          source_hashes_});
  } catch (const std::exception& e) {  // FAISS throws when a write fails
    if (sink.error() == 0) {
      return failed(memory_error(MemoryErrc::io_error, "cannot write " + quoted(temporary) + ": " + e.what()));
    }
  }
  if (sink.error() != 0) return failed(io_error("cannot write", temporary, sink.error()));
  if (std::fflush(file.get()) != 0 || ::fsync(::fileno(file.get())) != 0) {
    return failed(io_error("cannot flush", temporary, errno));
  }
  if (std::fclose(file.release()) != 0) return failed(io_error("cannot close", temporary, errno));
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return failed(io_error("cannot rename " + quoted(temporary) + " to", path, errno));
  }
  if (auto synced = sync_folder(folder_); !synced) return synced.error();
  dirty_ = false;
  return {};
}

}  // namespace dagent::memory
