#include "redis/resp_codec.hpp"

#include <stdexcept>
#include <utility>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

namespace dagent::redis {
namespace {

Reply copy_reply(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = Reply::Type::string; break;
    case REDIS_REPLY_ARRAY: out.type = Reply::Type::array; break;
    case REDIS_REPLY_INTEGER: out.type = Reply::Type::integer; break;
    case REDIS_REPLY_STATUS: out.type = Reply::Type::status; break;
    case REDIS_REPLY_ERROR: out.type = Reply::Type::error; break;
    default: out.type = Reply::Type::nil; break;
  }
  if (r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS || r.type == REDIS_REPLY_ERROR)
    out.str.assign(r.str, r.len);
  if (r.type == REDIS_REPLY_INTEGER) out.integer = r.integer;
  if (r.type == REDIS_REPLY_ARRAY) {
    out.elements.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(copy_reply(*r.element[i]));
  }
  return out;
}

}  // namespace

RespCodec::RespCodec() : reader_(redisReaderCreate()) {
  if (reader_ == nullptr) throw std::bad_alloc();
}

RespCodec::~RespCodec() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

RespCodec::RespCodec(RespCodec&& other) noexcept : reader_(std::exchange(other.reader_, nullptr)) {}

RespCodec& RespCodec::operator=(RespCodec&& other) noexcept {
  std::swap(reader_, other.reader_);
  return *this;
}

void RespCodec::format(const std::vector<std::string>& args, std::string& out) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (len < 0 || cmd == nullptr) throw std::bad_alloc();
  out.append(cmd, static_cast<std::size_t>(len));
  redisFreeCommand(cmd);
}

void RespCodec::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) throw std::bad_alloc();
}

boost::system::result<std::optional<Reply>, std::string> RespCodec::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK)
    return std::string("invalid RESP from the server: ") + reader_->errstr;
  if (raw == nullptr) {
    // Why: hiredis buffers a bulk string of any declared length (up to 512 MB); we bound it.
    if (reader_->len - reader_->pos > k_max_reply_bytes) return std::string("a reply from the server is too large");
    return std::optional<Reply>();
  }
  auto* reply = static_cast<redisReply*>(raw);
  Reply out = copy_reply(*reply);
  freeReplyObject(reply);
  return std::optional<Reply>(std::move(out));
}

}  // namespace dagent::redis
