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
// The size probe asks for bytes 0-kSizeProbeLastByte; its body is those, or an error document (a server ignoring
// Range sends a small object whole).
constexpr uint64_t kSizeProbeLastByte = 1023;
constexpr size_t kSizeProbeTextLimit = 1 << 20;

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
      uint64_t size = 0;
      std::string etag;
      if (Status status = object_size(object->key, &size, &etag); !status.ok()) return status;
      object->size = size;
      object->check_etag(etag);
    }
    *out = std::move(object);
    return {};
  }

  // The size comes from a GET of the first bytes rather than a HEAD: an answer to HEAD has no body, so S3's error
  // document (NoSuchBucket rather than NoSuchKey, SignatureDoesNotMatch rather than AccessDenied) would be lost.
  // A 206 carries the size in Content-Range. An answer that gives no usable size falls back to HEAD.
  Status object_size(const std::string& key, uint64_t* size, std::string* etag) {
    http::HttpCall call;
    call.method = "GET";
    // No pieces: the bytes (or an error document) land in call.text. Not "bytes=0-0": s3rver reads an end of 0 as
    // "to the end" and sends the whole object; a few bytes more cost nothing.
    call.range = http::ByteRange{0, kSizeProbeLastByte};
    call.text_limit = kSizeProbeTextLimit;
    service_->prepare(call, bucket_, key, {});
    Status status = service_->execute(call, bucket_);
    // An empty object has no byte 0: S3 answers 416 InvalidRange (and s3rver a malformed "bytes 0-0/0").
    if (!status.ok() && (status.s3_code() == "InvalidRange" || status.kind() == ErrorKind::kIntegrity)) {
      http::HttpCall head;
      head.method = "HEAD";
      service_->prepare(head, bucket_, key, {});
      status = service_->execute(head, bucket_);
      if (!status.ok()) return status;
      *size = head.response.content_length.value_or(0);
      *etag = head.response.etag;
      return {};
    }
    if (!status.ok()) return status;
    const auto& range = call.response.content_range;
    if (call.response.status == 206 && range && range->complete_length) {
      *size = *range->complete_length;
    } else if (call.response.status == 200 && call.response.content_length) {
      *size = *call.response.content_length;  // a server that ignored Range sent the whole (small) object
    } else {
      return Status(ErrorKind::kIntegrity, call.describe() + ": the answer to a GET of the first bytes gives no object size");
    }
    *etag = call.response.etag;
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
