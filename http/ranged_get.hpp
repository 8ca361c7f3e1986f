// The ranged GET, the one read of the network sources (http:// and s3://). An object's first answer pins its
// ETag; later requests send it as If-Match and every answer is compared with it (some servers ignore If-Match),
// so an object replaced mid-read is an error, never mixed bytes. The body lands in the read task's pieces, and a
// retry resumes at the byte reached. Object sizes come from a GET of the first bytes rather than a HEAD: an answer
// to HEAD has no body, so the server's error document (S3's NoSuchBucket or SignatureDoesNotMatch) would be lost.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "engine/source.hpp"
#include "http/call.hpp"

namespace ringfetch::http {

// An object of a network source: where it lives and the policy its requests follow (plain HTTP, or S3 signing and
// error documents), plus the pinned ETag.
class RemoteObject final : public engine::SourceObject {
 public:
  std::string path;   // percent-encoded request path
  std::string query;  // rarely anything
  const ResponsePolicy* policy = &ResponsePolicy::plain();
  std::shared_ptr<const ResponsePolicy> owned_policy;  // when the policy is the object's own (S3 signing)

  // Compares `etag` with the pinned one, pinning it if none is; kIntegrity when it differs.
  Status check_etag(const std::string& etag);
  // Writes the pinned ETag into *out (assigned in place: no allocation once *out has room).
  void copy_pinned_etag(std::string* out);

 private:
  std::mutex mutex_;
  std::string etag_;
};

// A read task's ranged GET, kept with the task and reused for every read it makes.
class RangedGet final : public engine::SourceRead, public ResponsePolicy {
 public:
  // Starts a ranged GET of task's bytes of its object on `router` (worker thread); completes the task.
  static void start(engine::Worker& worker, Router& router, engine::ReadTask* task);
  static void cancel(engine::ReadTask* task);

  Status decorate(const Call& call, RequestHead& head) const override;
  Status check_head(const ResponseHead& head) const override;
  Judgement judge(const ResponseHead& head, std::string_view body, const std::string& what) const override;

 private:
  static void on_done(Call& call, void* context, const Status& status);
  Call call_;
  RemoteObject* object_ = nullptr;
  engine::ReadTask* task_ = nullptr;
};

// Size (and ETag) of `object`: a GET of its first bytes (206 carries the size in Content-Range; a server that ignores
// Range sends a small object whole), falling back to HEAD for an empty object or an answer without a size. From a
// thread that is not an engine thread.
Status probe_size(Router& router, RemoteObject& object);

// Percent-encodes a key for a URL path: unreserved characters and '/' stay, everything else becomes %XX.
std::string encode_path(std::string_view key);

}  // namespace ringfetch::http
