// Memory end to end: `dagent ingest`, `dagent memory search`, the memory tools in plans,
// persistence across processes, a save killed half-way, background updates and recall, against
// the scripted server's deterministic bag-of-words embeddings.

#include <catch2/catch.hpp>

#include <sys/inotify.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using dagent::test::ChildProcess;
using dagent::test::ProcessResult;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

std::vector<std::string> dagent_env(const TestServer& server) {
  return {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test-memory"};
}

ProcessResult run_dagent(const TempDir& dir, const TestServer& server, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path(), dagent_env(server));
}

// Documents on unrelated topics; each query below shares words with exactly one of them.
void write_corpus(const TempDir& dir) {
  dir.write("docs/rust.md", "Rust ownership and the borrow checker prevent data races at compile time.\n\n"
                            "Lifetimes tell the borrow checker how long references live.");
  dir.write("docs/bread.md", "Sourdough bread needs a starter, flour, water and salt. Knead the dough, "
                             "let it rise overnight and bake it in a hot oven.");
  dir.write("docs/tides.md", "Ocean tides are caused by the gravity of the moon and the sun pulling on the seas.");
  dir.write("docs/chess.md", "In chess the knight moves in an L shape and the bishop moves diagonally across the board.");
  dir.write("docs/sub/bees.txt", "Honey bees dance to tell the hive where flowers with nectar are.");
  dir.write("docs/.hidden/secret.md", "hidden notes that ingest must skip");
  dir.write("docs/image.bin", std::string("\x89PNG\0\0binary", 12));
}

json::value search_json(const TempDir& dir, const TestServer& server, const std::string& query,
                        std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"memory", "search", query, "-k", "3", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run_dagent(dir, server, args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

std::string top_source(const json::value& result) {
  const auto& hits = result.at("hits").as_array();
  REQUIRE_FALSE(hits.empty());
  return fs::path(std::string(hits[0].at("metadata").at("source").as_string())).filename().string();
}

}  // namespace

TEST_CASE("ingest chunks a folder and memory search finds each document by its topic", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  write_corpus(dir);
  const std::string index = GENERATE(std::string("flat"), std::string("hnsw"));
  // 256 dimensions (asked of the model with memory.dimensions) keep hashing collisions rare.
  dir.write("config.yaml", "memory: {index: " + index + ", chunk_chars: 120, chunk_overlap: 20, dimensions: 256}\n");

  auto r = run_dagent(dir, server, {"ingest", "docs", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto report = json::parse(r.out);
  CHECK(report.at("files_seen") == 6);  // the hidden folder is not walked
  CHECK(report.at("files_ingested") == 5);
  CHECK(report.at("files_skipped") == 1);  // image.bin is not text
  CHECK_THAT(r.err, Catch::Contains("image.bin") && Catch::Contains("not a text file"));
  const auto chunks = report.at("chunks_added").to_number<int>();
  CHECK(chunks > 5);  // the two long documents were cut in several chunks
  // Batched: the chunks went in fewer requests than chunks.
  CHECK(server.requests_to("/v1/embeddings") < chunks);

  // Each query lands on its document, in a new process reading the saved index.
  CHECK(top_source(search_json(dir, server, "how does the borrow checker treat references")) == "rust.md");
  CHECK(top_source(search_json(dir, server, "sourdough bread flour and salt")) == "bread.md");
  CHECK(top_source(search_json(dir, server, "gravity pulling ocean tides")) == "tides.md");
  CHECK(top_source(search_json(dir, server, "where do bees find nectar")) == "bees.txt");
  auto result = search_json(dir, server, "knight and bishop moves");
  const auto& hit = result.at("hits").as_array()[0];
  CHECK(top_source(result) == "chess.md");
  CHECK(hit.at("score").to_number<double>() > 0.3);
  CHECK(hit.at("score").to_number<double>() <= 1.0001);
  CHECK_THAT(std::string(hit.at("text").as_string()), Catch::Contains("knight"));
  // Offsets locate the chunk in its file.
  const auto text = read_text(dir.path() / "docs/chess.md");
  const auto begin = hit.at("metadata").at("begin").to_number<std::size_t>();
  const auto end = hit.at("metadata").at("end").to_number<std::size_t>();
  CHECK(text.substr(begin, end - begin) == std::string(hit.at("text").as_string()));
  // Nothing from the hidden folder was stored.
  const auto hidden = search_json(dir, server, "hidden notes that ingest must skip");
  for (const auto& h : hidden.at("hits").as_array())
    CHECK(std::string(h.at("metadata").at("source").as_string()).find(".hidden") == std::string::npos);

  // Human output: rank, score, path with offsets, text.
  auto human = run_dagent(dir, server, {"memory", "search", "knight and bishop", "-k", "1"});
  CHECK(human.exit_code == 0);
  CHECK_THAT(human.out, Catch::Contains(" 1. ") && Catch::Contains("chess.md:") && Catch::Contains("knight"));
}

TEST_CASE("ingest skips unchanged files and replaces the chunks of a changed one", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  write_corpus(dir);
  dir.write("config.yaml", "memory: {chunk_chars: 120, chunk_overlap: 20}\n");
  REQUIRE(run_dagent(dir, server, {"ingest", "docs"}).exit_code == 0);
  const auto first = server.requests_to("/v1/embeddings");

  auto again = run_dagent(dir, server, {"ingest", "docs", "--json"});
  REQUIRE(again.exit_code == 0);
  auto report = json::parse(again.out);
  CHECK(report.at("files_unchanged") == 5);
  CHECK(report.at("files_ingested") == 0);
  CHECK(report.at("chunks_added") == 0);
  CHECK(server.requests_to("/v1/embeddings") == first);  // nothing was embedded again

  dir.write("docs/tides.md", "Volcanoes erupt when magma rises through the crust.");
  auto changed = run_dagent(dir, server, {"ingest", "docs", "--json"});
  REQUIRE(changed.exit_code == 0);
  report = json::parse(changed.out);
  CHECK(report.at("files_ingested") == 1);
  CHECK(report.at("files_unchanged") == 4);
  CHECK(report.at("chunks_replaced") == 1);
  auto hits = search_json(dir, server, "gravity of the moon on the seas");
  for (const auto& h : hits.at("hits").as_array()) CHECK(std::string(h.at("text").as_string()).find("tides") == std::string::npos);
  CHECK(top_source(search_json(dir, server, "magma volcanoes erupt")) == "tides.md");
}

TEST_CASE("ingest and memory search report bad input clearly", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  write_corpus(dir);
  auto missing = run_dagent(dir, server, {"ingest", "nope"});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("'nope' does not exist"));
  CHECK(run_dagent(dir, server, {"ingest"}).exit_code == 2);
  CHECK(run_dagent(dir, server, {"memory", "find", "x"}).exit_code == 2);
  CHECK(run_dagent(dir, server, {"memory", "search", "x", "-k", "0"}).exit_code == 2);

  // An empty memory answers with no hits and makes no embedding call.
  auto empty = run_dagent(dir, server, {"memory", "search", "anything", "--json"});
  CHECK(empty.exit_code == 0);
  CHECK(json::parse(empty.out).at("hits").as_array().empty());
  CHECK(server.requests_to("/v1/embeddings") == 0);

  REQUIRE(run_dagent(dir, server, {"ingest", "docs"}).exit_code == 0);
  SECTION("a dimension the index was not built with") {
    auto r = run_dagent(dir, server, {"memory", "search", "bread", "--set", "memory.dimensions=32"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("64-dimension") && Catch::Contains("returned 32"));
    dir.write("more/new.md", "A new file to embed.");
    auto add = run_dagent(dir, server, {"ingest", "more", "--set", "memory.dimensions=32"});
    CHECK(add.exit_code == 2);
    CHECK_THAT(add.err, Catch::Contains("returned 32"));
  }
  SECTION("a corrupt index") {
    const auto file = dir.path() / ".dagent/memory/memory.dgm";
    REQUIRE(fs::exists(file));
    auto bytes = read_text(file);
    bytes[bytes.size() / 2] ^= 0x5A;
    dir.write(".dagent/memory/memory.dgm", bytes);
    auto r = run_dagent(dir, server, {"memory", "search", "bread"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("memory.dgm") && Catch::Contains("corrupt"));
    dir.write(".dagent/memory/memory.dgm", bytes.substr(0, bytes.size() / 3));
    auto truncated = run_dagent(dir, server, {"memory", "search", "bread"});
    CHECK(truncated.exit_code == 2);
    CHECK_THAT(truncated.err, Catch::Contains("memory.dgm"));
  }
}

TEST_CASE("a process killed while saving leaves the previous index readable", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  write_corpus(dir);
  // 2.4 M tokens of text: more than the default TPM budget, which would make the ingest wait.
  dir.write("config.yaml", "memory: {chunk_chars: 400, chunk_overlap: 0}\n"
                           "performance: {rate_limiting: {enabled: false}}\n");
  REQUIRE(run_dagent(dir, server, {"ingest", "docs"}).exit_code == 0);
  const auto before = search_json(dir, server, "knight and bishop moves");

  // A corpus big enough that writing its index takes a while: 600 files of 40 chunks.
  std::string page;
  for (int i = 0; page.size() < 16000; ++i) page += "Paragraph " + std::to_string(i) + " of filler text about archives.\n";
  for (int f = 0; f < 600; ++f) dir.write("big/file" + std::to_string(f) + ".txt", std::to_string(f) + page);

  const auto folder = dir.path() / ".dagent/memory";
  const int watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(watch_fd >= 0);
  REQUIRE(inotify_add_watch(watch_fd, folder.c_str(), IN_CREATE) >= 0);
  ChildProcess child({DAGENT_BINARY, "ingest", "big", "-q"}, dir.path(), dagent_env(server));
  // Waits (no polling loop: poll blocks until inotify reports) for the temporary file of the save.
  bool saw_temp = false;
  while (!saw_temp) {
    pollfd p{watch_fd, POLLIN, 0};
    REQUIRE(poll(&p, 1, 120000) == 1);
    alignas(inotify_event) char buf[4096];
    const auto n = read(watch_fd, buf, sizeof buf);
    for (char* at = buf; n > 0 && at < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(at);
      if (ev->len && std::string_view(ev->name).starts_with("memory.dgm.tmp")) saw_temp = true;
      at += sizeof(inotify_event) + ev->len;
    }
  }
  child.kill(SIGKILL);
  const auto killed = child.wait();
  close(watch_fd);
  CHECK(killed.exit_code == 128 + SIGKILL);

  // The save was cut short: its temporary file is still there, the saved index is the old one.
  bool temp_left = false;
  for (const auto& e : fs::directory_iterator(folder))
    temp_left = temp_left || e.path().filename().string().starts_with("memory.dgm.tmp");
  CHECK(temp_left);
  const auto after = search_json(dir, server, "knight and bishop moves");
  CHECK(after == before);
  auto archives = search_json(dir, server, "filler text about archives");
  for (const auto& h : archives.at("hits").as_array())
    CHECK(std::string(h.at("metadata").at("source").as_string()).find("big") == std::string::npos);
  // Opening cleaned up the leftover, and the next ingest completes.
  for (const auto& e : fs::directory_iterator(folder)) CHECK_FALSE(e.path().filename().string().starts_with("memory.dgm.tmp"));
}

TEST_CASE("concurrent memory_add steps are embedded in batches", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  std::string plan = "plan:\n";
  for (int i = 1; i <= 10; ++i)
    plan += "  - {id: " + std::to_string(i) + ", action: memory_add, parameters: {text: \"note number " +
            std::to_string(i) + " about topic" + std::to_string(i) + "\", metadata: {n: " + std::to_string(i) + "}}}\n";
  plan += "  - {id: 11, action: memory_search, dependencies: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], parameters: {query: \"topic7\", k: 2}}\n";
  dir.write("task.yaml", plan);
  const bool batching = GENERATE(true, false);
  dir.write("config.yaml", std::string("performance:\n  parallel_execution: {max_parallel_steps: 16}\n"
                                       "  batch_embeddings: {enabled: ") +
                               (batching ? "true" : "false") + ", batch_size: 4, max_delay_ms: 200}\n");
  auto r = run_dagent(dir, server, {"run", "task.yaml", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto result = json::parse(r.out);
  // 10 adds in ceil(10 / 4) = 3 requests, or 10 without batching; then 1 for the search.
  CHECK(server.requests_to("/v1/embeddings") == (batching ? 3 : 10) + 1);
  CHECK(result.at("metrics").at("embedding_calls") == (batching ? 3 : 10) + 1);
  std::vector<std::int64_t> ids;
  for (const auto& s : result.at("steps").as_array())
    if (s.at("action") == "memory_add") ids.push_back(s.at("output").at("id").to_number<std::int64_t>());
  std::sort(ids.begin(), ids.end());
  CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
  const auto& hits = result.at("steps").as_array()[10].at("output").at("hits").as_array();
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].at("text") == "note number 7 about topic7");
  CHECK(hits[0].at("metadata").at("n") == 7);
  // Persisted: another process finds them.
  CHECK(search_json(dir, server, "topic3").at("hits").as_array()[0].at("text") == "note number 3 about topic3");
}

// Issue 12: two ingests of 200 files each both reported 200 chunks added and the index held 200;
// an ingest beside a loop of `memory search` failed with "cannot rename …tmp… No such file",
// because opening the index removed the other process's save in progress.
TEST_CASE("ingests and memory_add runs and searches in several processes on one memory lose nothing", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  dir.write("config.yaml", "memory: {chunk_chars: 2000, chunk_overlap: 0}\n"
                           "performance: {rate_limiting: {enabled: false}, batch_embeddings: {batch_size: 8}}\n");
  constexpr int k_sets = 3, k_files = 60, k_runs = 2, k_adds = 6;
  // One chunk per file; each ingest's window is 8 * batch_size = 64 chunks, so it stores in steps.
  for (int s = 0; s < k_sets; ++s)
    for (int f = 0; f < k_files; ++f)
      dir.write("set" + std::to_string(s) + "/file" + std::to_string(f) + ".txt",
                "set " + std::to_string(s) + " file " + std::to_string(f) + " shared words about ledgers");
  for (int r = 0; r < k_runs; ++r) {
    std::string plan = "plan:\n";
    for (int i = 1; i <= k_adds; ++i)
      plan += "  - {id: " + std::to_string(i) + ", action: memory_add, parameters: {text: \"run " + std::to_string(r) +
              " note " + std::to_string(i) + " shared words about ledgers\", metadata: {run: " + std::to_string(r) +
              "}}}\n";
    dir.write("add" + std::to_string(r) + ".yaml", plan);
  }

  std::vector<std::unique_ptr<ChildProcess>> writers;
  for (int s = 0; s < k_sets; ++s)
    writers.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{DAGENT_BINARY, "ingest", "set" + std::to_string(s), "--json", "-q"}, dir.path(),
        dagent_env(server)));
  for (int r = 0; r < k_runs; ++r)
    writers.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{DAGENT_BINARY, "run", "add" + std::to_string(r) + ".yaml", "--json", "-q"},
        dir.path(), dagent_env(server)));
  // Searches in new processes, one after another, until every writer has exited.
  std::atomic<bool> writers_done = false;
  std::vector<ProcessResult> searches;
  std::thread searcher([&] {
    do {
      searches.push_back(run_dagent(dir, server, {"memory", "search", "shared words about ledgers", "--json"}));
    } while (!writers_done);
  });
  std::vector<ProcessResult> results;
  for (auto& w : writers) results.push_back(w->wait());
  writers_done = true;
  searcher.join();

  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO("writer " << i << ": " << results[i].err);
    CHECK(results[i].exit_code == 0);
  }
  for (int s = 0; s < k_sets; ++s) {
    if (results[static_cast<std::size_t>(s)].exit_code != 0) continue;
    CHECK(json::parse(results[static_cast<std::size_t>(s)].out).at("chunks_added") == k_files);
  }
  for (const auto& s : searches) {
    INFO(s.err);
    CHECK(s.exit_code == 0);
  }
  // Every file's chunk and every note is in the index, once.
  auto all = run_dagent(dir, server, {"memory", "search", "shared words about ledgers", "-k", "1000", "--json"});
  INFO(all.err);
  REQUIRE(all.exit_code == 0);
  std::multiset<std::string> found;
  const auto hits = json::parse(all.out);
  for (const auto& h : hits.at("hits").as_array()) {
    const auto* source = h.at("metadata").as_object().if_contains("source");
    found.insert(source ? fs::path(std::string(source->as_string())).lexically_relative(dir.path()).string()
                        : std::string(h.at("text").as_string()));
  }
  std::multiset<std::string> expected;
  for (int s = 0; s < k_sets; ++s)
    for (int f = 0; f < k_files; ++f) expected.insert("set" + std::to_string(s) + "/file" + std::to_string(f) + ".txt");
  for (int r = 0; r < k_runs; ++r)
    for (int i = 1; i <= k_adds; ++i)
      expected.insert("run " + std::to_string(r) + " note " + std::to_string(i) + " shared words about ledgers");
  CHECK(found.size() == expected.size());
  CHECK(found == expected);
}

TEST_CASE("the embedding model is part of the memory index's identity", "[cli][memory]") {
  TestServer server;
  TempDir dir;
  write_corpus(dir);
  REQUIRE(run_dagent(dir, server, {"ingest", "docs"}).exit_code == 0);
  // The scripted server's vectors have the same dimension whatever the model: only the name tells.
  auto search = run_dagent(dir, server, {"memory", "search", "bread", "--set", "llm.embedding_model=other-embedder"});
  CHECK(search.exit_code == 2);
  CHECK_THAT(search.err, Catch::Contains("text-embedding-3-small") && Catch::Contains("other-embedder") &&
                             Catch::Contains("memory.path") && Catch::Contains("memory.dgm"));
  dir.write("more/new.md", "A new file to embed.");
  const auto embedded = server.requests_to("/v1/embeddings");
  auto ingest = run_dagent(dir, server, {"ingest", "more", "--set", "llm.embedding_model=other-embedder"});
  CHECK(ingest.exit_code == 2);
  CHECK_THAT(ingest.err, Catch::Contains("other-embedder"));
  CHECK(server.requests_to("/v1/embeddings") == embedded);  // refused before anything was embedded
  // The index is unchanged and still answers with its own model.
  CHECK(top_source(search_json(dir, server, "sourdough bread flour and salt")) == "bread.md");
}
