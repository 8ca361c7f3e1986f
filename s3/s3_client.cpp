// S3Client implementation: each operation is a prepared (signed) HttpCall run on the engine; multipart uploads
// run their parts in parallel through S3Service::execute_all and abort the upload on any failure.
#include "ringfetch/s3/s3_client.hpp"

#include <openssl/evp.h>

#include <charconv>

#include "s3/s3_errors.hpp"
#include "s3/s3_service.hpp"
#include "s3/xml_document.hpp"

namespace ringfetch::s3 {
namespace {

constexpr size_t kDeleteBatch = 1000;
constexpr uint64_t kMaxParts = 10000;

void check(const Status& status) { status.check(); }

XmlDocument parse_answer(const S3Call& call, const char* expected_root) {
  XmlDocument doc;
  Status parsed = XmlDocument::parse(call.text, &doc);
  if (!parsed.ok()) throw Error(ErrorKind::kIntegrity, call.describe() + ": " + parsed.message());
  if (doc.root()->name == "Error") {
    // S3 may answer 200 and still report an error in the body (CompleteMultipartUpload does).
    http::ResponseHead head = call.response;
    head.status = 500;
    throw s3_error(head, call.text, call.describe()).to_error();
  }
  if (doc.root()->name != expected_root) {
    throw Error(ErrorKind::kIntegrity, call.describe() + ": expected <" + expected_root + ">, got <" + doc.root()->name + ">");
  }
  return doc;
}

std::string content_md5(std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(body.data(), body.size(), digest, &length, EVP_md5(), nullptr);
  unsigned char encoded[64];
  const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(length));
  return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(n));
}

// A listing's <Size>: decimal digits only (no sign, no blanks) that fit 64 bits, else an integrity error naming the
// key; a size read wrongly would make every later range of that object wrong.
uint64_t parse_size(const S3Call& call, const std::string& key, const std::string& text) {
  uint64_t size = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), size);
  const bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits_only || error != std::errc() || end != text.data() + text.size()) {
    throw Error(ErrorKind::kIntegrity, call.describe() + ": bad <Size> '" + text.substr(0, 40) + "' for key '" +
                                           key + "' (expected a size in bytes below 2^64)");
  }
  return size;
}

std::span<const std::byte> as_bytes(const std::string& text) {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

}  // namespace

S3Client S3Client::open(Engine& engine, S3Options options, HttpOptions http) {
  std::shared_ptr<S3Service> service;
  check(S3Service::create(*detail::EngineAccess::impl(engine), options, http, &service));
  return S3Client(std::move(service));
}

S3Client::~S3Client() = default;
S3Client::S3Client(S3Client&&) noexcept = default;
S3Client& S3Client::operator=(S3Client&&) noexcept = default;

const std::string& S3Client::region() const { return service_->config().region; }
std::vector<uint64_t> S3Client::requests_per_endpoint() const { return service_->requests_per_endpoint(); }

ObjectInfo S3Client::head(std::string_view bucket, std::string_view key) {
  S3Call call;
  call.request.method = "HEAD";
  service_->prepare(call, std::string(bucket), std::string(key), {});
  if (Status status = service_->execute(call, std::string(bucket)); !status.ok()) {
    // An answer to HEAD has no body, so S3's error document (NoSuchBucket rather than NoSuchKey,
    // SignatureDoesNotMatch rather than AccessDenied) is missing: a GET of the first bytes brings it.
    if (status.kind() == ErrorKind::kS3 && status.http_status() >= 400 && status.http_status() < 500) {
      S3Call get;
      get.request.range = http::ByteRange{0, 1023};
      service_->prepare(get, std::string(bucket), std::string(key), {});
      if (Status detailed = service_->execute(get, std::string(bucket)); !detailed.ok()) detailed.check();
    }
    status.check();
  }
  ObjectInfo info;
  info.key = std::string(key);
  info.size = call.response.content_length.value_or(0);
  info.etag = call.response.etag;
  if (auto modified = call.response.find("Last-Modified")) info.last_modified = std::string(*modified);
  return info;
}

std::string S3Client::put(std::string_view bucket, std::string_view key, std::span<const std::byte> body) {
  S3Call call;
  call.request.method = "PUT";
  call.request.body = body;
  call.request.send_content_length = true;
  service_->prepare(call, std::string(bucket), std::string(key), {}, sha256_hex(body));
  check(service_->execute(call, std::string(bucket)));
  return call.response.etag;
}

UploadStats S3Client::upload(std::string_view bucket, std::string_view key, std::span<const std::byte> body,
                             const UploadControl& control) {
  if (body.size() >= service_->options().multipart_threshold) return put_multipart(bucket, key, body, control);
  if (control.cancel != nullptr && control.cancel->load()) {
    throw Error(ErrorKind::kCancelled, "upload to s3://" + std::string(bucket) + "/" + std::string(key) +
                                           " cancelled before it started");
  }
  UploadStats stats{1, put(bucket, key, body)};
  if (control.on_progress) control.on_progress(body.size());
  return stats;
}

UploadStats S3Client::put_multipart(std::string_view bucket_view, std::string_view key_view,
                                    std::span<const std::byte> body, const UploadControl& control) {
  const std::string bucket(bucket_view), key(key_view);
  const uint64_t part_size = std::max<uint64_t>(1, service_->options().multipart_part_size);
  const uint64_t parts = std::max<uint64_t>(1, (body.size() + part_size - 1) / part_size);
  if (parts > kMaxParts) {
    throw Error(ErrorKind::kInvalidArgument, "upload of " + std::to_string(body.size()) + " bytes in parts of " +
                                                 std::to_string(part_size) + " needs more than 10000 parts");
  }
  const auto cancelled = [&control] { return control.cancel != nullptr && control.cancel->load(); };
  const std::string target = "s3://" + bucket + "/" + key;
  if (cancelled()) throw Error(ErrorKind::kCancelled, "upload to " + target + " cancelled before it started");
  S3Call create;
  create.request.method = "POST";
  service_->prepare(create, bucket, key, {{"uploads", ""}});
  check(service_->execute(create, bucket));
  const std::string upload_id = parse_answer(create, "InitiateMultipartUploadResult").root()->child_text("UploadId");
  if (upload_id.empty()) throw Error(ErrorKind::kIntegrity, create.describe() + ": no UploadId in the answer");

  const auto abort_upload = [&]() -> Status {
    S3Call abort;
    abort.request.method = "DELETE";
    service_->prepare(abort, bucket, key, {{"uploadId", upload_id}});
    return service_->execute(abort, bucket);
  };
  // A cancel aborts at once, while parts are still in flight; a part that lands after that abort makes S3 keep
  // it, so the abort is sent again once they have all ended (S3's documented advice).
  std::atomic<uint64_t> parts_done{0};
  std::atomic<uint64_t> bytes_done{0};
  bool aborted_on_cancel = false;
  uint64_t parts_done_at_abort = 0;
  Status cancel_abort;
  ExecuteAllHooks hooks;
  hooks.cancel = control.cancel;
  hooks.on_cancel = [&] {
    parts_done_at_abort = parts_done.load();
    cancel_abort = abort_upload();
    aborted_on_cancel = true;
  };
  hooks.on_done = [&](const http::Call& call, const Status& status) {
    if (!status.ok()) return;
    parts_done.fetch_add(1);
    const uint64_t done = bytes_done.fetch_add(call.request.body.size()) + call.request.body.size();
    if (control.on_progress) control.on_progress(done);
  };
  try {
    std::vector<std::unique_ptr<S3Call>> calls;
    std::vector<S3Call*> raw;
    for (uint64_t i = 0; i < parts; ++i) {
      auto call = std::make_unique<S3Call>();
      call->request.method = "PUT";
      call->request.body = body.subspan(i * part_size, std::min<uint64_t>(part_size, body.size() - i * part_size));
      call->request.send_content_length = true;
      service_->prepare(*call, bucket, key, {{"partNumber", std::to_string(i + 1)}, {"uploadId", upload_id}},
                        sha256_hex(call->request.body));
      raw.push_back(call.get());
      calls.push_back(std::move(call));
    }
    check(service_->execute_all(raw, bucket, service_->options().multipart_parallel, hooks));
    if (cancelled()) throw Error(ErrorKind::kCancelled, "upload to " + target + " cancelled");
    std::string complete_body = "<CompleteMultipartUpload>";
    for (uint64_t i = 0; i < parts; ++i) {
      complete_body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
                       xml_escape(calls[i]->response.etag) + "</ETag></Part>";
    }
    complete_body += "</CompleteMultipartUpload>";
    S3Call complete;
    complete.request.method = "POST";
    complete.request.body = as_bytes(complete_body);
    service_->prepare(complete, bucket, key, {{"uploadId", upload_id}}, sha256_hex(complete_body));
    check(service_->execute(complete, bucket));
    const std::string etag =
        parse_answer(complete, "CompleteMultipartUploadResult").root()->child_text("ETag");
    return UploadStats{parts, etag};
  } catch (const Error& e) {
    Status aborted = cancel_abort;
    if (!aborted_on_cancel) {
      aborted = abort_upload();
    } else if (parts_done.load() != parts_done_at_abort) {
      const Status again = abort_upload();
      if (!again.ok() && again.s3_code() != "NoSuchUpload") aborted = again;
    }
    const std::string note = aborted.ok() ? " (upload " + upload_id + " aborted)"
                                          : " (aborting upload " + upload_id + " failed too: " + aborted.message() + ")";
    std::string message = e.what();
    if (e.kind() == ErrorKind::kCancelled && message.find(target) == std::string::npos) {
      message = "upload to " + target + " cancelled: " + message;
    }
    throw Error(e.kind(), message + note, e.http_status(), e.s3_code(), e.request_id());
  }
}

std::vector<MultipartUploadInfo> S3Client::list_multipart_uploads(std::string_view bucket_view,
                                                                  std::string_view prefix) {
  const std::string bucket(bucket_view);
  std::vector<MultipartUploadInfo> all;
  std::string key_marker, id_marker;
  while (true) {
    QueryParams query{{"uploads", ""}, {"prefix", std::string(prefix)}};
    if (!key_marker.empty()) query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) query.emplace_back("upload-id-marker", id_marker);
    S3Call call;
    call.request.method = "GET";
    service_->prepare(call, bucket, "", std::move(query));
    check(service_->execute(call, bucket));
    const XmlDocument doc = parse_answer(call, "ListMultipartUploadsResult");
    for (const XmlElement* upload : doc.root()->children_named("Upload")) {
      all.push_back({upload->child_text("Key"), upload->child_text("UploadId"), upload->child_text("Initiated")});
    }
    if (doc.root()->child_text("IsTruncated") != "true") return all;
    const std::string next_key = doc.root()->child_text("NextKeyMarker");
    const std::string next_id = doc.root()->child_text("NextUploadIdMarker");
    if ((next_key.empty() && next_id.empty()) || (next_key == key_marker && next_id == id_marker)) {
      throw Error(ErrorKind::kIntegrity, call.describe() + ": truncated upload listing without new markers");
    }
    key_marker = next_key;
    id_marker = next_id;
  }
}

void S3Client::abort_multipart_upload(std::string_view bucket, std::string_view key, std::string_view upload_id) {
  S3Call call;
  call.request.method = "DELETE";
  service_->prepare(call, std::string(bucket), std::string(key), {{"uploadId", std::string(upload_id)}});
  check(service_->execute(call, std::string(bucket)));
}

ListPage S3Client::list_page(std::string_view bucket, std::string_view prefix, std::string_view token,
                             unsigned max_keys, std::string_view delimiter) {
  QueryParams query{{"list-type", "2"}, {"max-keys", std::to_string(max_keys)}, {"prefix", std::string(prefix)}};
  if (!token.empty()) query.emplace_back("continuation-token", std::string(token));
  if (!delimiter.empty()) query.emplace_back("delimiter", std::string(delimiter));
  S3Call call;
  call.request.method = "GET";
  service_->prepare(call, std::string(bucket), "", std::move(query));
  check(service_->execute(call, std::string(bucket)));
  XmlDocument doc = parse_answer(call, "ListBucketResult");
  ListPage page;
  for (const XmlElement* entry : doc.root()->children_named("Contents")) {
    ObjectInfo info;
    info.key = entry->child_text("Key");
    info.size = parse_size(call, info.key, entry->child_text("Size"));
    info.etag = entry->child_text("ETag");
    info.last_modified = entry->child_text("LastModified");
    page.objects.push_back(std::move(info));
  }
  for (const XmlElement* p : doc.root()->children_named("CommonPrefixes")) page.common_prefixes.push_back(p->child_text("Prefix"));
  page.truncated = doc.root()->child_text("IsTruncated") == "true";
  page.next_continuation_token = doc.root()->child_text("NextContinuationToken");
  if (page.truncated && page.next_continuation_token.empty()) {
    throw Error(ErrorKind::kIntegrity, call.describe() + ": truncated listing without a continuation token");
  }
  return page;
}

std::vector<ObjectInfo> S3Client::list(std::string_view bucket, std::string_view prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  do {
    ListPage page = list_page(bucket, prefix, token);
    for (ObjectInfo& info : page.objects) all.push_back(std::move(info));
    token = page.truncated ? page.next_continuation_token : std::string();
  } while (!token.empty());
  return all;
}

void S3Client::remove(std::string_view bucket, std::string_view key) {
  S3Call call;
  call.request.method = "DELETE";
  service_->prepare(call, std::string(bucket), std::string(key), {});
  check(service_->execute(call, std::string(bucket)));
}

void S3Client::remove_many(std::string_view bucket, const std::vector<std::string>& keys) {
  for (size_t start = 0; start < keys.size(); start += kDeleteBatch) {
    std::string body = "<Delete><Quiet>true</Quiet>";
    for (size_t i = start; i < std::min(keys.size(), start + kDeleteBatch); ++i)
      body += "<Object><Key>" + xml_escape(keys[i]) + "</Key></Object>";
    body += "</Delete>";
    S3Call call;
    call.request.method = "POST";
    call.request.body = as_bytes(body);
    call.request.fields.push_back({"Content-MD5", content_md5(body)});
    service_->prepare(call, std::string(bucket), "", {{"delete", ""}}, sha256_hex(body));
    check(service_->execute(call, std::string(bucket)));
    XmlDocument doc = parse_answer(call, "DeleteResult");
    std::vector<const XmlElement*> failed = doc.root()->children_named("Error");
    if (!failed.empty()) {
      throw Error(ErrorKind::kS3, call.describe() + ": could not delete '" + failed.front()->child_text("Key") +
                                      "': " + failed.front()->child_text("Code") + " " +
                                      failed.front()->child_text("Message") + " (and " +
                                      std::to_string(failed.size() - 1) + " more)",
                  0, failed.front()->child_text("Code"));
    }
  }
}

void S3Client::create_bucket(std::string_view bucket) {
  S3Call call;
  call.request.method = "PUT";
  std::string body;
  if (service_->config().region != "us-east-1") {
    body = "<CreateBucketConfiguration><LocationConstraint>" + xml_escape(service_->config().region) +
           "</LocationConstraint></CreateBucketConfiguration>";
  }
  call.request.body = as_bytes(body);
  call.request.send_content_length = true;
  service_->prepare(call, std::string(bucket), "", {}, sha256_hex(body));
  check(service_->execute(call, std::string(bucket)));
}

void S3Client::delete_bucket(std::string_view bucket) {
  S3Call call;
  call.request.method = "DELETE";
  service_->prepare(call, std::string(bucket), "", {});
  check(service_->execute(call, std::string(bucket)));
}

}  // namespace ringfetch::s3
