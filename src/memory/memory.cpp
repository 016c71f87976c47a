// Memory: the batcher and the persistent index behind one interface for tools, ingest, recall
// and background updates. Embedding happens on the loop; file reads and FAISS on the pool.

#include "memory/memory.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "memory/chunker.hpp"
#include "net/sha256.hpp"
#include "text/utf8.hpp"

namespace dagent::memory {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Runs fn() on `pool` and completes on the awaiting coroutine's executor. fn must not throw.
// Name the returned awaitable before co_await: g++ 12 mishandles temporaries in co_await.
struct InitiateOnPool {
  template <class Handler, class Fn>
  void operator()(Handler handler, asio::any_io_executor pool, Fn fn) const {
    auto home = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
    asio::post(pool, [handler = std::move(handler), home, fn = std::move(fn)]() mutable {
      auto result = fn();
      asio::post(home, [handler = std::move(handler), result = std::move(result)]() mutable {
        std::move(handler)(std::move(result));
      });
    });
  }
};

template <class Fn>
auto on_pool(asio::any_io_executor pool, Fn fn) {
  using R = decltype(fn());
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(InitiateOnPool{}, asio::use_awaitable,
                                                                        std::move(pool), std::move(fn));
}

MemoryError from_llm_error(const net::LlmError& e) {
  return memory_error(net::is_unreachable(e) ? MemoryErrc::unavailable : MemoryErrc::embedding_failed,
                      "embedding failed: " + e.message);
}

constexpr std::uintmax_t k_max_file_bytes = 64u << 20;

// The files under `paths`: regular files as given, folders walked recursively in name order,
// skipping hidden entries (".git", the memory folder) inside them.
struct FileList {
  std::vector<fs::path> files;
  std::vector<std::string> warnings;
  std::optional<MemoryError> error;
};

FileList list_files(const std::vector<fs::path>& paths) {
  FileList out;
  for (const auto& given : paths) {
    std::error_code ec;
    const auto status = fs::status(given, ec);
    if (ec || !fs::exists(status)) {
      out.error = memory_error(MemoryErrc::invalid_argument, "'" + given.string() + "' does not exist");
      return out;
    }
    if (fs::is_regular_file(status)) {
      out.files.push_back(fs::absolute(given, ec).lexically_normal());
      continue;
    }
    if (!fs::is_directory(status)) {
      out.warnings.push_back("'" + given.string() + "' is neither a file nor a folder; skipped");
      continue;
    }
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(given, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) {
      out.warnings.push_back("'" + given.string() + "': " + ec.message());
      continue;
    }
    for (; it != end; it.increment(ec)) {
      if (ec) {
        out.warnings.push_back("'" + given.string() + "': " + ec.message());
        break;
      }
      const auto name = it->path().filename().string();
      if (!name.empty() && name.front() == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) found.push_back(fs::absolute(it->path(), ec).lexically_normal());
    }
    std::sort(found.begin(), found.end());
    out.files.insert(out.files.end(), found.begin(), found.end());
  }
  // The same file named twice (a folder and a file in it) is ingested once.
  std::vector<fs::path> unique;
  for (auto& f : out.files)
    if (std::find(unique.begin(), unique.end(), f) == unique.end()) unique.push_back(std::move(f));
  out.files = std::move(unique);
  return out;
}

// One file read for ingest: its text (valid UTF-8), content hash and chunks.
struct ReadFile {
  std::string source;
  std::string text;
  std::string hash;
  std::vector<Chunk> chunks;
  std::string warning;  ///< non-empty: not ingested
};

ReadFile read_for_ingest(const fs::path& path, std::size_t chunk_chars, std::size_t overlap) {
  ReadFile out;
  out.source = path.string();
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) {
    out.warning = "'" + out.source + "': " + ec.message() + "; skipped";
    return out;
  }
  if (size > k_max_file_bytes) {
    out.warning = "'" + out.source + "' is larger than 64 MiB; skipped";
    return out;
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    out.warning = "'" + out.source + "' could not be read; skipped";
    return out;
  }
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  if (bytes.find('\0') != std::string::npos) {
    out.warning = "'" + out.source + "' is not a text file; skipped";
    return out;
  }
  out.hash = net::sha256_hex(bytes);
  out.text = text::valid_utf8(bytes);
  out.chunks = chunk_text(out.text, chunk_chars, overlap);
  return out;
}

BatcherOptions batcher_options(const config::Config& cfg) {
  const auto& b = cfg.performance.batch_embeddings;
  BatcherOptions o;
  o.enabled = b.enabled;
  o.batch_size = static_cast<std::size_t>(std::max(1, b.batch_size));
  o.max_delay = std::chrono::milliseconds(b.max_delay_ms);
  o.model = cfg.llm.embedding_model;
  if (cfg.memory.dimensions > 0) o.dimensions = cfg.memory.dimensions;
  return o;
}

MemoryHit to_hit(Hit hit) {
  MemoryHit out;
  out.id = hit.id;
  out.score = hit.score;
  out.text = std::move(hit.entry.text);
  out.metadata = std::move(hit.entry.metadata);
  out.source = std::move(hit.entry.source);
  out.begin = hit.entry.begin;
  out.end = hit.entry.end;
  return out;
}

}  // namespace

Memory::Memory(asio::any_io_executor loop, asio::any_io_executor pool, net::LlmProvider& provider,
               const config::Config& cfg)
    : loop_(loop),
      pool_(std::move(pool)),
      cfg_(cfg),
      folder_((cfg.base_dir / cfg.memory.path).lexically_normal()),
      batcher_(loop, provider, batcher_options(cfg)) {}

Memory::~Memory() = default;

MemoryResult<void> Memory::open() {
  if (opened_) {
    if (open_error_) return *open_error_;
    return {};
  }
  opened_ = true;
  IndexOptions options;
  options.kind = cfg_.memory.index;
  options.model = cfg_.llm.embedding_model;
  auto index = MemoryIndex::open(folder_, options);
  if (!index) {
    open_error_ = index.error();
    return *open_error_;
  }
  index_ = std::move(*index);
  return {};
}

void Memory::use_folder(fs::path folder) {
  index_.reset();
  open_error_.reset();
  opened_ = false;
  folder_ = std::move(folder);
}

asio::awaitable<MemoryResult<std::vector<float>>> Memory::embed(std::vector<std::string> texts, std::size_t* dimension,
                                                                std::shared_ptr<net::CallMeter> meter) {
  auto reply = co_await batcher_.embed(std::move(texts), std::move(meter));
  if (!reply) co_return from_llm_error(reply.error());
  const auto have = index_->dimension();
  if (have != 0 && reply->dimension != have) {
    co_return memory_error(MemoryErrc::dimension_mismatch,
                           "the memory index in '" + folder_.string() + "' holds " + std::to_string(have) +
                               "-dimension vectors (model '" + index_->model() + "') but the embedding model '" +
                               cfg_.llm.embedding_model + "' returned " + std::to_string(reply->dimension) +
                               "; use the model and memory.dimensions the index was built with, or another memory.path");
  }
  *dimension = reply->dimension;
  co_return std::move(reply->vectors);
}

asio::awaitable<MemoryResult<std::int64_t>> Memory::add(std::string text, json::object metadata,
                                                        std::shared_ptr<net::CallMeter> meter) {
  std::vector<std::string> texts;
  texts.push_back(std::move(text));
  std::vector<json::object> metas;
  metas.push_back(std::move(metadata));
  auto ids = co_await add_many(std::move(texts), std::move(metas), std::move(meter));
  if (!ids) co_return ids.error();
  co_return ids->front();
}

namespace {

// A read-modify-write of the saved index: it may wait for another process's lock, so it runs
// on the pool, never on the loop.
struct CommitJob {
  MemoryIndex* index;
  Change change;
  MemoryResult<Committed> operator()() { return index->commit(std::move(change)); }
};

struct RefreshJob {
  MemoryIndex* index;
  MemoryResult<void> operator()() { return index->refresh(); }
};

}  // namespace

asio::awaitable<MemoryResult<std::vector<std::int64_t>>> Memory::add_many(std::vector<std::string> texts,
                                                                          std::vector<json::object> metadata,
                                                                          std::shared_ptr<net::CallMeter> meter) {
  if (auto opened = open(); !opened) co_return opened.error();
  if (texts.empty() || texts.size() != metadata.size())
    co_return memory_error(MemoryErrc::invalid_argument, "add needs one metadata object per text");
  Change change;
  change.entries.resize(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) co_return memory_error(MemoryErrc::invalid_argument, "cannot store an empty text");
    if (auto storable = check_storable(metadata[i]); !storable) co_return storable.error();
    change.entries[i].text = texts[i];
    change.entries[i].metadata = std::move(metadata[i]);
  }
  auto vectors = co_await embed(std::move(texts), &change.dimension, std::move(meter));
  if (!vectors) co_return vectors.error();
  change.vectors = std::move(*vectors);
  auto committing = on_pool(pool_, CommitJob{index_.get(), std::move(change)});
  auto committed = co_await std::move(committing);
  if (!committed) co_return committed.error();
  co_return std::move(committed->ids);
}

asio::awaitable<MemoryResult<void>> Memory::refresh() {
  auto refreshing = on_pool(pool_, RefreshJob{index_.get()});
  co_return co_await std::move(refreshing);
}

namespace {

struct SearchJob {
  const MemoryIndex* index;
  std::vector<float> query;
  int k;
  MemoryResult<std::vector<MemoryHit>> operator()() {
    try {
      auto hits = index->search(query, k);
      if (!hits) return hits.error();
      std::vector<MemoryHit> out;
      out.reserve(hits->size());
      for (auto& h : *hits) out.push_back(to_hit(std::move(h)));
      return out;
    } catch (const std::exception& e) {
      return memory_error(MemoryErrc::io_error, std::string("memory search failed: ") + e.what());
    }
  }
};

}  // namespace

asio::awaitable<MemoryResult<std::vector<MemoryHit>>> Memory::search(std::string query, int k,
                                                                     std::shared_ptr<net::CallMeter> meter) {
  if (auto opened = open(); !opened) co_return opened.error();
  if (k < 1) co_return memory_error(MemoryErrc::invalid_argument, "k must be at least 1, got " + std::to_string(k));
  if (query.empty()) co_return memory_error(MemoryErrc::invalid_argument, "the query is empty");
  if (auto fresh = co_await refresh(); !fresh) co_return fresh.error();
  if (index_->size() == 0) co_return std::vector<MemoryHit>{};  // nothing to find: no embedding call
  std::vector<std::string> texts;
  texts.push_back(std::move(query));
  std::size_t dimension = 0;
  auto vectors = co_await embed(std::move(texts), &dimension, std::move(meter));
  if (!vectors) co_return vectors.error();
  SearchJob job{index_.get(), std::move(*vectors), k};
  auto searching = on_pool(pool_, std::move(job));
  co_return co_await std::move(searching);
}

// A chunk waiting in an ingest window, and the file it belongs to.
struct Memory::PendingChunk {
  std::size_t file = 0;  ///< index into the ingest's files
  Chunk chunk;
};

struct Memory::IngestFile {
  ReadFile read;
  std::size_t remaining = 0;  ///< chunks not yet stored
  bool replaced = false;      ///< its old chunks were marked deleted
};

namespace {

struct ReadJob {
  fs::path path;
  std::size_t chunk_chars;
  std::size_t overlap;
  ReadFile operator()() {
    try {
      return read_for_ingest(path, chunk_chars, overlap);
    } catch (const std::exception& e) {
      ReadFile out;
      out.source = path.string();
      out.warning = "'" + out.source + "': " + e.what() + "; skipped";
      return out;
    }
  }
};

struct ListJob {
  std::vector<fs::path> paths;
  FileList operator()() {
    try {
      return list_files(paths);
    } catch (const std::exception& e) {
      FileList out;
      out.error = memory_error(MemoryErrc::io_error, e.what());
      return out;
    }
  }
};

}  // namespace

// Adds one embedded window to `pending`: the removal of changed files' old chunks, the new chunks,
// and the hash of each file whose last chunk is in.
asio::awaitable<MemoryResult<void>> Memory::store_window(std::vector<IngestFile>* files,
                                                         std::vector<PendingChunk>* window, Change* pending,
                                                         IngestReport* report, std::size_t* files_done) {
  std::vector<std::string> texts;
  texts.reserve(window->size());
  for (const auto& c : *window) {
    const auto& text = (*files)[c.file].read.text;
    texts.push_back(text.substr(c.chunk.begin, c.chunk.end - c.chunk.begin));
  }
  std::size_t dimension = 0;
  auto vectors = co_await embed(texts, &dimension, nullptr);
  if (!vectors) co_return vectors.error();
  if (pending->dimension != 0 && pending->dimension != dimension) {
    co_return memory_error(MemoryErrc::dimension_mismatch, "the embedding model returned vectors of dimension " +
                                                               std::to_string(dimension) + " after " +
                                                               std::to_string(pending->dimension));
  }
  pending->dimension = dimension;
  pending->vectors.insert(pending->vectors.end(), vectors->begin(), vectors->end());
  for (std::size_t i = 0; i < window->size(); ++i) {
    const auto& c = (*window)[i];
    auto& f = (*files)[c.file];
    if (!f.replaced) {
      f.replaced = true;
      pending->remove_sources.push_back(f.read.source);
    }
    Entry e;
    e.text = std::move(texts[i]);
    e.source = f.read.source;
    e.begin = static_cast<std::int64_t>(c.chunk.begin);
    e.end = static_cast<std::int64_t>(c.chunk.end);
    pending->entries.push_back(std::move(e));
    if (--f.remaining == 0) {
      ++*files_done;
      pending->source_hashes.emplace_back(f.read.source, f.read.hash);
      f.read.text.clear();
      f.read.text.shrink_to_fit();
    }
  }
  report->chunks_added += window->size();
  window->clear();
  co_return MemoryResult<void>{};
}

asio::awaitable<MemoryResult<void>> Memory::commit(Change* pending, IngestReport* report) {
  if (pending->entries.empty() && pending->remove_sources.empty() && pending->source_hashes.empty()) {
    co_return MemoryResult<void>{};
  }
  auto committing = on_pool(pool_, CommitJob{index_.get(), std::move(*pending)});
  *pending = Change{};
  auto committed = co_await std::move(committing);
  if (!committed) co_return committed.error();
  report->chunks_replaced += committed->removed;
  co_return MemoryResult<void>{};
}

asio::awaitable<MemoryResult<IngestReport>> Memory::ingest(std::vector<fs::path> paths,
                                                           std::function<void(const IngestProgress&)> on_progress) {
  if (auto opened = open(); !opened) co_return opened.error();
  if (auto fresh = co_await refresh(); !fresh) co_return fresh.error();  // the source hashes others saved
  auto listing = on_pool(pool_, ListJob{std::move(paths)});
  auto listed = co_await std::move(listing);
  if (listed.error) co_return *listed.error;

  IngestReport report;
  report.warnings = std::move(listed.warnings);
  report.files_seen = listed.files.size();
  IngestProgress progress;
  progress.files_total = listed.files.size();
  const auto batch = static_cast<std::size_t>(std::max(1, cfg_.performance.batch_embeddings.batch_size));
  const std::size_t window_size = 8 * batch;  // chunks embedded concurrently before they are stored
  // Each commit rewrites the whole file: committing when the pending chunks are as many as the
  // index holds keeps the bytes written within a small multiple of the final size.
  const auto commit_due = [&](const Change& pending) {
    return pending.entries.size() >= std::max(16 * window_size, index_->size());
  };

  // Files whose chunks are all stored are dropped from `files` only at the end: indices stay valid.
  std::vector<IngestFile> files;
  std::vector<PendingChunk> window;
  Change pending;
  std::optional<MemoryError> failure;
  for (const auto& path : listed.files) {
    ReadJob read{path, static_cast<std::size_t>(cfg_.memory.chunk_chars),
                 static_cast<std::size_t>(cfg_.memory.chunk_overlap)};
    auto reading = on_pool(pool_, std::move(read));
    auto file = co_await std::move(reading);
    if (!file.warning.empty()) {
      report.warnings.push_back(std::move(file.warning));
      ++report.files_skipped;
      ++progress.files_done;
      continue;
    }
    if (index_->source_hash(file.source) == file.hash) {
      ++report.files_unchanged;
      ++progress.files_done;
      continue;
    }
    ++report.files_ingested;
    if (file.chunks.empty()) {  // an empty (or whitespace) file: nothing to search, remember it
      pending.remove_sources.push_back(file.source);
      pending.source_hashes.emplace_back(file.source, file.hash);
      ++progress.files_done;
      continue;
    }
    const std::size_t at = files.size();
    IngestFile entry;
    entry.remaining = file.chunks.size();
    entry.read = std::move(file);
    files.push_back(std::move(entry));
    progress.chunks_total += files[at].read.chunks.size();
    for (const auto& chunk : files[at].read.chunks) {
      window.push_back(PendingChunk{at, chunk});
      if (window.size() < window_size) continue;
      auto stored = co_await store_window(&files, &window, &pending, &report, &progress.files_done);
      if (stored && commit_due(pending)) stored = co_await commit(&pending, &report);
      if (!stored) {
        failure = stored.error();
        break;
      }
      progress.chunks_done = report.chunks_added;
      if (on_progress) on_progress(progress);
    }
    if (failure) break;
    files[at].read.chunks.clear();
  }
  if (!failure && !window.empty()) {
    auto stored = co_await store_window(&files, &window, &pending, &report, &progress.files_done);
    if (!stored) failure = stored.error();
  }
  if (!failure) {
    progress.chunks_done = report.chunks_added;
    if (on_progress) on_progress(progress);
  }
  // What was embedded before a failure is kept: files whose chunks all made it are complete,
  // a file cut short has no hash recorded and is ingested again next time.
  auto saved = co_await commit(&pending, &report);
  if (failure) co_return *failure;
  if (!saved) co_return saved.error();
  co_return report;
}

}  // namespace dagent::memory
