#pragma once
// The process's TLS client context: the CA store is loaded once and checked; peers are always
// verified.

#include <memory>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace boost::asio::ssl {
class context;
}

namespace dagent::net {

class TlsContext {
 public:
  /// Loads the system CA bundle (SSL_CERT_FILE, else OpenSSL's default file) and `extra_ca_file`
  /// (PEM) when given. Fails when a file cannot be read or zero CA certificates were loaded;
  /// messages name the file as the config key `ca_key`.
  static boost::system::result<std::shared_ptr<TlsContext>, std::string> create(const std::string& extra_ca_file,
                                                                                std::string_view ca_key = "llm.ca_file");

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  /// Number of CA certificates in the trust store.
  int ca_count() const noexcept { return ca_count_; }
  boost::asio::ssl::context& native() noexcept { return *context_; }

 private:
  TlsContext();
  std::unique_ptr<boost::asio::ssl::context> context_;
  int ca_count_ = 0;
};

}  // namespace dagent::net
