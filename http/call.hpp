// Call: one HTTP request carried to its end over as many attempts as the retry policy allows. It is made of
//  - a Request: what goes on the wire (the head and a borrowed body);
//  - a body sink: destination pieces for a ranged GET's 2xx body (READ_FIXED at each byte's final address), else a
//    bounded string (error documents, XML, small bodies);
//  - a ResponsePolicy: what the layer above adds to every attempt (SigV4) and how it judges answers (ETag pinning,
//    S3 error documents), each answer judged once.
// A Call runs on a Router (one endpoint for http://, the S3 endpoints for s3://), and each attempt is an Attempt:
// one exchange on one connection, a state machine with one transition function. Calls are reusable: a source
// keeps one per read task, so a steady stream of ranged GETs allocates nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/source.hpp"
#include "http/chunked_decoder.hpp"
#include "http/connection.hpp"
#include "http/request_timing.hpp"
#include "http/request_writer.hpp"
#include "http/response_head_parser.hpp"
#include "http/retry_policy.hpp"

namespace ringfetch::http {

class Call;
class HttpClient;

struct Request {
  std::string method = "GET";
  std::string path = "/";  // percent-encoded origin-form path
  std::string query;
  std::vector<RequestField> fields;
  std::optional<ByteRange> range;    // a ranged GET: 206 must carry exactly this range (the rest of it on a retry)
  std::span<const std::byte> body;   // request body, borrowed (sent with Content-Length)
  bool send_content_length = false;  // Content-Length even for an empty body (PUT of zero bytes)
  std::string display;               // how messages name it ("GET s3://bucket/key"); default: method and URL
};

// How an error answer is reported, decided once per answer.
struct Judgement {
  Status status;
  bool retryable = false;
};

class ResponsePolicy {
 public:
  virtual ~ResponsePolicy() = default;
  // Runs before every attempt, on the head about to be written (signing).
  virtual Status decorate(const Call& call, RequestHead& head) const;
  // Sees every final head before its body is read; a refusal ends the call (an ETag that changed).
  virtual Status check_head(const ResponseHead& head) const;
  // Turns a non-2xx answer and its body into the call's error and whether another attempt may help.
  virtual Judgement judge(const ResponseHead& head, std::string_view body, const std::string& what) const;

  static const ResponsePolicy& plain();
};

// One line for an HTTP error answer: "<what>: HTTP 404 Not Found: <body>", the body's markup stripped, whitespace
// folded and cut at about 200 characters (nothing when it is empty).
Status http_error(const ResponseHead& head, std::string_view body, const std::string& what);
std::string readable_body(std::string_view body, size_t max_chars = 200);
// 5xx (but 501) and 429 are worth another attempt.
bool is_retryable_http_status(int status);

// Where attempts go. One endpoint (HttpClient) or several (the S3 endpoints, each an HttpClient).
struct Route {
  HttpClient* client = nullptr;
  uint32_t endpoint = 0;
};

class Router {
 public:
  virtual ~Router() = default;
  // The endpoint for the next attempt; endpoints whose bit is set in `avoid` failed this call on the network and
  // are skipped while others are left.
  virtual Route route(uint64_t avoid) = 0;
  // An attempt on `route` ended (network_failure: refused, reset or timed out there).
  virtual void attempt_ended(const Route& route, bool network_failure) {
    (void)route;
    (void)network_failure;
  }
  virtual uint32_t endpoint_count() const { return 1; }
  // First-byte times, body throughput and the hedge budget of this endpoint set (nullptr: none kept).
  virtual RequestTiming* timing() { return nullptr; }
  virtual const HttpOptions& options() const = 0;
  virtual Engine::Impl& engine() const = 0;
};

// One exchange on one connection. States follow each other in this order (kText instead of kBody for answers that
// do not go into pieces); every event goes through on_event(). kAbandoned: another attempt of the same call (a hedge,
// or the request it hedged) answered first; this one ends at its next event without reading a body byte.
class Attempt final : public ConnectionUser {
 public:
  enum class State { kIdle, kQueued, kConnecting, kSending, kHead, kBody, kText, kAbandoned };

  explicit Attempt(Call& call) : call_(call) {}
  void begin(engine::Worker& worker, const Route& route, bool hedge = false);
  // Another attempt answered first: end without reading the body.
  void abandon();
  // Cancels whatever is in flight (the attempt then ends through its callbacks: kInFlight), or takes a queued attempt
  // out of its pool's queue (kWasQueued: it ends now, the caller reports it).
  enum class Cancelled { kNothing, kInFlight, kWasQueued };
  Cancelled cancel();
  const Route& route() const noexcept { return route_; }
  // The pool hands this queued attempt a connection.
  void grant(std::unique_ptr<Connection> connection);

  void on_connected(const Status& status) override { on_event(Event::kConnected, 0, status); }
  void on_sent(const Status& status) override { on_event(Event::kSent, 0, status); }
  void on_received(int32_t result) override { on_event(Event::kReceived, result, {}); }

  State state() const noexcept { return state_; }
  bool live() const noexcept { return state_ != State::kIdle; }
  bool is_hedge() const noexcept { return is_hedge_; }
  Attempt* next_queued = nullptr;  // the pool's intrusive wait queue

 private:
  enum class Event { kGranted, kConnected, kSent, kReceived };
  enum class Reuse { kKeep, kClose };

  void on_event(Event event, int32_t result, const Status& status);
  void send_request();
  void receive_head();
  void on_head_bytes(size_t n);
  void on_head(std::span<const std::byte> leftover);
  Status frame_ranged_body(const ResponseHead& head);
  void next_target(std::byte** dest, uint32_t* len, int32_t* buf_index);
  void advance(uint64_t n);
  void place_leftover(std::span<const std::byte> leftover);
  void continue_body();
  void start_text(const ResponseHead& head, std::span<const std::byte> leftover);
  bool consume_text(std::span<const char> bytes);
  void continue_text();
  void finish_text();
  void receive(std::byte* dest, uint32_t length, int32_t buf_index, uint64_t timeout_ns);
  bool too_slow(uint64_t now);
  void on_receive_failed(int32_t result);
  void fail_slow();
  void fail(Status status, FailureStage stage, bool retryable);
  void succeed();
  void end(const Status& status, const Failure& failure);
  void release_connection();
  void lost(uint64_t wasted_bytes);

  Call& call_;
  engine::Worker* worker_ = nullptr;
  Route route_;
  std::unique_ptr<Connection> conn_;
  State state_ = State::kIdle;
  Reuse reuse_ = Reuse::kKeep;
  bool reused_ = false;            // the connection had carried a response before
  bool is_hedge_ = false;          // this attempt hedges a slow one
  bool hedge_checked_ = false;     // a hedge was considered for this attempt (once at most)
  uint64_t sent_ns_ = 0;           // when the request went out (first-byte time)
  uint64_t body_start_ns_ = 0;     // when the head was in (body throughput)
  uint64_t body_length_ = 0;       // bytes of this answer's ranged body
  uint64_t body_remaining_ = 0;    // bytes of this answer's body still to read
  uint64_t skip_remaining_ = 0;    // bytes before the range to drop (a 200 to a ranged request)
  size_t piece_ = 0;
  uint64_t piece_offset_ = 0;      // bytes of pieces[piece_] filled (may exceed its length until normalized)
  uint64_t text_remaining_ = 0;    // UINT64_MAX: until chunked end or close
  ChunkedDecoder decoder_;
  ResponseHeadParser parser_;
  // Slow-connection watch: body bytes and time since the current window began, and the last byte's time.
  uint64_t window_start_ns_ = 0;
  uint64_t window_bytes_ = 0;
  uint64_t last_byte_ns_ = 0;
};

class Call {
 public:
  static constexpr size_t kDefaultTextLimit = 1 << 20;
  using DoneFn = void (*)(Call& call, void* context, const Status& status);

  Call() : primary_(*this), second_(*this), retry_(default_options()) {
    timer_.op = engine::Completion::Op::kTimeout;
    timer_.callback = &Call::on_timer;
    timer_.context = this;
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  Request request;
  std::span<const engine::ReadPiece> pieces;  // body sink of a 2xx ranged answer; otherwise `text`
  size_t text_limit = kDefaultTextLimit;
  const ResponsePolicy* policy = &ResponsePolicy::plain();
  bool keep_response = true;  // copy the final head into `response` (ranged GETs into pieces skip it)
  DoneFn done = nullptr;      // called once per start, on the worker thread; may reuse or destroy the call
  void* done_context = nullptr;

  // Results of the last run.
  ResponseHead response;
  std::string text;

  // Starts the call on `worker` (its thread). The router must outlive the run.
  void start(engine::Worker& worker, Router& router);
  // Ends a running call soon with kCancelled (worker thread). No-op once done.
  void cancel();
  // Runs the call to its end from a thread that is not an engine thread; returns its status.
  Status run(Router& router);

  // "GET http://host/path bytes a-b" (the range as asked, not as resumed).
  std::string describe() const;
  uint64_t delivered() const noexcept { return delivered_; }
  bool running() const noexcept { return running_; }

 private:
  friend class Attempt;
  static const HttpOptions& default_options();
  static void on_timer(engine::Completion* c);
  const std::string& what();
  void next_attempt();
  Attempt& other(const Attempt& attempt) { return &attempt == &primary_ ? second_ : primary_; }
  // Whether `slow` may be hedged now, and the hedge itself; the first attempt with a head claims the call.
  bool may_hedge(const Attempt& slow);
  void hedge(Attempt& slow);
  void claim(Attempt& attempt);
  void attempt_ended(Attempt& attempt, const Route& route, const Status& status, const Failure& failure);
  void finish(Status status);

  Attempt primary_;
  Attempt second_;              // a hedge of primary_ (or the reverse, once primary_ has failed)
  Attempt* winner_ = nullptr;   // the attempt whose answer the call takes
  Status outcome_;              // the deciding attempt's result, kept while another attempt winds down
  Failure outcome_failure_;
  RetryPolicy retry_;
  RequestHead head_;            // reused by every attempt: its strings keep their capacity
  std::string wire_;
  engine::Worker* worker_ = nullptr;
  Router* router_ = nullptr;
  engine::Completion timer_;
  std::string what_;            // built only when a message needs it
  uint64_t delivered_ = 0;      // body bytes placed in pieces: where a retry resumes
  uint64_t avoid_ = 0;          // endpoints that failed this call on the network
  bool running_ = false;
  bool cancelled_ = false;
};

}  // namespace ringfetch::http
