// Placeholder until the Streamable HTTP transport lands: every open() fails with a clear message.
#include "mcp/transport.hpp"

namespace dagent::mcp {

namespace {

class UnavailableTransport final : public Transport {
 public:
  explicit UnavailableTransport(HttpEndpoint endpoint) : endpoint_(std::move(endpoint)) {}
  void set_handler(TransportHandler) override {}
  boost::asio::awaitable<boost::system::result<void, std::string>> open() override {
    co_return "MCP server '" + endpoint_.server + "': the Streamable HTTP transport is not built yet";
  }
  boost::asio::awaitable<boost::system::result<void, std::string>> send(boost::json::object) override {
    co_return "MCP server '" + endpoint_.server + "': not open";
  }
  boost::asio::awaitable<void> close() override { co_return; }
  std::string describe() const override { return "http: " + endpoint_.url; }

 private:
  HttpEndpoint endpoint_;
};

}  // namespace

std::unique_ptr<Transport> make_http_transport(boost::asio::any_io_executor, HttpEndpoint endpoint) {
  return std::make_unique<UnavailableTransport>(std::move(endpoint));
}

}  // namespace dagent::mcp
