// HttpSource implementation: URL -> endpoint (resolved once) and TLS context, HEAD for sizes, ranged GETs for reads.
#include "http/http_source.hpp"

#include <cstdio>

namespace ringfetch::http {
namespace {

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

bool strong_etag(const std::string& etag) { return !etag.empty() && etag.rfind("W/", 0) != 0; }

}  // namespace

std::string encode_path(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(key.size());
  for (unsigned char c : key) {
    if (is_unreserved(c) || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Status HttpObject::check_etag(const std::string& etag) {
  if (etag.empty()) return {};
  std::lock_guard lock(mutex_);
  if (etag_.empty()) {
    etag_ = etag;
    return {};
  }
  if (etag_ == etag) return {};
  return Status(ErrorKind::kIntegrity, display + " changed during the read: ETag was " + etag_ + ", now " + etag);
}

std::string HttpObject::pinned_etag() {
  std::lock_guard lock(mutex_);
  return etag_;
}

Status HttpSource::create(const engine::Url& root, Engine::Impl& engine, const StoreOptions& options,
                          std::unique_ptr<engine::Source>* out) {
  std::unique_ptr<HttpSource> source(new HttpSource(root, options));
  Endpoint endpoint;
  endpoint.host = root.host;
  endpoint.port = root.port;
  endpoint.tls = root.scheme == "https";
  endpoint.ip_literal = root.ipv6_literal || root.host.find_first_not_of("0123456789.") == std::string::npos;
  endpoint.host_header = root.host_header();
  Status resolved = resolve_endpoint(&endpoint);
  if (!resolved.ok()) return resolved;
  std::shared_ptr<TlsContext> tls;
  if (endpoint.tls) {
    TlsOptions tls_options;
    tls_options.verify = options.http.verify_tls;
    tls_options.ca_file = options.http.ca_file;
    Status created = TlsContext::create(tls_options, &tls);
    if (!created.ok()) return created;
  }
  source->client_ = std::make_unique<HttpClient>(engine, std::move(endpoint), options.http, std::move(tls));
  *out = std::move(source);
  return {};
}

engine::SourceDefaults HttpSource::defaults() const {
  engine::SourceDefaults d;
  d.max_gap = kDefaultMaxGap;
  d.max_in_flight = std::max(1u, options_.http.connections);
  return d;
}

Status HttpSource::open_object(const std::string& key, bool need_size, std::shared_ptr<engine::SourceObject>* out) {
  auto object = std::make_shared<HttpObject>();
  object->key = key;
  object->path = engine::join_path(root_.path.empty() ? "/" : root_.path, encode_path(key));
  if (object->path.empty() || object->path[0] != '/') object->path.insert(0, "/");
  object->display = client_->url_for(object->path);
  if (need_size) {
    HttpCall call;
    call.method = "HEAD";
    call.path = object->path;
    Status status = client_->execute(call);
    if (!status.ok()) return status;
    if (!call.response.content_length) {
      return Status(ErrorKind::kUnsupported, "HEAD " + object->display + " gave no Content-Length");
    }
    object->size = *call.response.content_length;
    object->check_etag(call.response.etag);
  }
  *out = std::move(object);
  return {};
}

HttpCall* make_ranged_get(HttpObject* object, engine::ReadTask* task) {
  auto* call = new HttpCall();
  call->method = "GET";
  call->path = object->path;
  call->range = ByteRange{task->offset, task->offset + task->length - 1};
  call->pieces = task->pieces;
  call->keep_response = false;
  const std::string pinned = object->pinned_etag();
  if (strong_etag(pinned)) call->fields.push_back({"If-Match", pinned});
  call->check_head = [object](const ResponseHead& head) -> Status {
    if (head.status < 200 || head.status >= 300) return {};
    Status etag = object->check_etag(head.etag);
    if (!etag.ok()) return etag;
    const auto& range = head.content_range;
    if (range && range->complete_length && object->size != engine::SourceObject::kUnknownSize &&
        *range->complete_length != object->size) {
      return Status(ErrorKind::kIntegrity, object->display + " changed size during the read: " +
                                               std::to_string(object->size) + " then " +
                                               std::to_string(*range->complete_length) + " bytes");
    }
    return {};
  };
  call->error_for_status = [](const ResponseHead& head, const std::string& body, const std::string& what) {
    return ranged_get_error(head, body, what, status_error(head, body, what));
  };
  call->done = [call, task](const Status& status) {
    std::unique_ptr<HttpCall> owned(call);
    task->source_state = nullptr;
    task->complete(status);
  };
  task->source_state = call;
  return call;
}

Status ranged_get_error(const ResponseHead& head, const std::string&, const std::string& what, Status otherwise) {
  if (head.status == 412) {
    return Status(ErrorKind::kIntegrity, what + ": the object changed during the read (If-Match failed)", 412,
                  otherwise.s3_code(), otherwise.request_id());
  }
  if (head.status == 416) {
    const auto& range = head.content_range;  // "bytes */N" names the size
    const std::string end = range && range->unsatisfied && range->complete_length
                                ? " at " + std::to_string(*range->complete_length)
                                : std::string();
    return Status(ErrorKind::kInvalidArgument, what + ": range not satisfiable: it starts past the object's end" + end,
                  416, otherwise.s3_code(), otherwise.request_id());
  }
  return otherwise;
}

void HttpSource::start_read(engine::Worker& worker, engine::ReadTask* task) {
  client_->start(worker, make_ranged_get(static_cast<HttpObject*>(task->object.get()), task));
}

void HttpSource::cancel_read(engine::Worker&, engine::ReadTask* task) {
  if (task->source_state != nullptr) HttpClient::cancel(static_cast<HttpCall*>(task->source_state));
}

}  // namespace ringfetch::http
