#include "serve/run_events.hpp"

#include <algorithm>
#include <chrono>

#include <boost/json/serialize.hpp>

#include "text/json_utf8.hpp"

namespace dagent::serve {

namespace json = boost::json;

std::int64_t unix_ms_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

RunEvents::RunEvents(std::size_t max_bytes) : max_bytes_(max_bytes) {}

void RunEvents::append(std::string_view kind, json::object data) {
  data["at"] = unix_ms_now();
  // One line of data: serialize never writes a raw newline (they are escaped inside strings).
  std::string text = "event: " + std::string(kind) + "\nid: " + std::to_string(next_id_) +
                     "\ndata: " + text::serialize_valid(json::value(std::move(data))) + "\n\n";
  bytes_ += text.size();
  frames_.push_back({next_id_++, std::move(text)});
  // A waker may unsubscribe others (a session ends): call a copy.
  auto wakers = wakers_;
  for (auto& [token, wake] : wakers) wake();
}

void RunEvents::add(std::string_view kind, json::object data) {
  if (closed_) return;
  const bool answer = kind == "answer";
  const std::size_t limit = answer ? max_bytes_ / 2 : max_bytes_;
  if (bytes_ >= limit) {
    if (dropped_++ == 0) {
      append("dropped", json::object{{"reason", answer ? "answer deltas beyond half of serve.event_bytes are not streamed; "
                                                         "the whole answer is in the run's result"
                                                       : "events beyond serve.event_bytes are not kept; "
                                                         "the run's result has every step"}});
    }
    return;
  }
  append(kind, std::move(data));
}

void RunEvents::close(json::object data) {
  if (closed_) return;
  data["dropped"] = dropped_;
  append("end", std::move(data));
  closed_ = true;
}

std::string RunEvents::frames_after(std::uint64_t after, std::size_t max_bytes, std::uint64_t* last) const {
  std::string out;
  auto it = std::upper_bound(frames_.begin(), frames_.end(), after,
                             [](std::uint64_t id, const Frame& f) { return id < f.id; });
  for (; it != frames_.end(); ++it) {
    if (!out.empty() && out.size() + it->text.size() > max_bytes) break;
    out += it->text;
    *last = it->id;
  }
  return out;
}

std::uint64_t RunEvents::subscribe(std::function<void()> wake) {
  const auto token = next_token_++;
  wakers_.emplace(token, std::move(wake));
  return token;
}

void RunEvents::unsubscribe(std::uint64_t token) { wakers_.erase(token); }

}  // namespace dagent::serve
