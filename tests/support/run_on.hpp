#pragma once
// Runs one awaitable to completion on a loop, for tests of coroutine APIs.

#include <exception>
#include <optional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

namespace dagent::test {

/// Stores a coroutine's result; rethrows its exception. A named type: g++ 12 mishandles
/// capturing coroutine lambdas.
template <class T>
struct ResultSink {
  std::optional<T>* out;
  void operator()(std::exception_ptr e, T value) const {
    if (e) std::rethrow_exception(e);
    *out = std::move(value);
  }
};

/// Spawns `op` on `io`, runs the loop until nothing is left, and returns the result.
template <class T>
T run_on(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  std::optional<T> out;
  boost::asio::co_spawn(io, std::move(op), ResultSink<T>{&out});
  io.restart();
  io.run();
  REQUIRE(out.has_value());
  return std::move(*out);
}

}  // namespace dagent::test
