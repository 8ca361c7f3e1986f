#include "s3/s3_errors.hpp"

#include <array>

#include "http/call.hpp"
#include "s3/xml_document.hpp"

namespace ringfetch::s3 {
namespace {

struct CodeRow {
  std::string_view code;
  bool retryable;
};

// Codes S3 documents as transient (and the throttling names other S3 implementations use). Everything else that
// is not 5xx or 429 is the caller's problem and is not retried.
constexpr std::array<CodeRow, 9> kCodes = {{
    {"SlowDown", true},
    {"RequestTimeout", true},
    {"InternalError", true},
    {"ServiceUnavailable", true},
    {"Throttling", true},
    {"ThrottlingException", true},
    {"RequestLimitExceeded", true},
    {"RequestThrottled", true},
    {"OperationAborted", true},
}};

std::string code_for_status(int status) {
  switch (status) {
    case 301: return "PermanentRedirect";
    case 400: return "BadRequest";
    case 403: return "AccessDenied";
    case 404: return "NoSuchKey";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 416: return "InvalidRange";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    default: return "HTTP" + std::to_string(status);
  }
}

bool retryable_code(std::string_view code) {
  for (const CodeRow& row : kCodes)
    if (row.code == code) return row.retryable;
  return false;
}

}  // namespace

S3ErrorInfo parse_s3_error(const http::ResponseHead& head, std::string_view body) {
  S3ErrorInfo e;
  e.status = head.status;
  XmlDocument doc;
  if (!body.empty() && XmlDocument::parse(std::string(body), &doc).ok() && doc.root()->name == "Error") {
    e.code = doc.root()->child_text("Code");
    e.message = doc.root()->child_text("Message");
    e.request_id = doc.root()->child_text("RequestId");
  } else if (!body.empty()) {
    e.message = http::readable_body(body);  // not S3's document (a proxy's page, say): its text, cut short
  }
  if (e.code.empty()) e.code = code_for_status(head.status);
  if (e.request_id.empty()) {
    if (auto id = head.find("x-amz-request-id")) e.request_id = std::string(*id);
  }
  e.retryable = http::is_retryable_http_status(head.status) || retryable_code(e.code);
  return e;
}

Status s3_status(const S3ErrorInfo& e, std::string_view reason, const std::string& what) {
  std::string message = what + ": " + e.code + " (HTTP " + std::to_string(e.status);
  if (!reason.empty()) message += " " + std::string(reason);
  message += ")";
  if (!e.message.empty()) message += ": " + e.message;
  if (!e.request_id.empty()) message += " [RequestId " + e.request_id + "]";
  return Status(ErrorKind::kS3, message, e.status, e.code, e.request_id);
}

Status s3_error(const http::ResponseHead& head, std::string_view body, const std::string& what) {
  return s3_status(parse_s3_error(head, body), head.reason(), what);
}

}  // namespace ringfetch::s3
