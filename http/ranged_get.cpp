// RangedGet and the size probe.
#include "http/ranged_get.hpp"

namespace ringfetch::http {
namespace {

// The size probe asks for bytes 0-kProbeLastByte; its body is those, or an error document. Not "bytes=0-0": s3rver
// reads an end of 0 as "to the end" and sends the whole object; a few bytes more cost nothing.
constexpr uint64_t kProbeLastByte = 1023;

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

Status RemoteObject::check_etag(const std::string& etag) {
  if (etag.empty()) return {};
  std::lock_guard lock(mutex_);
  if (etag_.empty()) {
    etag_ = etag;
    return {};
  }
  if (etag_ == etag) return {};
  return Status(ErrorKind::kIntegrity, display + " changed during the read: ETag was " + etag_ + ", now " + etag);
}

void RemoteObject::copy_pinned_etag(std::string* out) {
  std::lock_guard lock(mutex_);
  out->assign(etag_);
}

void RangedGet::start(engine::Worker& worker, Router& router, engine::ReadTask* task) {
  if (!task->source_read) task->source_read = std::make_unique<RangedGet>();
  auto* get = static_cast<RangedGet*>(task->source_read.get());
  auto* object = static_cast<RemoteObject*>(task->object.get());
  get->object_ = object;
  get->task_ = task;
  Call& call = get->call_;
  Request& request = call.request;
  request.method.assign("GET");
  request.path.assign(object->path);
  request.query.assign(object->query);
  request.display.assign("GET ");
  request.display.append(object->display);
  request.range = ByteRange{task->offset, task->offset + task->length - 1};
  // If-Match once the ETag is pinned (strong ETags only: a weak one does not promise the same bytes).
  if (request.fields.empty()) request.fields.emplace_back();
  request.fields[0].name.assign("If-Match");
  object->copy_pinned_etag(&request.fields[0].value);
  if (!strong_etag(request.fields[0].value)) request.fields.clear();
  call.pieces = task->pieces;
  call.policy = get;
  call.keep_response = false;
  call.done = &RangedGet::on_done;
  call.done_context = get;
  task->source_state = get;
  call.start(worker, router);
}

void RangedGet::cancel(engine::ReadTask* task) {
  if (task->source_state != nullptr) static_cast<RangedGet*>(task->source_state)->call_.cancel();
}

void RangedGet::on_done(Call&, void* context, const Status& status) {
  auto* get = static_cast<RangedGet*>(context);
  engine::ReadTask* task = get->task_;
  task->source_state = nullptr;
  task->complete(status);  // may start the task's next read on this very object
}

Status RangedGet::decorate(const Call& call, RequestHead& head) const { return object_->policy->decorate(call, head); }

Status RangedGet::check_head(const ResponseHead& head) const {
  if (Status etag = object_->check_etag(head.etag); !etag.ok()) return etag;
  const auto& range = head.content_range;
  if (range && range->complete_length && object_->size != engine::SourceObject::kUnknownSize &&
      *range->complete_length != object_->size) {
    return Status(ErrorKind::kIntegrity, object_->display + " changed size during the read: " +
                                             std::to_string(object_->size) + " then " +
                                             std::to_string(*range->complete_length) + " bytes");
  }
  return object_->policy->check_head(head);
}

Judgement RangedGet::judge(const ResponseHead& head, std::string_view body, const std::string& what) const {
  Judgement inner = object_->policy->judge(head, body, what);
  if (head.status == 412) {
    return {Status(ErrorKind::kIntegrity, what + ": the object changed during the read (If-Match failed)", 412,
                   inner.status.s3_code(), inner.status.request_id()),
            false};
  }
  if (head.status == 416 && object_->size != engine::SourceObject::kUnknownSize &&
      task_->offset < object_->size) {
    // The range lies inside the size this read started with: the object shrank (or is being rewritten).
    return {Status(ErrorKind::kIntegrity, what + ": " + object_->display + " changed during the read: a range inside its " +
                                              std::to_string(object_->size) + " bytes is no longer satisfiable",
                   416, inner.status.s3_code(), inner.status.request_id()),
            false};
  }
  if (head.status == 416) {
    const auto& range = head.content_range;  // "bytes */N" names the size
    const std::string end = range && range->unsatisfied && range->complete_length
                                ? " at " + std::to_string(*range->complete_length)
                                : std::string();
    return {Status(ErrorKind::kInvalidArgument, what + ": range not satisfiable: it starts past the object's end" + end,
                   416, inner.status.s3_code(), inner.status.request_id()),
            false};
  }
  return inner;
}

Status probe_size(Router& router, RemoteObject& object) {
  Call call;
  call.request.method = "GET";
  call.request.path = object.path;
  call.request.query = object.query;
  call.request.display = "GET " + object.display;
  call.request.range = ByteRange{0, kProbeLastByte};  // no pieces: the bytes or an error document land in text
  call.policy = object.policy;
  Status status = call.run(router);
  // An empty object has no byte 0 (416; s3rver sends a malformed "bytes 0-0/0"); a server that ignores Range may
  // send more than the text limit. HEAD answers those.
  const bool ask_head = !status.ok() && (status.http_status() == 416 || status.kind() == ErrorKind::kIntegrity ||
                                         status.kind() == ErrorKind::kUnsupported);
  if (ask_head) {
    Call head;
    head.request.method = "HEAD";
    head.request.path = object.path;
    head.request.query = object.query;
    head.request.display = "HEAD " + object.display;
    head.policy = object.policy;
    if (status = head.run(router); !status.ok()) return status;
    if (!head.response.content_length) {
      return Status(ErrorKind::kUnsupported, "HEAD " + object.display + " gave no Content-Length");
    }
    object.size = *head.response.content_length;
    return object.check_etag(head.response.etag);
  }
  if (!status.ok()) return status;
  const ResponseHead& response = call.response;
  const auto& range = response.content_range;
  if (response.status == 206 && range && range->complete_length) {
    object.size = *range->complete_length;
  } else if (response.status == 200 && response.content_length) {
    object.size = *response.content_length;  // a server that ignored Range sent the whole (small) object
  } else {
    return Status(ErrorKind::kIntegrity, call.describe() + ": the answer to a GET of the first bytes gives no object size");
  }
  return object.check_etag(response.etag);
}

}  // namespace ringfetch::http
