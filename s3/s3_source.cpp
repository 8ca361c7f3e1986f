// The s3:// source: s3://bucket/prefix roots; ranged GETs signed with SigV4 and spread over the configured
// endpoints, the ETag pinned from the first answer (If-Match on the rest, and every answer compared, since some
// servers ignore If-Match), S3 error documents in the errors.
#include "s3/s3_source.hpp"

#include "engine/engine_impl.hpp"
#include "http/http_source.hpp"
#include "s3/s3_service.hpp"

namespace ringfetch::s3 {
namespace {

constexpr uint64_t kS3MaxGap = 2 << 20;  // ~ S3 first-byte latency (20-40 ms) x ~80 MB/s per connection

class S3Source final : public engine::Source {
 public:
  S3Source(std::shared_ptr<S3Service> service, std::string bucket, std::string prefix, unsigned connections)
      : service_(std::move(service)), bucket_(std::move(bucket)), prefix_(std::move(prefix)),
        connections_(connections) {}

  engine::SourceDefaults defaults() const override {
    engine::SourceDefaults d;
    d.max_gap = kS3MaxGap;
    d.max_in_flight = std::max(1u, connections_) * static_cast<unsigned>(service_->endpoint_count());
    return d;
  }

  Status open_object(const std::string& key, bool need_size, std::shared_ptr<engine::SourceObject>* out) override {
    auto object = std::make_shared<http::HttpObject>();
    object->key = prefix_.empty() ? key : engine::join_path(prefix_, key);
    object->path = object->key;
    object->display = "s3://" + bucket_ + "/" + object->key;
    if (need_size) {
      http::HttpCall call;
      call.method = "HEAD";
      service_->prepare(call, bucket_, object->key, {});
      Status status = service_->execute(call, bucket_);
      if (!status.ok()) return status;
      object->size = call.response.content_length.value_or(0);
      object->check_etag(call.response.etag);
    }
    *out = std::move(object);
    return {};
  }

  void start_read(engine::Worker& worker, engine::ReadTask* task) override {
    auto* object = static_cast<http::HttpObject*>(task->object.get());
    http::HttpCall* call = http::make_ranged_get(object, task);
    service_->prepare(*call, bucket_, object->key, {});
    call->error_for_status = [](const http::ResponseHead& head, const std::string& body, const std::string& what) {
      return http::ranged_get_error(head, body, what, s3_error(head, body, what));
    };
    service_->start(worker, call, bucket_);
  }

  void cancel_read(engine::Worker&, engine::ReadTask* task) override {
    if (task->source_state != nullptr) http::HttpClient::cancel(static_cast<http::HttpCall*>(task->source_state));
  }

 private:
  std::shared_ptr<S3Service> service_;
  std::string bucket_;
  std::string prefix_;
  unsigned connections_;
};

}  // namespace

Status make_s3_source(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                      std::unique_ptr<engine::Source>* out) {
  std::shared_ptr<S3Service> service;
  Status created = S3Service::create(engine, options.s3, options.http, &service);
  if (!created.ok()) return created;
  std::string prefix = root.path;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  *out = std::make_unique<S3Source>(std::move(service), root.host, std::move(prefix), options.http.connections);
  return {};
}

}  // namespace ringfetch::s3
