// HttpClient: runs HTTP/1.1 calls over per-worker keep-alive connection pools, with timeouts, retries (backoff
// with jitter, resuming a ranged body from the byte it reached) and a retry budget. A call's response body lands
// either in destination pieces (ranged GETs: READ_FIXED into registered memory) or, bounded, in a string
// (error documents, XML, small bodies). Layers above add signing and response checks through hooks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/source.hpp"
#include "http/connection.hpp"
#include "http/request_writer.hpp"
#include "http/response_head_parser.hpp"
#include "ringfetch/options.hpp"

namespace ringfetch::http {

struct HttpCall {
  static constexpr size_t kDefaultTextLimit = 1 << 20;

  // Request
  std::string method = "GET";
  std::string path = "/";  // percent-encoded origin-form path
  std::string query;
  std::vector<RequestField> fields;
  std::optional<ByteRange> range;    // a ranged GET: 206 must carry exactly this (remaining) range
  std::span<const std::byte> body;   // request body (sent with Content-Length)
  bool send_content_length = false;  // Content-Length even for an empty body (PUT of zero bytes)

  // Response body destination: pieces for a successful ranged GET, else the bounded string `text`.
  std::vector<engine::ReadPiece> pieces;
  size_t text_limit = kDefaultTextLimit;

  // Hooks (optional). decorate runs before every attempt (e.g. SigV4); check_head sees every response head and
  // may refuse it (e.g. ETag changed); error_for_status turns a non-2xx response into a Status (e.g. S3 XML);
  // retryable_status says which statuses are worth another attempt.
  std::function<Status(RequestHead&)> decorate;
  std::function<Status(const ResponseHead&)> check_head;
  std::function<Status(const ResponseHead&, const std::string& body, const std::string& what)> error_for_status;
  std::function<bool(const ResponseHead&, const std::string& body)> retryable_status;

  // Completion: called once, on the worker thread. The call may be destroyed inside it.
  std::function<void(const Status&)> done;

  // How messages name the call ("GET s3://bucket/key"); default: method and URL. The range is appended.
  std::string display;

  // Results
  std::string what;      // the full description, built only when a message needs it (see describe())
  ResponseHead response;  // head of the final response
  std::string text;       // body of a non-piece response
  unsigned attempts = 0;

  void* exchange = nullptr;  // the client's state while the call runs (worker thread only)
  bool keep_response = true;  // copy the final head into `response` (ranged GETs into pieces do not need it)

  // "GET http://host/path bytes a-b": `what` when built, else from display (or method and path) and the range.
  std::string describe() const;
};

class HttpClient {
 public:
  HttpClient(Engine::Impl& engine, Endpoint endpoint, HttpOptions options, std::shared_ptr<TlsContext> tls);
  ~HttpClient();  // closes idle connections on their workers
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts `call` on `worker` (must be called on that worker's thread).
  void start(engine::Worker& worker, HttpCall* call);
  // Cancels a running call (worker thread only): it completes soon with kCancelled. No-op once it has completed.
  static void cancel(HttpCall* call);
  // Runs `call` to completion from a thread that is not an engine thread; returns its status.
  Status execute(HttpCall& call);

  const Endpoint& endpoint() const noexcept { return endpoint_; }
  const HttpOptions& options() const noexcept { return options_; }
  Engine::Impl& engine() const noexcept { return engine_; }
  std::string url_for(const std::string& path) const;

  // Pool internals, used by the exchange (worker thread only).
  struct Pool;
  Pool& pool(const engine::Worker& worker) { return *pools_[worker.id()]; }
  unsigned connections_per_worker() const noexcept { return per_worker_; }
  TlsContext* tls() const noexcept { return tls_.get(); }
  std::shared_ptr<TlsContext> tls_shared() const noexcept { return tls_; }

 private:
  Engine::Impl& engine_;
  Endpoint endpoint_;
  HttpOptions options_;
  std::shared_ptr<TlsContext> tls_;
  unsigned per_worker_ = 1;
  std::vector<std::shared_ptr<Pool>> pools_;
};

// Default classification used when a call has no hook: 5xx and 429 are worth retrying.
bool is_retryable_http_status(int status);
// The default error for a non-2xx response: kHttpStatus, "<what>: HTTP <status> <reason>: <start of body>".
Status status_error(const ResponseHead& head, const std::string& body, const std::string& what);

}  // namespace ringfetch::http
