// HttpSource: the http:// and https:// source. Ranged GETs (http/ranged_get.hpp) on one endpoint's HttpClient.
#pragma once

#include <memory>
#include <string>

#include "engine/source.hpp"
#include "engine/url.hpp"
#include "http/http_client.hpp"

namespace ringfetch::http {

class HttpSource final : public engine::Source {
 public:
  static constexpr uint64_t kDefaultMaxGap = 1 << 20;  // ~ first-byte latency x per-connection bandwidth on a LAN

  static Status create(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                       std::unique_ptr<engine::Source>* out);

  engine::SourceDefaults defaults() const override;
  Status open_object(const std::string& key, bool need_size, std::shared_ptr<engine::SourceObject>* out) override;
  void start_read(engine::Worker& worker, engine::ReadTask* task) override;
  void cancel_read(engine::Worker& worker, engine::ReadTask* task) override;
  uint64_t measured_max_gap() const override { return client_->timing()->gap_bytes(); }

  HttpClient& client() noexcept { return *client_; }

 private:
  HttpSource(engine::Url root, StoreOptions options) : root_(std::move(root)), options_(std::move(options)) {}
  engine::Url root_;
  StoreOptions options_;
  std::unique_ptr<HttpClient> client_;
};

}  // namespace ringfetch::http
