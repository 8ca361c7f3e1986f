// HttpSource: the http:// and https:// source. A fetch's requests become ranged GETs on the HttpClient; the
// first response's ETag is pinned and every later response is compared with it (and sent as If-Match), so an
// object replaced mid-read is an error, never mixed bytes.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "engine/source.hpp"
#include "engine/url.hpp"
#include "http/http_client.hpp"

namespace ringfetch::http {

class HttpObject final : public engine::SourceObject {
 public:
  std::string path;  // percent-encoded request path
  // Compares `etag` with the pinned one, pinning it if none is; kIntegrity when it differs.
  Status check_etag(const std::string& etag);
  std::string pinned_etag();

 private:
  std::mutex mutex_;
  std::string etag_;
};

// A ranged GET of task's bytes of `object` into its pieces, pinning and checking the ETag; done() completes the
// task and frees the call. Layers above add signing and their own error parsing to the returned call.
HttpCall* make_ranged_get(HttpObject* object, engine::ReadTask* task);
// Maps 412 (object changed) and 416 (past the end) of a ranged GET to clear errors; other statuses -> otherwise.
Status ranged_get_error(const ResponseHead& head, const std::string& body, const std::string& what, Status otherwise);

// Percent-encodes a key for a URL path: unreserved characters and '/' stay, everything else becomes %XX.
std::string encode_path(std::string_view key);

class HttpSource final : public engine::Source {
 public:
  static constexpr uint64_t kDefaultMaxGap = 1 << 20;  // ~ first-byte latency x per-connection bandwidth on a LAN

  static Status create(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                       std::unique_ptr<engine::Source>* out);

  engine::SourceDefaults defaults() const override;
  Status open_object(const std::string& key, bool need_size, std::shared_ptr<engine::SourceObject>* out) override;
  void start_read(engine::Worker& worker, engine::ReadTask* task) override;
  void cancel_read(engine::Worker& worker, engine::ReadTask* task) override;

  HttpClient& client() noexcept { return *client_; }

 private:
  HttpSource(engine::Url root, StoreOptions options) : root_(std::move(root)), options_(std::move(options)) {}
  engine::Url root_;
  StoreOptions options_;
  std::unique_ptr<HttpClient> client_;
};

}  // namespace ringfetch::http
