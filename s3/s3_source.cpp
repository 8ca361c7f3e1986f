// The s3:// source: s3://bucket/prefix roots; ranged GETs (http/ranged_get.hpp) signed with SigV4 and spread over
// the configured endpoints by the bucket's router, S3 error documents in the errors.
#include "s3/s3_source.hpp"

#include "engine/engine_impl.hpp"
#include "http/ranged_get.hpp"
#include "s3/s3_service.hpp"

namespace ringfetch::s3 {
namespace {

constexpr uint64_t kS3MaxGap = 2 << 20;  // ~ S3 first-byte latency (20-40 ms) x ~80 MB/s per connection

class S3Source final : public engine::Source {
 public:
  S3Source(std::shared_ptr<S3Service> service, std::shared_ptr<http::Router> router, std::string bucket,
           std::string prefix, unsigned connections)
      : service_(std::move(service)), router_(std::move(router)), bucket_(std::move(bucket)),
        prefix_(std::move(prefix)), connections_(connections) {}

  engine::SourceDefaults defaults() const override {
    engine::SourceDefaults d;
    d.max_gap = kS3MaxGap;
    d.max_in_flight = std::max(1u, connections_) * static_cast<unsigned>(service_->endpoint_count());
    return d;
  }

  Status open_object(const std::string& key, bool need_size, std::shared_ptr<engine::SourceObject>* out) override {
    auto object = std::make_shared<http::RemoteObject>();
    object->key = prefix_.empty() ? key : engine::join_path(prefix_, key);
    object->display = "s3://" + bucket_ + "/" + object->key;
    std::string target;
    object->owned_policy = service_->object_request(bucket_, object->key, &target);
    object->policy = object->owned_policy.get();
    const size_t question = target.find('?');
    object->path = target.substr(0, question);
    if (question != std::string::npos) object->query = target.substr(question + 1);
    if (need_size) {
      if (Status status = http::probe_size(*router_, *object); !status.ok()) return status;
    }
    *out = std::move(object);
    return {};
  }

  void start_read(engine::Worker& worker, engine::ReadTask* task) override {
    http::RangedGet::start(worker, *router_, task);
  }

  void cancel_read(engine::Worker&, engine::ReadTask* task) override { http::RangedGet::cancel(task); }
  uint64_t measured_max_gap() const override { return router_->timing()->gap_bytes(); }

 private:
  std::shared_ptr<S3Service> service_;
  std::shared_ptr<http::Router> router_;
  std::string bucket_;
  std::string prefix_;
  unsigned connections_;
};

}  // namespace

Status make_s3_source(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                      std::unique_ptr<engine::Source>* out) {
  std::shared_ptr<S3Service> service;
  if (Status created = S3Service::create(engine, options.s3, options.http, &service); !created.ok()) return created;
  // The bucket's hosts are resolved here, on the thread that opens the store.
  std::shared_ptr<http::Router> router;
  if (Status routed = service->router(root.host, &router); !routed.ok()) return routed;
  std::string prefix = root.path;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  *out = std::make_unique<S3Source>(std::move(service), std::move(router), root.host, std::move(prefix),
                                    options.http.connections);
  return {};
}

}  // namespace ringfetch::s3
