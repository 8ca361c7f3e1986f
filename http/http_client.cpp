// HttpClient implementation. An Exchange drives one HttpCall through its attempts as an explicit state machine:
// acquire a connection -> (connect) -> send -> read head -> read body -> release. Failures go through one retry
// policy (fail_attempt). Pools are per worker and touched only on that worker's thread.
#include "http/http_client.hpp"

#include <strings.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <random>

#include "http/chunked_decoder.hpp"

namespace ringfetch::http {

class Exchange;

struct HttpClient::Pool {
  std::vector<std::unique_ptr<Connection>> idle;
  unsigned open = 0;  // idle + lent out
  std::deque<Exchange*> waiting;
};

namespace {

#ifndef RINGFETCH_VERSION
#error "the build defines RINGFETCH_VERSION (the project's version)"
#endif
// Servers and their operators see who is calling (S3 access logs, nginx logs); a caller's own User-Agent wins.
constexpr std::string_view kUserAgent = "ringfetch/" RINGFETCH_VERSION;

void add_user_agent(std::vector<RequestField>& fields) {
  for (const RequestField& field : fields) {
    if (field.name.size() == 10 && strncasecmp(field.name.c_str(), "User-Agent", 10) == 0) return;
  }
  fields.push_back({"User-Agent", std::string(kUserAgent)});
}

// Head reads of a ranged GET ask for this much at a time: whatever body arrives with the head has to be copied,
// so a small read bounds that copy (typical response heads are 200-800 bytes).
constexpr uint32_t kHeadProbeBytes = 1024;
// Bodies up to this size are read together with the head and copied into place (one receive instead of two).
constexpr uint64_t kSmallBodyBytes = 8 << 10;
constexpr uint64_t kMaxSkipBytes = 1ull << 30;     // 200 instead of 206: most we read and drop to reach a range
constexpr uint32_t kMaxReceiveBytes = 1u << 30;    // one receive op
constexpr size_t kErrorSnippetBytes = 300;
constexpr uint64_t kNsPerMs = 1'000'000;

std::string errno_text(int32_t result) { return strerror(result < 0 ? -result : result); }

// Backoff jitter. Seeded once per thread: std::random_device can cost tens of microseconds per call in a VM.
std::minstd_rand& jitter() {
  thread_local std::minstd_rand generator(std::random_device{}());
  return generator;
}

}  // namespace

std::string HttpCall::describe() const {
  if (!what.empty()) return what;
  std::string text = display.empty() ? method + " " + path + (query.empty() ? "" : "?" + query) : display;
  if (range) text += " bytes " + std::to_string(range->first) + "-" + std::to_string(range->last);
  return text;
}

Status status_error(const ResponseHead& head, const std::string& body, const std::string& what) {
  std::string message = what + ": HTTP " + std::to_string(head.status);
  if (!head.reason().empty()) message += " " + std::string(head.reason());
  if (!body.empty()) message += ": " + body.substr(0, kErrorSnippetBytes);
  return Status(ErrorKind::kHttpStatus, message, head.status);
}

bool is_retryable_http_status(int status) { return status == 429 || (status >= 500 && status <= 599 && status != 501); }

class Exchange final : public ConnectionUser {
 public:
  Exchange(HttpClient& client, engine::Worker& worker, HttpCall* call)
      : client_(client), worker_(worker), call_(call) {
    timer_.op = engine::Completion::Op::kTimeout;
    timer_.callback = &Exchange::on_timer;
    timer_.context = this;
  }

  void begin() {
    state_ = State::kAcquire;
    HttpClient::Pool& pool = client_.pool(worker_);
    if (!pool.idle.empty()) {
      auto conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      use_connection(std::move(conn));
    } else if (pool.open < client_.connections_per_worker()) {
      ++pool.open;
      use_connection(std::make_unique<Connection>(worker_, client_.endpoint(), client_.tls_shared(),
                                                  client_.engine().counters));
    } else {
      pool.waiting.push_back(this);
    }
  }

  // Ends the exchange as soon as possible with kCancelled: cancels the operation in flight (its callback then
  // sees cancelled_), or finishes at once when nothing is in flight.
  void cancel() {
    cancelled_ = true;
    if (conn_ && conn_->in_flight()) {
      conn_->cancel();
      return;
    }
    if (timer_.in_flight) {
      worker_.loop().cancel(&timer_);
      return;
    }
    auto& waiting = client_.pool(worker_).waiting;
    std::erase(waiting, this);
    finish(Status(ErrorKind::kCancelled, what() + ": cancelled"));
  }

  void use_connection(std::unique_ptr<Connection> conn) {
    conn_ = std::move(conn);
    conn_reused_ = conn_->connected();
    response_started_ = false;
    if (!conn_->connected()) {
      state_ = State::kConnecting;
      conn_->connect(this, client_.options().connect_timeout_ms * kNsPerMs);
      return;
    }
    send_request();
  }

  // A cancel that raced with an operation's real completion: stop at the next step instead of going on.
  bool stop_if_cancelled() {
    if (!cancelled_) return false;
    fail_attempt(Status(ErrorKind::kCancelled, what() + ": cancelled"), false);
    return true;
  }

  void on_connected(const Status& status) override {
    if (stop_if_cancelled()) return;
    if (!status.ok()) {
      // Certificate and name checks fail the same way every time: no retry.
      const bool tls_verdict = status.message().find("certificate") != std::string::npos;
      fail_attempt(status, !tls_verdict);
      return;
    }
    send_request();
  }

  void on_sent(const Status& status) override {
    if (stop_if_cancelled()) return;
    if (!status.ok()) {
      fail_attempt(status, true);
      return;
    }
    state_ = State::kHead;
    parser_.reset();
    receive_head();
  }

  void on_received(int32_t n) override {
    if (stop_if_cancelled()) return;
    if (n < 0 && n != -ECANCELED) {
      if (n == -EPROTO && !conn_->tls_status().ok()) {
        fail_attempt(conn_->tls_status(), true);
        return;
      }
      const ErrorKind kind = n == -ETIMEDOUT ? ErrorKind::kTimeout : ErrorKind::kNetwork;
      const std::string when = state_ == State::kHead ? "waiting for the response" : "reading the response body";
      fail_attempt(Status(kind, (n == -ETIMEDOUT ? "timed out " : errno_text(n) + " ") + when), true);
      return;
    }
    if (n < 0) {
      fail_attempt(Status(ErrorKind::kCancelled, "cancelled"), false);
      return;
    }
    switch (state_) {
      case State::kHead: on_head_bytes(static_cast<size_t>(n)); return;
      case State::kBody: on_body_bytes(static_cast<size_t>(n)); return;
      case State::kText: on_text_bytes(static_cast<size_t>(n)); return;
      default: return;
    }
  }

 private:
  enum class State { kAcquire, kConnecting, kSending, kHead, kBody, kText, kBackoff };

  // The call's description for messages, built on first use only (most calls never need it).
  const std::string& what() {
    if (call_->what.empty()) {
      if (call_->display.empty()) {
        call_->display = call_->method + " " + client_.url_for(call_->path) + (call_->query.empty() ? "" : "?" + call_->query);
      }
      call_->what = call_->describe();
    }
    return call_->what;
  }

  bool into_pieces() const { return !call_->pieces.empty(); }
  // Body bytes the next response should carry (for a ranged GET).
  uint64_t body_remaining_hint() const { return call_->range ? range_length() - delivered_ : 0; }
  uint64_t range_length() const { return call_->range->last - call_->range->first + 1; }

  void send_request() {
    state_ = State::kSending;
    RequestHead head;
    head.method = call_->method;
    head.path = call_->path;
    head.query = call_->query;
    head.host = client_.endpoint().host_header;
    head.fields = call_->fields;
    for (const auto& [name, value] : client_.options().headers) head.fields.push_back({name, value});
    add_user_agent(head.fields);
    if (call_->range) head.range = ByteRange{call_->range->first + delivered_, call_->range->last};
    if (!call_->body.empty() || call_->send_content_length) head.content_length = call_->body.size();
    if (call_->decorate) {
      Status decorated = call_->decorate(head);
      if (!decorated.ok()) {
        fail_attempt(decorated, false);  // gives the connection's pool slot back
        return;
      }
    }
    std::string wire;
    Status written = write_request_head(head, &wire);
    if (!written.ok()) {
      fail_attempt(written, false);
      return;
    }
    // The body is sent from the caller's memory (no copy on plain HTTP).
    conn_->send(this, wire, call_->body);
  }

  void receive_head() {
    const uint64_t timeout = client_.options().first_byte_timeout_ms * kNsPerMs;
    uint32_t length = static_cast<uint32_t>(Connection::kHeadBufferBytes);
    if (into_pieces()) {
      // A small body is worth one copy to save a receive; a large one must not be copied.
      const uint64_t body = body_remaining_hint();
      length = kHeadProbeBytes + static_cast<uint32_t>(body <= kSmallBodyBytes ? body : 0);
    }
    conn_->receive(this, conn_->head_buffer(), length, -1, timeout);
  }

  void on_head_bytes(size_t n) {
    if (n == 0) {
      fail_attempt(Status(ErrorKind::kNetwork, response_started_ ? "connection closed inside the response head"
                                                                 : "connection closed before any response"),
                   true);
      return;
    }
    response_started_ = true;
    const auto bytes = std::span<const char>(reinterpret_cast<const char*>(conn_->head_buffer()), n);
    const ResponseHeadParser::Result r = parser_.feed(bytes);
    if (r.progress == ResponseHeadParser::Progress::kError) {
      fail_attempt(Status(parser_.status().kind(), "bad response from " + client_.endpoint().host_header + ": " +
                                                       parser_.status().message()),
                   false);
      return;
    }
    if (r.progress == ResponseHeadParser::Progress::kNeedMore) {
      receive_head();
      return;
    }
    on_head(std::span<const std::byte>(conn_->head_buffer() + r.consumed, n - r.consumed));
  }

  void on_head(std::span<const std::byte> leftover) {
    const ResponseHead& head = parser_.head();
    if (head.status >= 100 && head.status < 200 && head.status != 101) {
      // An interim answer (100 Continue, 103 Early Hints): the real head follows, maybe in these very bytes.
      parser_.reset();
      const ResponseHeadParser::Result r =
          parser_.feed(std::span<const char>(reinterpret_cast<const char*>(leftover.data()), leftover.size()));
      if (r.progress == ResponseHeadParser::Progress::kError) {
        fail_attempt(Status(parser_.status().kind(), "bad response from " + client_.endpoint().host_header + ": " +
                                                         parser_.status().message()),
                     false);
      } else if (r.progress == ResponseHeadParser::Progress::kNeedMore) {
        receive_head();
      } else {
        on_head(leftover.subspan(r.consumed));
      }
      return;
    }
    must_close_ = head.connection_close;
    if (call_->check_head) {
      Status checked = call_->check_head(head);
      if (!checked.ok()) {
        must_close_ = true;
        fail_attempt(checked, false);
        return;
      }
    }
    const bool success = head.status >= 200 && head.status < 300;
    if (success && into_pieces() && (head.status == 206 || head.status == 200)) {
      Status framed = frame_ranged_body(head);
      if (!framed.ok()) {
        must_close_ = true;
        fail_attempt(framed, false);
        return;
      }
      state_ = State::kBody;
      place_leftover(leftover);
      continue_body();
      return;
    }
    if (success && into_pieces()) {
      must_close_ = true;
      fail_attempt(Status(ErrorKind::kIntegrity, what() + ": expected 206 or 200 with the body, got HTTP " +
                                                     std::to_string(head.status)),
                   false);
      return;
    }
    start_text_body(head, leftover);
  }

  Status frame_ranged_body(const ResponseHead& head) {
    const uint64_t first = call_->range->first + delivered_;
    const uint64_t last = call_->range->last;
    if (head.chunked) {
      return Status(ErrorKind::kUnsupported, what() + ": server sent the ranged body with chunked transfer coding; "
                                                      "a body that lands in place needs Content-Length");
    }
    if (head.status == 206) {
      const auto& cr = head.content_range;
      // A range cut short at the object's end: the caller asked for bytes that do not exist (as file:// says).
      if (cr && !cr->unsatisfied && cr->first == first && cr->last < last && cr->complete_length &&
          *cr->complete_length == cr->last + 1) {
        return Status(ErrorKind::kInvalidArgument, what() + ": the range ends past the object's end at " +
                                                       std::to_string(*cr->complete_length));
      }
      if (!cr || cr->unsatisfied || cr->first != first || cr->last != last ||
          (head.content_length && *head.content_length != last - first + 1)) {
        std::string got = cr ? "Content-Range bytes " + std::to_string(cr->first) + "-" + std::to_string(cr->last)
                             : "no Content-Range";
        return Status(ErrorKind::kIntegrity, what() + ": server answered 206 with " + got + " to a request for bytes " +
                                                 std::to_string(first) + "-" + std::to_string(last));
      }
      skip_remaining_ = 0;
      body_remaining_ = last - first + 1;
      return {};
    }
    // 200: the server ignored Range and sends the whole object; read and drop what precedes the range.
    if (!head.content_length) {
      return Status(ErrorKind::kUnsupported, what() + ": server ignored the Range header and sent a body of "
                                                          "unknown length; refusing an unbounded read");
    }
    if (*head.content_length <= last) {
      return Status(ErrorKind::kInvalidArgument, what() + ": the range ends past the object's end at " +
                                                     std::to_string(*head.content_length));
    }
    if (first > kMaxSkipBytes) {
      return Status(ErrorKind::kUnsupported, what() + ": server ignored the Range header; reaching byte " +
                                                 std::to_string(first) + " would read and drop more than " +
                                                 std::to_string(kMaxSkipBytes) + " bytes");
    }
    skip_remaining_ = first;
    body_remaining_ = last + 1;
    if (*head.content_length > last + 1) must_close_ = true;  // the rest of the object is never read
    return {};
  }

  // Locates the destination of the next body byte: piece pointer (or scratch for gaps) and how much fits.
  void next_target(std::byte** dest, uint32_t* len, int32_t* buf_index) {
    const auto scratch = worker_.scratch();
    if (skip_remaining_ > 0) {
      *dest = scratch.data();
      *len = static_cast<uint32_t>(std::min<uint64_t>(skip_remaining_, scratch.size()));
      *buf_index = worker_.scratch_buf_index();
      return;
    }
    while (piece_offset_ >= call_->pieces[piece_].length) {
      piece_offset_ -= call_->pieces[piece_].length;
      ++piece_;
    }
    const engine::ReadPiece& piece = call_->pieces[piece_];
    uint64_t room = std::min(piece.length - piece_offset_, body_remaining_);
    if (piece.data != nullptr) {
      *dest = piece.data + piece_offset_;
      *buf_index = piece.buf_index;
      room = std::min<uint64_t>(room, kMaxReceiveBytes);
    } else {
      *dest = scratch.data();
      *buf_index = worker_.scratch_buf_index();
      room = std::min<uint64_t>(room, scratch.size());
    }
    *len = static_cast<uint32_t>(room);
  }

  void advance(uint64_t n) {
    body_remaining_ -= n;
    if (skip_remaining_ > 0) {
      skip_remaining_ -= n;
      return;
    }
    delivered_ += n;
    piece_offset_ += n;
  }

  // Body bytes that arrived with the head: the only user-space copy on the data path, bounded by the head buffer.
  void place_leftover(std::span<const std::byte> leftover) {
    auto& counters = client_.engine().counters;
    counters.add(counters.bytes_body, leftover.size());
    while (!leftover.empty() && body_remaining_ > 0) {
      std::byte* dest;
      uint32_t len;
      int32_t index;
      next_target(&dest, &len, &index);
      const size_t n = std::min<size_t>(len, leftover.size());
      if (skip_remaining_ == 0 && call_->pieces[piece_].data != nullptr) {
        std::memcpy(dest, leftover.data(), n);
        counters.add(counters.bytes_copied_user, n);
      }
      advance(n);
      leftover = leftover.subspan(n);
    }
    if (!leftover.empty()) must_close_ = true;  // more than the response: do not trust the connection
  }

  void continue_body() {
    if (body_remaining_ == 0) {
      complete_response({});
      return;
    }
    std::byte* dest;
    uint32_t len;
    int32_t index;
    next_target(&dest, &len, &index);
    conn_->receive(this, dest, len, index, client_.options().idle_timeout_ms * kNsPerMs);
  }

  void on_body_bytes(size_t n) {
    if (n == 0) {
      fail_attempt(Status(ErrorKind::kIntegrity, "truncated body: connection closed with " +
                                                     std::to_string(body_remaining_) + " body bytes still expected"),
                   true);
      return;
    }
    client_.engine().counters.add(client_.engine().counters.bytes_body, n);
    advance(n);
    continue_body();
  }

  void start_text_body(const ResponseHead& head, std::span<const std::byte> leftover) {
    state_ = State::kText;
    call_->text.clear();
    chunked_ = head.chunked;
    decoder_ = ChunkedDecoder();
    const bool no_body = call_->method == "HEAD" || head.status == 204 || head.status == 304 ||
                         (head.status >= 100 && head.status < 200);
    if (no_body) {
      text_remaining_ = 0;
    } else if (chunked_) {
      text_remaining_ = UINT64_MAX;
    } else if (head.content_length) {
      text_remaining_ = *head.content_length;
      if (text_remaining_ > call_->text_limit) {
        must_close_ = true;
        fail_attempt(Status(ErrorKind::kUnsupported, what() + ": HTTP " + std::to_string(head.status) +
                                                         " response body of " + std::to_string(text_remaining_) +
                                                         " bytes exceeds the limit of " +
                                                         std::to_string(call_->text_limit)),
                     false);
        return;
      }
    } else {
      text_remaining_ = UINT64_MAX;  // delimited by close
      must_close_ = true;
    }
    if (!consume_text(std::span<const char>(reinterpret_cast<const char*>(leftover.data()), leftover.size()))) return;
    continue_text();
  }

  // Returns false when the exchange already moved on (finished or failed).
  bool consume_text(std::span<const char> bytes) {
    if (chunked_) {
      const ChunkedDecoder::Result r = decoder_.feed(bytes, &call_->text);
      if (r.progress == ChunkedDecoder::Progress::kError) {
        must_close_ = true;
        fail_attempt(decoder_.status(), false);
        return false;
      }
      if (r.progress == ChunkedDecoder::Progress::kDone) text_remaining_ = 0;
    } else {
      const size_t n = std::min<uint64_t>(bytes.size(), text_remaining_);
      call_->text.append(bytes.data(), n);
      text_remaining_ -= n;
      if (n < bytes.size()) must_close_ = true;  // more than the response: do not reuse the connection
    }
    if (call_->text.size() > call_->text_limit) {
      must_close_ = true;
      fail_attempt(Status(ErrorKind::kUnsupported, what() + ": response body exceeds the limit of " +
                                                       std::to_string(call_->text_limit) + " bytes"),
                   false);
      return false;
    }
    return true;
  }

  void continue_text() {
    if (text_remaining_ == 0) {
      finish_text();
      return;
    }
    conn_->receive(this, conn_->head_buffer(), static_cast<uint32_t>(Connection::kHeadBufferBytes), -1,
                   client_.options().idle_timeout_ms * kNsPerMs);
  }

  void on_text_bytes(size_t n) {
    if (n == 0) {
      if (text_remaining_ == UINT64_MAX && !chunked_) {
        finish_text();  // close-delimited body
        return;
      }
      fail_attempt(Status(ErrorKind::kIntegrity, "truncated body: connection closed inside the response body"), true);
      return;
    }
    if (!consume_text(std::span<const char>(reinterpret_cast<const char*>(conn_->head_buffer()), n))) return;
    continue_text();
  }

  void finish_text() {
    const ResponseHead& head = parser_.head();
    if (head.status >= 200 && head.status < 300) {
      complete_response({});
      return;
    }
    const bool retry = call_->retryable_status ? call_->retryable_status(head, call_->text)
                                               : is_retryable_http_status(head.status);
    Status error = call_->error_for_status ? call_->error_for_status(head, call_->text, what())
                                           : status_error(head, call_->text, what());
    release_connection();
    if (retry) {
      retry_or_fail(error);
      return;
    }
    call_->response = head;
    finish(error);
  }

  void complete_response(const Status& status) {
    if (call_->keep_response) call_->response = parser_.head();
    conn_->exchanges++;
    release_connection();
    finish(status);
  }

  // Returns the connection to the pool (or closes it) and hands it to a waiting exchange if any.
  void release_connection() {
    if (!conn_) return;
    HttpClient::Pool& pool = client_.pool(worker_);
    if (must_close_ || conn_->in_flight()) {
      conn_.reset();
      --pool.open;
      if (!pool.waiting.empty()) {
        Exchange* next = pool.waiting.front();
        pool.waiting.pop_front();
        next->begin();
      }
      return;
    }
    if (!pool.waiting.empty()) {
      Exchange* next = pool.waiting.front();
      pool.waiting.pop_front();
      next->use_connection(std::move(conn_));
      return;
    }
    pool.idle.push_back(std::move(conn_));
  }

  // One retry policy for every failure of an attempt.
  void fail_attempt(Status status, bool retryable) {  // by value: it may live in the connection closed here
    const bool stale = conn_reused_ && !response_started_;
    must_close_ = true;
    release_connection();
    if (cancelled_) {
      finish(Status(ErrorKind::kCancelled, what() + ": cancelled"));
      return;
    }
    if (!retryable) {
      finish(status);
      return;
    }
    // A kept-alive connection the server closed while idle: retry at once on a fresh one, without penalty.
    if (stale && !stale_retry_used_) {
      stale_retry_used_ = true;
      begin();
      return;
    }
    retry_or_fail(status);
  }

  void retry_or_fail(const Status& status) {
    ++attempts_;
    if (attempts_ >= client_.options().max_attempts) {
      finish(Status(status.kind(), what() + " failed after " + std::to_string(attempts_) +
                                       (attempts_ == 1 ? " attempt: " : " attempts: ") + status.message(),
                    status.http_status(), status.s3_code(), status.request_id()));
      return;
    }
    client_.engine().counters.add(client_.engine().counters.retries, 1);
    const uint64_t cap = std::min<uint64_t>(client_.options().backoff_max_ms,
                                            uint64_t{client_.options().backoff_base_ms} << std::min(attempts_, 20u));
    const uint64_t delay_ms = cap == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, cap)(jitter());
    state_ = State::kBackoff;
    timer_.timeout_ns = std::max<uint64_t>(delay_ms * kNsPerMs, 1);
    worker_.loop().submit(&timer_);
  }

  static void on_timer(engine::Completion* c) {
    auto* self = static_cast<Exchange*>(c->context);
    if (self->cancelled_) {
      self->finish(Status(ErrorKind::kCancelled, self->what() + ": cancelled"));
      return;
    }
    self->begin();
  }

  void finish(const Status& status) {
    call_->attempts = attempts_ + 1;
    call_->exchange = nullptr;
    HttpCall* call = call_;
    delete this;
    call->done(status);
  }

  HttpClient& client_;
  engine::Worker& worker_;
  HttpCall* call_;
  std::unique_ptr<Connection> conn_;
  State state_ = State::kAcquire;
  bool conn_reused_ = false;
  bool response_started_ = false;
  bool stale_retry_used_ = false;
  bool must_close_ = false;
  bool cancelled_ = false;
  unsigned attempts_ = 0;
  uint64_t delivered_ = 0;       // body bytes placed in pieces: where a retried ranged GET resumes
  size_t piece_ = 0;
  uint64_t piece_offset_ = 0;    // bytes of pieces[piece_] filled (may exceed its length until normalized)
  uint64_t body_remaining_ = 0;  // bytes of this response's body still to read
  uint64_t skip_remaining_ = 0;  // bytes before the range to drop (200 answers)
  bool chunked_ = false;
  uint64_t text_remaining_ = 0;
  ChunkedDecoder decoder_;
  ResponseHeadParser parser_;
  engine::Completion timer_;
};

HttpClient::HttpClient(Engine::Impl& engine, Endpoint endpoint, HttpOptions options, std::shared_ptr<TlsContext> tls)
    : engine_(engine), endpoint_(std::move(endpoint)), options_(std::move(options)), tls_(std::move(tls)) {
  const auto workers = static_cast<unsigned>(engine_.workers.size());
  per_worker_ = std::max(1u, (std::max(1u, options_.connections) + workers - 1) / workers);
  for (unsigned i = 0; i < workers; ++i) pools_.push_back(std::make_shared<Pool>());
  if (options_.max_attempts == 0) options_.max_attempts = 1;
}

HttpClient::~HttpClient() {
  // Idle connections belong to their workers' threads: each pool is handed to its worker to close, without
  // waiting. (This may run on another worker, which must never block on a peer that is itself shutting down.)
  for (auto& worker : engine_.workers) {
    std::shared_ptr<Pool> pool = std::move(pools_[worker->id()]);
    if (worker->on_worker_thread()) pool->idle.clear();
    else worker->post([pool] { pool->idle.clear(); });
  }
}

std::string HttpClient::url_for(const std::string& path) const {
  return std::string(endpoint_.tls ? "https://" : "http://") + endpoint_.host_header + path;
}

void HttpClient::start(engine::Worker& worker, HttpCall* call) {
  auto* exchange = new Exchange(*this, worker, call);
  call->exchange = exchange;
  exchange->begin();
}

void HttpClient::cancel(HttpCall* call) {
  if (call->exchange != nullptr) static_cast<Exchange*>(call->exchange)->cancel();
}

Status HttpClient::execute(HttpCall& call) {
  std::promise<Status> result;
  call.done = [&result](const Status& status) { result.set_value(status); };
  engine::Worker& worker = engine_.pick_worker();
  worker.post([this, &worker, &call] { start(worker, &call); });
  return result.get_future().get();
}

}  // namespace ringfetch::http
