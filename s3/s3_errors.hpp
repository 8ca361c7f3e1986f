// S3's error answers, read once: the error document (or, for an answer without one, the code its status implies)
// becomes {status, code, message, request id, retryable}, with retryability from one table of codes.
#pragma once

#include <string>
#include <string_view>

#include "http/response_head_parser.hpp"
#include "ringfetch/error.hpp"

namespace ringfetch::s3 {

struct S3ErrorInfo {
  int status = 0;
  std::string code;
  std::string message;
  std::string request_id;
  bool retryable = false;
};

S3ErrorInfo parse_s3_error(const http::ResponseHead& head, std::string_view body);
// One line: "<what>: NoSuchKey (HTTP 404 Not Found): The specified key does not exist. [RequestId X]".
Status s3_status(const S3ErrorInfo& error, std::string_view reason, const std::string& what);
// Both in one (for answers judged outside a call: a 200 that carries an error document).
Status s3_error(const http::ResponseHead& head, std::string_view body, const std::string& what);

}  // namespace ringfetch::s3
