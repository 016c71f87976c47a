#pragma once
// --replay: answers chat, streamed chat and embedding calls from a recording, matched by the
// fingerprint of the normalized request (not by order), and never opens a connection. Identical
// requests recorded several times are answered in their recorded order (then the last repeats).
// An embedding request whose batch was not recorded as such is answered input by input from all
// recorded batches: batching groups inputs by timing, which a replay does not reproduce.

#include <map>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "net/llm_provider.hpp"
#include "record/fingerprint.hpp"
#include "record/recording.hpp"

namespace dagent::record {

enum class StreamTiming { recorded, instant };

class ReplayProvider final : public net::LlmProvider {
 public:
  /// Indexes the "llm" events of `recording`. `timing`: replay streamed chunks at their
  /// recorded offsets (a timer on `executor`), or all at once.
  ReplayProvider(boost::asio::any_io_executor executor, const Recording& recording, StreamTiming timing);

  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat(net::ChatRequest request) override;
  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat_stream(
      net::ChatRequest request, std::function<void(std::string_view)> on_delta) override;
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(net::EmbedRequest request) override;
  /// Counts replayed calls and their recorded usage as if they were live (connections: 0), and
  /// each in its request's meter.
  net::ProviderMetrics metrics() const override { return metrics_; }
  // warm(): the default, none; a replay opens no connections.

  /// The error for a request with no recorded match: NetErrc::replay_mismatch, message "no
  /// recorded <kind> request matches this one (fingerprint …); the closest recorded request
  /// differs: <describe_difference>" or "…; the recording has no chat|embed requests". The closest
  /// is the same request made as the other chat kind if there is one, else by request_distance.
  net::LlmError no_match(const boost::json::object& wanted) const;

 private:
  struct Recorded {
    boost::json::object request;
    boost::json::object event;
  };
  /// The event answering the next call with this fingerprint, or null when none was recorded.
  const boost::json::object* next_event(const std::string& fingerprint);

  boost::asio::any_io_executor executor_;
  StreamTiming timing_;
  std::map<std::string, std::vector<Recorded>> by_fingerprint_;
  std::map<std::string, std::size_t> served_;  ///< fingerprint → answers given so far
  /// Indexes every recorded embedding by (model, dimensions, input) for embed()'s fallback.
  void index_inputs();
  bool indexed_inputs_ = false;
  std::map<std::string, std::vector<float>> inputs_;
  net::ProviderMetrics metrics_;
};

}  // namespace dagent::record
