// ChunkedDecoder: incremental decoder of an HTTP/1.1 chunked body (RFC 9112 7.1), fed slices as they arrive and
// appending the decoded bytes to a std::string. Meant for the small bodies that may come chunked (error documents,
// XML replies), not for object data, which the engine reads in place with Content-Length framing.
// Chunk extensions are accepted and ignored; trailer fields are checked for shape and dropped. Every length is
// bounded (chunk-size line, decoded total, trailer section) so a hostile peer cannot make it grow without limit;
// the decoded-size limit fails as soon as a chunk size announces more than fits. Bytes after the final CRLF are
// left unconsumed (the next response on the connection). Errors are ErrorKind::kIntegrity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "ringfetch/error.hpp"

namespace ringfetch::http {

inline constexpr size_t kMaxChunkSizeLineBytes = 1024;              // hex size + extensions, without CRLF
inline constexpr uint64_t kMaxChunkedBodyBytes = uint64_t{4} << 20;  // 4 MiB decoded: error documents and listings
inline constexpr size_t kMaxChunkedTrailerBytes = 16 * 1024;        // all trailer fields together

struct ChunkedDecoderLimits {
  size_t max_size_line_bytes = kMaxChunkSizeLineBytes;
  uint64_t max_body_bytes = kMaxChunkedBodyBytes;
  size_t max_trailer_bytes = kMaxChunkedTrailerBytes;
};

class ChunkedDecoder {
 public:
  enum class Progress { kNeedMore, kDone, kError };
  struct Result {
    size_t consumed = 0;  // bytes of the slice that belong to the chunked body
    Progress progress = Progress::kNeedMore;
  };

  explicit ChunkedDecoder(ChunkedDecoderLimits limits = {});

  // Decodes from `bytes`, appending data to *out. kDone: the body (with its trailers) ended and bytes[consumed..]
  // is not part of it. kError: status() says why. Feeding after kDone or kError consumes nothing.
  Result feed(std::span<const char> bytes, std::string* out);

  bool done() const { return state_ == State::kDone; }
  const Status& status() const { return status_; }
  uint64_t decoded_bytes() const { return decoded_bytes_; }

  void reset();  // for the next body

 private:
  enum class State {
    kSizeDigits,       // hex digits of the chunk size
    kSizeTail,         // OWS and chunk extensions up to CR
    kSizeLf,           // LF after the chunk-size line
    kData,             // chunk data
    kDataCr,           // CR after chunk data
    kDataLf,           // LF after chunk data
    kTrailerLineStart, // start of a trailer field, or CR of the final CRLF
    kTrailerName,
    kTrailerValue,
    kTrailerLf,        // LF after a trailer field
    kFinalLf,          // LF of the final CRLF
    kDone,
    kError,
  };

  Status step(char c);  // one byte of framing (every state but kData)
  Status on_size_digit(char c);
  Status on_size_tail(char c);
  Status on_size_line_end();
  Status on_trailer_byte(char c);
  Result fail(size_t consumed, Status status);

  ChunkedDecoderLimits limits_;
  State state_ = State::kSizeDigits;
  uint64_t chunk_size_ = 0;       // size being parsed, then bytes of the current chunk still to come
  size_t size_digits_ = 0;
  size_t size_line_bytes_ = 0;
  bool in_extension_ = false;     // a ';' was seen on this chunk-size line
  uint64_t decoded_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  Status status_;
};

}  // namespace ringfetch::http
