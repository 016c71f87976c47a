#include "net/tls_context.hpp"

#include <cstdlib>
#include <filesystem>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>

namespace dagent::net {
namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

int count_cas(SSL_CTX* ctx) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  int n = 0;
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i)
    if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_X509) ++n;
  return n;
}

}  // namespace

TlsContext::TlsContext() : context_(std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client)) {}
TlsContext::~TlsContext() = default;

boost::system::result<std::shared_ptr<TlsContext>, std::string> TlsContext::create(const std::string& extra_ca_file,
                                                                                  std::string_view ca_key) {
  std::shared_ptr<TlsContext> tls(new TlsContext());
  SSL_CTX* ctx = tls->context_->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);

  // Load the system bundle eagerly (a hashed CA directory would be consulted lazily and could
  // not be counted): SSL_CERT_FILE first, as OpenSSL does, then the built-in default file.
  const char* env = std::getenv(X509_get_default_cert_file_env());
  std::string system_file = env && *env ? env : X509_get_default_cert_file();
  std::error_code ec;
  // An empty or unreadable system bundle is not fatal by itself: the count below decides.
  if (std::filesystem::exists(system_file, ec) && SSL_CTX_load_verify_file(ctx, system_file.c_str()) != 1)
    ERR_clear_error();
  if (!extra_ca_file.empty()) {
    if (SSL_CTX_load_verify_file(ctx, extra_ca_file.c_str()) != 1)
      return "cannot load " + std::string(ca_key) + " '" + extra_ca_file + "': " + openssl_error();
  }
  tls->ca_count_ = count_cas(ctx);
  if (tls->ca_count_ == 0)
    return "no trusted CA certificates were loaded (system bundle '" + system_file +
           "'); install ca-certificates or set " + std::string(ca_key);
  return tls;
}

}  // namespace dagent::net
