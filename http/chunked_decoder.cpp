// ChunkedDecoder (see the header). Framing bytes go through a byte-at-a-time state machine (they are few: a size
// line per chunk); chunk data is appended in one call per slice.
#include "http/chunked_decoder.hpp"

#include <algorithm>
#include <limits>
#include <string_view>

namespace ringfetch::http {
namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return (byte < 0x20 && byte != '\t') || byte == 0x7f;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status malformed(std::string_view what) {
  return Status(ErrorKind::kIntegrity, "malformed chunked body: " + std::string(what));
}

}  // namespace

ChunkedDecoder::ChunkedDecoder(ChunkedDecoderLimits limits) : limits_(limits) {}

void ChunkedDecoder::reset() {
  state_ = State::kSizeDigits;
  chunk_size_ = 0;
  size_digits_ = 0;
  size_line_bytes_ = 0;
  in_extension_ = false;
  decoded_bytes_ = 0;
  trailer_bytes_ = 0;
  status_ = Status();
}

ChunkedDecoder::Result ChunkedDecoder::fail(size_t consumed, Status status) {
  state_ = State::kError;
  status_ = std::move(status);
  return Result{consumed, Progress::kError};
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::span<const char> bytes, std::string* out) {
  if (state_ == State::kDone) return Result{0, Progress::kDone};
  if (state_ == State::kError) return Result{0, Progress::kError};
  size_t consumed = 0;
  while (consumed < bytes.size()) {
    if (state_ == State::kData) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_size_, bytes.size() - consumed));
      out->append(bytes.data() + consumed, take);
      consumed += take;
      chunk_size_ -= take;
      decoded_bytes_ += take;
      if (chunk_size_ == 0) state_ = State::kDataCr;
      continue;
    }
    Status status = step(bytes[consumed]);
    ++consumed;
    if (!status.ok()) return fail(consumed, std::move(status));
    if (state_ == State::kDone) return Result{consumed, Progress::kDone};
  }
  return Result{consumed, Progress::kNeedMore};
}

Status ChunkedDecoder::step(char c) {
  switch (state_) {
    case State::kSizeDigits:
      return on_size_digit(c);
    case State::kSizeTail:
      return on_size_tail(c);
    case State::kSizeLf:
      if (c != '\n') return malformed("bare CR in chunk-size line");
      return on_size_line_end();
    case State::kDataCr:
      if (c != '\r') return malformed("chunk data not followed by CRLF");
      state_ = State::kDataLf;
      return Status();
    case State::kDataLf:
      if (c != '\n') return malformed("chunk data not followed by CRLF");
      state_ = State::kSizeDigits;
      chunk_size_ = 0;
      size_digits_ = 0;
      size_line_bytes_ = 0;
      in_extension_ = false;
      return Status();
    case State::kTrailerLineStart:
    case State::kTrailerName:
    case State::kTrailerValue:
    case State::kTrailerLf:
    case State::kFinalLf:
      return on_trailer_byte(c);
    case State::kData:
    case State::kDone:
    case State::kError:
      break;
  }
  return malformed("internal state error");  // unreachable: feed() handles these states
}

Status ChunkedDecoder::on_size_digit(char c) {
  const int digit = hex_value(c);
  if (digit < 0) {
    if (size_digits_ == 0) return malformed("missing chunk size");
    state_ = State::kSizeTail;
    return on_size_tail(c);
  }
  if (++size_line_bytes_ > limits_.max_size_line_bytes) {
    return malformed("chunk-size line longer than " + std::to_string(limits_.max_size_line_bytes) + " bytes");
  }
  if (chunk_size_ > (std::numeric_limits<uint64_t>::max() >> 4)) return malformed("chunk size too large");
  chunk_size_ = (chunk_size_ << 4) | static_cast<uint64_t>(digit);
  ++size_digits_;
  return Status();
}

// After the hex digits: optional OWS, then "; name[=value]" extensions (ignored), then CR.
Status ChunkedDecoder::on_size_tail(char c) {
  if (c == '\r') {
    state_ = State::kSizeLf;
    return Status();
  }
  if (++size_line_bytes_ > limits_.max_size_line_bytes) {
    return malformed("chunk-size line longer than " + std::to_string(limits_.max_size_line_bytes) + " bytes");
  }
  if (c == '\n') return malformed("chunk-size line ends in a bare LF (expected CRLF)");
  if (is_control(c)) return malformed("control character in chunk-size line");
  if (c == ';') {
    in_extension_ = true;
  } else if (!in_extension_ && !is_ows(c)) {
    return malformed("invalid character after chunk size");
  }
  return Status();
}

Status ChunkedDecoder::on_size_line_end() {
  if (chunk_size_ == 0) {
    state_ = State::kTrailerLineStart;
    return Status();
  }
  if (chunk_size_ > limits_.max_body_bytes - decoded_bytes_) {
    return Status(ErrorKind::kIntegrity,
                  "chunked body larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
  }
  state_ = State::kData;
  return Status();
}

// Trailer fields ("name: value" CRLF) until an empty line; checked for shape, then dropped.
Status ChunkedDecoder::on_trailer_byte(char c) {
  if (++trailer_bytes_ > limits_.max_trailer_bytes) {
    return Status(ErrorKind::kIntegrity,
                  "chunked trailer section larger than " + std::to_string(limits_.max_trailer_bytes) + " bytes");
  }
  switch (state_) {
    case State::kTrailerLineStart:
      if (c == '\r') state_ = State::kFinalLf;
      else if (is_ows(c)) return malformed("obsolete line folding in trailer");
      else if (is_token_char(c)) state_ = State::kTrailerName;
      else return malformed("invalid trailer field");
      return Status();
    case State::kTrailerName:
      if (c == ':') state_ = State::kTrailerValue;
      else if (!is_token_char(c)) return malformed("invalid character in trailer field name");
      return Status();
    case State::kTrailerValue:
      if (c == '\r') state_ = State::kTrailerLf;
      else if (is_control(c)) return malformed("control character in trailer field");
      return Status();
    case State::kTrailerLf:
      if (c != '\n') return malformed("bare CR in trailer field");
      state_ = State::kTrailerLineStart;
      return Status();
    case State::kFinalLf:
      if (c != '\n') return malformed("bare CR at end of chunked body");
      state_ = State::kDone;
      return Status();
    default:
      return malformed("internal state error");  // unreachable: step() dispatches only trailer states here
  }
}

}  // namespace ringfetch::http
