#pragma once
// One run's Server-Sent Events: a bounded buffer every subscriber reads from at its own pace.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace dagent::serve {

/// The events of one run as SSE frames (`event: KIND`, `id: SEQ`, `data: JSON`), numbered from 1.
/// Each event's data carries `at` (Unix ms when it was added). Memory is bounded by `max_bytes`:
/// answer deltas stop being kept at half of it, other events at all of it, and the first event
/// not kept is replaced by one `dropped` event; `end` is always kept. Subscribers share the
/// buffer (a slow one costs no copy) and are woken when an event is added. Not thread-safe: use
/// it on the loop.
class RunEvents {
 public:
  explicit RunEvents(std::size_t max_bytes);
  RunEvents(const RunEvents&) = delete;
  RunEvents& operator=(const RunEvents&) = delete;

  /// Adds an event of `kind` with `data` (made valid UTF-8; `at` added) unless the buffer is
  /// full; after close() nothing more is added.
  void add(std::string_view kind, boost::json::object data);
  /// Adds the `end` event (with `dropped`: how many events were not kept) and closes the stream.
  void close(boost::json::object data);

  bool closed() const noexcept { return closed_; }
  std::uint64_t last_id() const noexcept { return next_id_ - 1; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  std::size_t bytes() const noexcept { return bytes_; }
  /// The frames of the events numbered after `after`, at most about `max_bytes` of them (at
  /// least one); `*last` is set to the id of the last one returned (unchanged when none).
  std::string frames_after(std::uint64_t after, std::size_t max_bytes, std::uint64_t* last) const;

  /// Calls `wake` after each event added until unsubscribe(token).
  std::uint64_t subscribe(std::function<void()> wake);
  void unsubscribe(std::uint64_t token);
  std::size_t subscribers() const noexcept { return wakers_.size(); }

 private:
  void append(std::string_view kind, boost::json::object data);

  struct Frame {
    std::uint64_t id;
    std::string text;
  };
  std::vector<Frame> frames_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::uint64_t next_id_ = 1;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
  std::map<std::uint64_t, std::function<void()>> wakers_;
  std::uint64_t next_token_ = 1;
};

/// Unix milliseconds now (the `at` of events).
std::int64_t unix_ms_now();

}  // namespace dagent::serve
