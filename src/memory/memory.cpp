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
#include <boost/asio/as_tuple.hpp>
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

MemoryHit to_hit(const Hit& hit) {
  MemoryHit out;
  out.id = hit.id;
  out.score = hit.score;
  out.text = hit.entry->text;
  out.metadata = hit.entry->metadata;
  out.source = hit.entry->source;
  out.begin = hit.entry->begin;
  out.end = hit.entry->end;
  return out;
}

}  // namespace

Memory::Memory(asio::any_io_executor loop, asio::any_io_executor pool, net::LlmProvider& provider,
               const config::Config& cfg)
    : loop_(loop),
      pool_(std::move(pool)),
      cfg_(cfg),
      folder_((cfg.base_dir / cfg.memory.path).lexically_normal()),
      batcher_(loop, provider, batcher_options(cfg)),
      save_done_(loop, asio::steady_timer::time_point::max()) {}

Memory::~Memory() = default;

MemoryResult<void> Memory::open() {
  if (opened_) {
    if (open_error_) return *open_error_;
    return {};
  }
  opened_ = true;
  IndexOptions options;
  options.kind = cfg_.memory.index;
  auto index = MemoryIndex::open(folder_, options);
  if (!index) {
    open_error_ = index.error();
    return *open_error_;
  }
  index_ = std::move(*index);
  if (index_->dirty()) changes_ = 1;  // rebuilt as another kind: the next save writes it
  return {};
}

void Memory::use_folder(fs::path folder) {
  index_.reset();
  open_error_.reset();
  opened_ = false;
  changes_ = saved_ = 0;
  folder_ = std::move(folder);
}

asio::awaitable<MemoryResult<std::vector<float>>> Memory::embed(std::vector<std::string> texts, std::size_t* dimension) {
  auto reply = co_await batcher_.embed(std::move(texts));
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

asio::awaitable<MemoryResult<std::int64_t>> Memory::add(std::string text, json::object metadata) {
  std::vector<std::string> texts;
  texts.push_back(std::move(text));
  std::vector<json::object> metas;
  metas.push_back(std::move(metadata));
  auto ids = co_await add_many(std::move(texts), std::move(metas));
  if (!ids) co_return ids.error();
  co_return ids->front();
}

namespace {

struct AddJob {
  MemoryIndex* index;
  std::vector<float> vectors;
  std::size_t dimension;
  std::vector<Entry> entries;
  MemoryResult<std::vector<std::int64_t>> operator()() {
    try {
      return index->add(vectors, dimension, std::move(entries));
    } catch (const std::exception& e) {
      return memory_error(MemoryErrc::io_error, std::string("adding to the memory index failed: ") + e.what());
    }
  }
};

}  // namespace

asio::awaitable<MemoryResult<std::vector<std::int64_t>>> Memory::add_many(std::vector<std::string> texts,
                                                                          std::vector<json::object> metadata) {
  if (auto opened = open(); !opened) co_return opened.error();
  if (texts.empty() || texts.size() != metadata.size())
    co_return memory_error(MemoryErrc::invalid_argument, "add needs one metadata object per text");
  std::vector<Entry> entries(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) co_return memory_error(MemoryErrc::invalid_argument, "cannot store an empty text");
    entries[i].text = texts[i];
    entries[i].metadata = std::move(metadata[i]);
  }
  std::size_t dimension = 0;
  auto vectors = co_await embed(std::move(texts), &dimension);
  if (!vectors) co_return vectors.error();
  if (index_->model().empty()) index_->set_model(cfg_.llm.embedding_model);
  AddJob job{index_.get(), std::move(*vectors), dimension, std::move(entries)};
  auto adding = on_pool(pool_, std::move(job));
  auto ids = co_await std::move(adding);
  if (!ids) co_return ids.error();
  ++changes_;
  auto saved = co_await save();
  if (!saved) co_return saved.error();
  co_return std::move(*ids);
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
      for (const auto& h : *hits) out.push_back(to_hit(h));
      return out;
    } catch (const std::exception& e) {
      return memory_error(MemoryErrc::io_error, std::string("memory search failed: ") + e.what());
    }
  }
};

}  // namespace

asio::awaitable<MemoryResult<std::vector<MemoryHit>>> Memory::search(std::string query, int k) {
  if (auto opened = open(); !opened) co_return opened.error();
  if (k < 1) co_return memory_error(MemoryErrc::invalid_argument, "k must be at least 1, got " + std::to_string(k));
  if (query.empty()) co_return memory_error(MemoryErrc::invalid_argument, "the query is empty");
  if (index_->size() == 0) co_return std::vector<MemoryHit>{};  // nothing to find: no embedding call
  std::vector<std::string> texts;
  texts.push_back(std::move(query));
  std::size_t dimension = 0;
  auto vectors = co_await embed(std::move(texts), &dimension);
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

struct SaveJob {
  MemoryIndex* index;
  MemoryResult<void> operator()() {
    try {
      return index->save();
    } catch (const std::exception& e) {
      return memory_error(MemoryErrc::io_error, std::string("saving the memory index failed: ") + e.what());
    }
  }
};

}  // namespace

asio::awaitable<MemoryResult<void>> Memory::save() {
  // Every change made before this call is on disk when it returns. One write runs at a time; a
  // caller arriving during a write waits for it, then writes again if it started too early.
  const auto wanted = changes_;
  while (saved_ < wanted) {
    if (saving_) {
      co_await save_done_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    saving_ = true;
    const auto covering = changes_;
    auto writing = on_pool(pool_, SaveJob{index_.get()});
    auto written = co_await std::move(writing);
    saving_ = false;
    save_done_.cancel();  // wakes every waiter; each checks whether its changes are covered
    if (!written) co_return written.error();
    saved_ = covering;
  }
  co_return MemoryResult<void>{};
}

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

// Stores one embedded window: replaces changed files' old chunks, adds the new ones, and records
// the hash of each file whose last chunk is in.
struct StoreWindow {
  MemoryIndex* index;
  std::vector<Memory::IngestFile>* files;
  std::vector<Memory::PendingChunk> chunks;
  std::vector<float> vectors;
  std::size_t dimension;
  IngestReport* report;
  std::size_t* files_done;
  MemoryResult<std::vector<std::int64_t>> operator()() {
    try {
      std::vector<Entry> entries(chunks.size());
      for (std::size_t i = 0; i < chunks.size(); ++i) {
        auto& f = (*files)[chunks[i].file];
        if (!f.replaced) {
          f.replaced = true;
          report->chunks_replaced += index->remove_source(f.read.source);
        }
        auto& e = entries[i];
        e.text = f.read.text.substr(chunks[i].chunk.begin, chunks[i].chunk.end - chunks[i].chunk.begin);
        e.source = f.read.source;
        e.begin = static_cast<std::int64_t>(chunks[i].chunk.begin);
        e.end = static_cast<std::int64_t>(chunks[i].chunk.end);
      }
      auto ids = index->add(vectors, dimension, std::move(entries));
      if (!ids) return ids;
      for (const auto& c : chunks) {
        auto& f = (*files)[c.file];
        if (--f.remaining == 0) {
          ++*files_done;
          index->set_source_hash(f.read.source, f.read.hash);
          f.read.text.clear();
          f.read.text.shrink_to_fit();
        }
      }
      return ids;
    } catch (const std::exception& e) {
      return memory_error(MemoryErrc::io_error, std::string("adding to the memory index failed: ") + e.what());
    }
  }
};

}  // namespace

asio::awaitable<MemoryResult<void>> Memory::store_window(std::vector<IngestFile>* files,
                                                         std::vector<PendingChunk>* window, IngestReport* report,
                                                         std::size_t* files_done) {
  std::vector<std::string> texts;
  texts.reserve(window->size());
  for (const auto& c : *window) {
    const auto& text = (*files)[c.file].read.text;
    texts.push_back(text.substr(c.chunk.begin, c.chunk.end - c.chunk.begin));
  }
  std::size_t dimension = 0;
  auto vectors = co_await embed(std::move(texts), &dimension);
  if (!vectors) co_return vectors.error();
  if (index_->model().empty()) index_->set_model(cfg_.llm.embedding_model);
  StoreWindow job{index_.get(), files, std::move(*window), std::move(*vectors), dimension, report, files_done};
  window->clear();
  auto adding = on_pool(pool_, std::move(job));
  auto ids = co_await std::move(adding);
  if (!ids) co_return ids.error();
  report->chunks_added += ids->size();
  ++changes_;
  co_return MemoryResult<void>{};
}

asio::awaitable<MemoryResult<IngestReport>> Memory::ingest(std::vector<fs::path> paths,
                                                           std::function<void(const IngestProgress&)> on_progress) {
  if (auto opened = open(); !opened) co_return opened.error();
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

  // Files whose chunks are all stored are dropped from `files` only at the end: indices stay valid.
  std::vector<IngestFile> files;
  std::vector<PendingChunk> window;
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
      report.chunks_replaced += index_->remove_source(file.source);
      index_->set_source_hash(file.source, file.hash);
      ++changes_;
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
      auto stored = co_await store_window(&files, &window, &report, &progress.files_done);
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
    auto stored = co_await store_window(&files, &window, &report, &progress.files_done);
    if (!stored) failure = stored.error();
  }
  if (!failure) {
    progress.chunks_done = report.chunks_added;
    if (on_progress) on_progress(progress);
  }
  // What was stored before a failure is kept: files whose chunks all made it are complete,
  // a file cut short has no hash recorded and is ingested again next time.
  auto saved = co_await save();
  if (failure) co_return *failure;
  if (!saved) co_return saved.error();
  co_return report;
}

}  // namespace dagent::memory
