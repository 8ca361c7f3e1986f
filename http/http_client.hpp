// HttpClient: one HTTP endpoint (scheme, host, port) — its addresses (AddressBook: resolved off the rings, spread
// over, cooled down on failure), its TLS context, and per-worker pools of keep-alive connections with a wait queue.
// It is also the Router of a single-endpoint source (http://); the S3 layer routes over several of them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "http/call.hpp"
#include "http/connection.hpp"
#include "http/resolver.hpp"
#include "ringfetch/options.hpp"

namespace ringfetch::http {

class HttpClient final : public Router {
 public:
  // Resolves the endpoint's host on the calling thread (not an engine thread). Errors name the host.
  static Status create(Engine::Impl& engine, Endpoint endpoint, HttpOptions options, std::shared_ptr<TlsContext> tls,
                       std::unique_ptr<HttpClient>* out);
  ~HttpClient() override;  // hands idle connections to their workers to close
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Pool (worker thread only). acquire grants a connection (idle, or new while under the per-worker limit) to the
  // attempt at once, or queues it; release keeps the connection for the next attempt (or closes it) and serves the
  // queue; withdraw takes a queued attempt out.
  void acquire(engine::Worker& worker, Attempt* attempt);
  void release(engine::Worker& worker, std::unique_ptr<Connection> connection, bool keep);
  void withdraw(engine::Worker& worker, Attempt* attempt);
  // Closes the worker's idle connections (after one turned out closed by the server while it sat idle).
  void drop_idle(engine::Worker& worker);

  Route route(uint64_t) override { return {this, 0}; }
  const HttpOptions& options() const override { return options_; }
  Engine::Impl& engine() const override { return engine_; }
  RequestTiming* timing() override { return &timing_; }

  const Endpoint& endpoint() const noexcept { return endpoint_; }
  AddressBook& addresses() const noexcept { return *addresses_; }
  std::string url_for(const std::string& path) const;

 private:
  struct Pool;
  HttpClient(Engine::Impl& engine, Endpoint endpoint, HttpOptions options, std::shared_ptr<TlsContext> tls,
             std::shared_ptr<AddressBook> addresses);

  Engine::Impl& engine_;
  Endpoint endpoint_;
  HttpOptions options_;
  std::shared_ptr<TlsContext> tls_;
  std::shared_ptr<AddressBook> addresses_;
  RequestTiming timing_{options_};
  unsigned per_worker_ = 1;
  std::vector<std::shared_ptr<Pool>> pools_;
};

// The endpoint of a URL's host and port; the host is not resolved here.
Endpoint endpoint_for(const std::string& scheme, const std::string& host, uint16_t port, bool ipv6_literal,
                      std::string host_header);

}  // namespace ringfetch::http
