// S3Client: the S3 operations beside ranged reads (which go through Store::open("s3://bucket/prefix")):
// HEAD, PUT, multipart upload with parallel parts, ListObjectsV2 with paging, DeleteObject(s), buckets.
// Every call is signed with SigV4 and retried on S3's transient errors; failures throw ringfetch::Error with
// kind kS3 and s3_code() set to S3's <Code> (NoSuchKey, AccessDenied, InvalidAccessKeyId, ...).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringfetch/engine.hpp"
#include "ringfetch/s3/s3_options.hpp"
#include "ringfetch/store.hpp"

namespace ringfetch::s3 {

class S3Service;

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;
  std::string last_modified;  // as S3 writes it (ISO 8601 in listings, RFC 1123 from HEAD)
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> common_prefixes;  // with a delimiter
  std::string next_continuation_token;       // empty on the last page
  bool truncated = false;
};

struct UploadStats {
  uint64_t parts = 0;  // 1 for a single PUT
  std::string etag;
};

// Progress and cancellation of one upload.
struct UploadControl {
  // When it becomes true (set from any thread, e.g. on Ctrl-C), no further part is started and a multipart
  // upload is aborted at once; parts still in flight are waited for (the abort is repeated if one of them landed
  // after it, as S3 documents), and the call throws Error(kCancelled). Checked before a single PUT too.
  const std::atomic<bool>* cancel = nullptr;
  // Bytes acknowledged by the server so far (parts as they complete); called from an engine thread.
  std::function<void(uint64_t done_bytes)> on_progress;
};

// An upload that was started and neither completed nor aborted (S3 keeps, and bills, its parts).
struct MultipartUploadInfo {
  std::string key;
  std::string upload_id;
  std::string initiated;  // as S3 writes it (ISO 8601)
};

class S3Client {
 public:
  // Resolves configuration (credentials, region, endpoints) once. Throws Error on bad configuration.
  static S3Client open(Engine& engine, S3Options options = {}, HttpOptions http = {});
  ~S3Client();
  S3Client(S3Client&&) noexcept;
  S3Client& operator=(S3Client&&) noexcept;

  ObjectInfo head(std::string_view bucket, std::string_view key);
  // Single PUT; returns the ETag.
  std::string put(std::string_view bucket, std::string_view key, std::span<const std::byte> body);
  // Multipart upload in parts of options.multipart_part_size, options.multipart_parallel in flight. On any
  // failure the upload is aborted (no orphan parts) and the error rethrown.
  UploadStats put_multipart(std::string_view bucket, std::string_view key, std::span<const std::byte> body,
                            const UploadControl& control = {});
  // put() below options.multipart_threshold, put_multipart() from it on.
  UploadStats upload(std::string_view bucket, std::string_view key, std::span<const std::byte> body,
                     const UploadControl& control = {});
  // ListMultipartUploads under prefix, following the markers: the uploads in progress (or left behind).
  std::vector<MultipartUploadInfo> list_multipart_uploads(std::string_view bucket, std::string_view prefix);
  // AbortMultipartUpload: the upload's parts are freed. Throws Error (s3_code NoSuchUpload when it is not open).
  void abort_multipart_upload(std::string_view bucket, std::string_view key, std::string_view upload_id);

  ListPage list_page(std::string_view bucket, std::string_view prefix, std::string_view continuation_token = {},
                     unsigned max_keys = 1000, std::string_view delimiter = {});
  // Every object under prefix, following continuation tokens.
  std::vector<ObjectInfo> list(std::string_view bucket, std::string_view prefix);

  void remove(std::string_view bucket, std::string_view key);
  // DeleteObjects in batches of 1000; throws if S3 reports any key it could not delete.
  void remove_many(std::string_view bucket, const std::vector<std::string>& keys);

  void create_bucket(std::string_view bucket);
  void delete_bucket(std::string_view bucket);

  const std::string& region() const;
  // Requests started on each endpoint so far (load-balancing visibility).
  std::vector<uint64_t> requests_per_endpoint() const;

 private:
  explicit S3Client(std::shared_ptr<S3Service> service) : service_(std::move(service)) {}
  std::shared_ptr<S3Service> service_;
};

}  // namespace ringfetch::s3
