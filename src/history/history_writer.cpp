#include "history/history_writer.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

namespace dagent::history {

namespace asio = boost::asio;

HistoryWriter::HistoryWriter(WriterOptions options) : options_(std::move(options)) {}

HistoryWriter::~HistoryWriter() { thread_.join(); }

void HistoryWriter::submit(RunRecord run) {
  if (queued_.fetch_add(1) >= k_max_queued) {
    queued_.fetch_sub(1);
    warn("history: " + options_.path.string() + ": " + std::to_string(k_max_queued) +
         " runs are waiting to be written; run " + run.run.run_id + " is not recorded");
    return;
  }
  asio::post(thread_, [this, run = std::move(run)] {
    write(run);
    queued_.fetch_sub(1);
  });
}

std::vector<std::string> HistoryWriter::flush() {
  asio::post(thread_, asio::use_future).get();
  std::lock_guard lock(warnings_mutex_);
  return std::exchange(warnings_, {});
}

void HistoryWriter::warn(std::string message) {
  std::lock_guard lock(warnings_mutex_);
  if (std::find(warnings_.begin(), warnings_.end(), message) == warnings_.end()) warnings_.push_back(std::move(message));
}

void HistoryWriter::write(const RunRecord& run) {
  const std::string not_recorded = "; run " + run.run.run_id + " is not in the history (the run itself is unaffected)";
  if (options_.path.empty()) {
    warn("history: no state folder (neither XDG_STATE_HOME nor HOME is set); set history.path" + not_recorded);
    return;
  }
  if (!store_) {
    auto opened = HistoryStore::open(options_.path, options_.busy_timeout_ms);
    if (!opened) {
      warn("history: " + opened.error().message + not_recorded);
      return;
    }
    store_.emplace(std::move(*opened));
  }
  if (auto written = store_->record({run}); !written) {
    warn("history: " + written.error().message + not_recorded);
    store_.reset();  // opened again for the next run: the lock or the file may have changed
    return;
  }
  if (options_.keep_days > 0) {
    using namespace std::chrono;
    const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    if (auto pruned = store_->prune(now - std::int64_t{options_.keep_days} * 86'400'000); !pruned)
      warn("history: " + pruned.error().message);
  }
}

}  // namespace dagent::history
