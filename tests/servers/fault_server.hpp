// FaultServer: a small HTTP/1.1 server of our own on 127.0.0.1, for the faults that nginx and s3rver cannot produce
// on demand (reset mid-body, stalls, 503 storms, wrong Content-Range, truncated / oversized / garbage heads, a
// server closing a kept-alive connection). It serves one in-memory object at every target (GET and HEAD; single
// byte ranges `a-b`, `a-`, `-n` answered 206 with Content-Range, Content-Length and ETag; If-Match checked against
// the current ETag, 412 otherwise), keeps connections alive, and applies a script of faults, one per request, to the
// next requests in arrival order; once the script is empty it behaves normally again. Fault rules target requests by
// method and query instead ("every PUT with partNumber=3"). Tests read back what arrived: counters and a log of
// request heads (to check Range, If-Match, Authorization, ...) with the size and SHA-256 of each request body.
// Opt-in S3 multipart mode answers the multipart upload calls s3rver cannot (AbortMultipartUpload above all) and
// records uploads and parts.
// It runs one epoll loop on its own thread; stop() wakes it through an eventfd and closes every descriptor.
#pragma once

#include <chrono>
#include <cstddef>
#include <limits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringfetch::testing {

enum class FaultKind {
  kNone,               // answer normally (holds a place in the fault script)
  kResetMidBody,       // head + `body_bytes` of the body, then RST (SO_LINGER 0)
  kStall,              // nothing (or, with send_head, head + `body_bytes`), then silence until client close or stop
  kStatus,             // `status` with an S3 XML error body (<Code>s3_code</Code>) and Content-Length; kept alive
  kTruncatedBody,      // head with the full Content-Length, `body_bytes` of the body, then close (FIN)
  kWrongContentRange,  // correct body, but Content-Range shifted by `range_shift` (206 even without Range)
  kOversizedHead,      // the normal response with more than 64 KiB of filler headers in its head
  kGarbageHead,        // bytes that are not HTTP, then close
  kCloseAfterHead,     // the head (full Content-Length) and no body, then close
  kCloseIdle,          // close the connection without answering (a server dropping an idle keep-alive connection)
  kFull200,            // ignore Range: 200 with the whole object
  kChangeEtag,         // the object gets a new ETag from this request on (this answer already carries it)
  kInterimAnswer,      // a 103 Early Hints head before the normal answer
  kChunkedBody,        // the normal answer's body sent with Transfer-Encoding: chunked (no Content-Length)
};

struct Fault {
  FaultKind kind = FaultKind::kStatus;
  uint64_t body_bytes = 0;  // kResetMidBody, kTruncatedBody, kStall (with send_head); clamped to the body size
  bool send_head = false;   // kStall
  int status = 503;         // kStatus
  std::string s3_code;      // kStatus; empty: derived from status (503 SlowDown, 500 InternalError, ...)
  int64_t range_shift = 1;  // kWrongContentRange

  static Fault reset_mid_body(uint64_t body_bytes);
  static Fault stall();
  static Fault stall_after_head(uint64_t body_bytes = 0);
  static Fault status_error(int status = 503, std::string s3_code = {});
  static Fault truncated_body(uint64_t body_bytes);
  static Fault wrong_content_range(int64_t range_shift = 1);
  static Fault oversized_head();
  static Fault garbage_head();
  static Fault close_after_head();
  static Fault close_idle();
  static Fault full_200();
  static Fault change_etag();
  static Fault none();
  static Fault interim_answer();
  static Fault chunked_body();
};

// One request as received. Malformed heads (answered 400) and bodies over the limit (413) are neither logged nor
// counted.
struct LoggedRequest {
  uint64_t connection = 0;  // ordinal of the connection it came on, 1 for the first accepted
  std::string method;
  std::string target;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  uint64_t body_bytes = 0;   // request body received (Content-Length), read in full before the answer
  std::string body_sha256;   // lower-case hex SHA-256 of that body (of zero bytes when there is none)

  // Value of the first header named `name` (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
};

struct FaultServerOptions {
  // Connections beyond this are accepted and closed at once.
  std::size_t max_connections = 256;
  // A request head longer than this is answered 431 and the connection closed.
  std::size_t max_request_head_bytes = 64 * 1024;
  // The log keeps the most recent requests only.
  std::size_t max_logged_requests = 4096;
  // Answer 412 when If-Match does not name the current ETag (S3 does; set false to mimic servers that ignore it).
  bool honor_if_match = true;
  // A request body longer than this (Content-Length) is answered 413 EntityTooLarge and the connection closed.
  std::size_t max_request_body_bytes = 64 << 20;
  // S3 multipart upload calls on any /bucket/key (path style), besides GET/HEAD of the object:
  //   POST ?uploads                    -> 200 InitiateMultipartUploadResult with a new UploadId
  //   PUT ?partNumber=N&uploadId=ID     -> 200 with the part's ETag (body read, counted, hashed, dropped)
  //   POST ?uploadId=ID                 -> 200 CompleteMultipartUploadResult, ETag "<hex>-<parts>"; the body must list
  //                                        uploaded parts in ascending order with their ETags (else 400 InvalidPart,
  //                                        InvalidPartOrder or MalformedXML, as S3 answers)
  //   DELETE ?uploadId=ID               -> 204 (AbortMultipartUpload)
  //   GET /bucket?uploads[&prefix=P]    -> 200 ListMultipartUploadsResult of the open uploads (max-uploads and
  //                                        upload-id-marker page it)
  // An unknown, completed or aborted UploadId is 404 NoSuchUpload. A call takes effect unless its fault keeps the
  // answer from being a normal one (kStatus, kCloseIdle, kGarbageHead); other faults only damage the delivery.
  bool s3_multipart = false;
  // First-byte latency, as object stores have it (S3: ~20-50 ms per GET): every answer waits this long after its
  // request head was fully received before its first byte is sent (a request body, if any, is read in the meantime).
  // A timer of the event loop, not a sleep: other connections go on meanwhile. 0: answer at once.
  std::chrono::milliseconds first_byte_delay{0};
  // Stragglers, as object stores have a long first-byte tail: every straggler_every-th answer (counted in the order
  // answers are made, 0: none) waits straggler_delay more before its first byte.
  uint64_t straggler_every = 0;
  std::chrono::milliseconds straggler_delay{0};
};

// A fault for every request that matches (method and query parameters), checked before the script; a request a
// rule matches does not consume a scripted fault. Example: every PUT of part 3 fails with 500, forever:
//   server.add_rule({.method = "PUT", .query = {{"partNumber", "3"}}, .fault = Fault::status_error(500)});
struct FaultRule {
  std::string method;                                      // empty: any method
  std::vector<std::pair<std::string, std::string>> query;  // each name=value must be in the target's (decoded) query
  Fault fault;
  uint64_t times = std::numeric_limits<uint64_t>::max();   // requests it applies to before it retires
};

// One part as the multipart mode stored it (the latest upload of each part number wins, as in S3).
struct ReceivedPart {
  std::string upload_id;
  uint64_t part_number = 0;
  uint64_t size = 0;
  std::string sha256;  // hex SHA-256 of the part's bytes as received
  std::string etag;    // quotes included
};

enum class UploadState { kOpen, kCompleted, kAborted };

struct MultipartUpload {
  std::string upload_id;
  std::string bucket;
  std::string key;
  UploadState state = UploadState::kOpen;
  std::vector<ReceivedPart> parts;              // by ascending part number
  std::vector<uint64_t> completed_part_numbers;  // as listed by CompleteMultipartUpload
  std::string etag;                              // of the completed object
};

class FaultServer {
 public:
  // Listens on 127.0.0.1 on a kernel-chosen port and starts the loop thread. Throws std::system_error on failure.
  explicit FaultServer(std::vector<std::byte> object, FaultServerOptions options = {});
  // stop().
  ~FaultServer();
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  // Wakes and joins the loop thread and closes every connection (stalled clients see EOF) and descriptor. Idempotent.
  void stop();

  uint16_t port() const noexcept;
  // "http://127.0.0.1:PORT".
  std::string endpoint() const;
  const std::vector<std::byte>& object() const noexcept;
  // The ETag currently served, quotes included.
  std::string etag() const;

  // Appends to the fault script; each fault applies to one later request, in order.
  void push_fault(Fault fault);
  void push_faults(const std::vector<Fault>& faults);
  std::size_t pending_faults() const;
  void clear_faults();
  // Adds a rule (see FaultRule); rules are tried in the order added.
  void add_rule(FaultRule rule);
  void clear_rules();

  uint64_t requests_received() const noexcept;
  uint64_t connections_accepted() const noexcept;
  std::vector<LoggedRequest> request_log() const;
  // Blocks until at least `count` requests have been received; false on timeout.
  bool wait_for_requests(uint64_t count, std::chrono::milliseconds timeout) const;

  // Multipart mode (FaultServerOptions::s3_multipart): every upload in the order started.
  std::vector<MultipartUpload> uploads() const;
  uint64_t uploads_started() const;
  uint64_t uploads_completed() const;
  uint64_t uploads_aborted() const;
  // Successful UploadPart calls (each one, also repeated part numbers), in arrival order.
  std::vector<ReceivedPart> parts_received() const;
  // Uploads neither completed nor aborted: what S3 would keep (and bill) as orphan parts.
  std::vector<std::string> open_upload_ids() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringfetch::testing
