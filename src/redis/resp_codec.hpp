#pragma once
// RESP without I/O: commands formatted and replies parsed by hiredis's formatter and reader,
// which never touch a socket, so our own Asio connection keeps its timeouts, TLS and
// cancellation.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

struct redisReader;

namespace dagent::redis {

/// One RESP2 reply, copied out of hiredis's objects.
struct Reply {
  enum class Type { string, array, integer, nil, status, error };
  Type type = Type::nil;
  std::string str;             ///< string, status and error replies
  std::int64_t integer = 0;    ///< integer replies
  std::vector<Reply> elements; ///< array replies

  bool is_error() const noexcept { return type == Type::error; }
  friend bool operator==(const Reply&, const Reply&) = default;
};

/// Formats commands and parses replies. Move-only; one per connection.
class RespCodec {
 public:
  /// Replies may be at most this large (bytes buffered without a complete reply).
  static constexpr std::size_t k_max_reply_bytes = 64u << 20;

  RespCodec();
  ~RespCodec();
  RespCodec(RespCodec&& other) noexcept;
  RespCodec& operator=(RespCodec&& other) noexcept;
  RespCodec(const RespCodec&) = delete;
  RespCodec& operator=(const RespCodec&) = delete;

  /// The RESP array of bulk strings for `args` (binary-safe), appended to `out`.
  static void format(const std::vector<std::string>& args, std::string& out);

  /// Adds bytes read from the server.
  void feed(std::string_view bytes);
  /// The next complete reply, nullopt until one is complete; an error (with a message) when the
  /// bytes are not RESP or a reply outgrows k_max_reply_bytes. After an error the codec is spent.
  boost::system::result<std::optional<Reply>, std::string> next();

 private:
  redisReader* reader_ = nullptr;
};

}  // namespace dagent::redis
