// S3Client: the S3 operations beside ranged reads (which go through Store::open("s3://bucket/prefix")):
// HEAD, PUT, multipart upload with parallel parts, ListObjectsV2 with paging, DeleteObject(s), buckets.
// Every call is signed with SigV4 and retried on S3's transient errors; failures throw ringfetch::Error with
// kind kS3 and s3_code() set to S3's <Code> (NoSuchKey, AccessDenied, InvalidAccessKeyId, ...).
#pragma once

#include <cstddef>
#include <cstdint>
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
  UploadStats put_multipart(std::string_view bucket, std::string_view key, std::span<const std::byte> body);
  // put() below options.multipart_threshold, put_multipart() from it on.
  UploadStats upload(std::string_view bucket, std::string_view key, std::span<const std::byte> body);

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
