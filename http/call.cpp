// Call and Attempt. An Attempt moves through its states on connection events (on_event is the one transition
// function); whatever ends it — an answer, a failure, a cancel — is reported once to its Call, which asks the
// RetryPolicy what comes next. Ranged bodies resume at the byte the last attempt reached (Call::delivered_).
#include "http/call.hpp"

#include <strings.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <future>

#include "http/http_client.hpp"

namespace ringfetch::http {
namespace {

#ifndef RINGFETCH_VERSION
#error "the build defines RINGFETCH_VERSION (the project's version)"
#endif
// Servers and their operators see who is calling (S3 access logs, nginx logs); a caller's own User-Agent wins.
constexpr std::string_view kUserAgent = "ringfetch/" RINGFETCH_VERSION;

// Head reads of a ranged GET ask for this much at a time: whatever body arrives with the head has to be copied,
// so a small read bounds that copy (typical response heads are 200-800 bytes).
constexpr uint32_t kHeadProbeBytes = 1024;
// Bodies up to this size are read together with the head and copied into place (one receive instead of two).
constexpr uint64_t kSmallBodyBytes = 8 << 10;
constexpr uint64_t kMaxSkipBytes = 1ull << 30;   // 200 instead of 206: most we read and drop to reach a range
constexpr uint32_t kMaxReceiveBytes = 1u << 30;  // one receive op
constexpr uint64_t kNsPerMs = 1'000'000;

std::string errno_text(int32_t result) { return strerror(result < 0 ? -result : result); }

bool is_network(const Status& status) {
  return status.kind() == ErrorKind::kNetwork || status.kind() == ErrorKind::kTimeout;
}

// Writes the head's fields in place: the request's, the options' extra headers, and a User-Agent unless the
// caller set one. Assigning into the strings already there keeps a reused head free of allocations.
void set_fields(std::vector<RequestField>& out, const std::vector<RequestField>& fields, const HttpOptions& options) {
  size_t n = 0;
  bool has_agent = false;
  auto put = [&](std::string_view name, std::string_view value) {
    if (n == out.size()) out.emplace_back();
    out[n].name.assign(name);
    out[n].value.assign(value);
    ++n;
    has_agent = has_agent || (name.size() == 10 && strncasecmp(name.data(), "User-Agent", 10) == 0);
  };
  for (const RequestField& field : fields) put(field.name, field.value);
  for (const auto& [name, value] : options.headers) put(name, value);
  if (!has_agent) put("User-Agent", kUserAgent);
  out.resize(n);
}

}  // namespace

// ---- Errors -------------------------------------------------------------------------------------------------------

std::string readable_body(std::string_view body, size_t max_chars) {
  std::string out;
  bool in_markup = false;
  bool space = false;
  for (char c : body) {
    if (c == '<') {
      in_markup = true;
      space = true;  // markup separates words ("<h1>404</h1><p>x" -> "404 x")
      continue;
    }
    if (in_markup) {
      in_markup = c != '>';
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    out.push_back(c);
  }
  return out;
}

Status http_error(const ResponseHead& head, std::string_view body, const std::string& what) {
  std::string message = what + ": HTTP " + std::to_string(head.status);
  if (!head.reason().empty()) message += " " + std::string(head.reason());
  const std::string text = readable_body(body);
  // nginx's error pages repeat the status line ("404 Not Found nginx/1.22.1"); say only what adds something.
  if (!text.empty() && text.find(std::string(head.reason())) == std::string::npos) message += ": " + text;
  return Status(ErrorKind::kHttpStatus, message, head.status);
}

bool is_retryable_http_status(int status) { return status == 429 || (status >= 500 && status <= 599 && status != 501); }

Status ResponsePolicy::decorate(const Call&, RequestHead&) const { return {}; }
Status ResponsePolicy::check_head(const ResponseHead&) const { return {}; }
Judgement ResponsePolicy::judge(const ResponseHead& head, std::string_view body, const std::string& what) const {
  return {http_error(head, body, what), is_retryable_http_status(head.status)};
}
const ResponsePolicy& ResponsePolicy::plain() {
  static const ResponsePolicy policy;
  return policy;
}

// ---- Attempt ------------------------------------------------------------------------------------------------------

void Attempt::begin(engine::Worker& worker, const Route& route, bool hedge) {
  worker_ = &worker;
  route_ = route;
  is_hedge_ = hedge;
  hedge_checked_ = hedge;  // a hedge is not hedged again
  state_ = State::kQueued;
  route.client->acquire(worker, this);
}

void Attempt::grant(std::unique_ptr<Connection> connection) {
  conn_ = std::move(connection);
  reuse_ = Reuse::kKeep;
  reused_ = conn_->connected();
  parser_.reset();
  if (!conn_->connected()) {
    state_ = State::kConnecting;
    conn_->connect(this, route_.client->addresses().pick(), call_.router_->options().connect_timeout_ms * kNsPerMs);
    return;
  }
  send_request();
}

Attempt::Cancelled Attempt::cancel() {
  if (conn_ && conn_->in_flight()) {
    conn_->cancel();
    return Cancelled::kInFlight;
  }
  if (state_ == State::kQueued) {
    route_.client->withdraw(*worker_, this);
    state_ = State::kIdle;
    return Cancelled::kWasQueued;
  }
  return Cancelled::kNothing;
}

void Attempt::abandon() {
  if (state_ == State::kQueued) {
    route_.client->withdraw(*worker_, this);
    state_ = State::kIdle;
    call_.attempt_ended(*this, route_, Status(ErrorKind::kCancelled, "another attempt answered first"), Failure{});
    return;
  }
  state_ = State::kAbandoned;
  if (conn_ && conn_->in_flight()) conn_->cancel();
}

// The end of an abandoned attempt: its connection is closed (an answer may still be on its way).
void Attempt::lost(uint64_t wasted_bytes) {
  auto& counters = call_.router_->engine().counters;
  counters.add(counters.hedge_bytes_wasted, wasted_bytes + parser_.buffered_bytes());
  reuse_ = Reuse::kClose;
  release_connection();
  state_ = State::kIdle;
  call_.attempt_ended(*this, route_, Status(ErrorKind::kCancelled, "another attempt answered first"), Failure{});
}

void Attempt::on_event(Event event, int32_t result, const Status& status) {
  if (state_ == State::kAbandoned) {
    lost(event == Event::kReceived && result > 0 ? static_cast<uint64_t>(result) : 0);
    return;
  }
  if (call_.cancelled_) {
    fail(Status(ErrorKind::kCancelled, call_.what() + ": cancelled"), FailureStage::kLocal, false);
    return;
  }
  switch (state_) {
    case State::kConnecting:
      if (event != Event::kConnected) break;
      if (!status.ok()) {
        // Certificate and name checks fail the same way every time: no retry.
        const bool verdict = status.message().find("certificate") != std::string::npos;
        fail(status, FailureStage::kConnect, !verdict);
        return;
      }
      send_request();
      return;
    case State::kSending:
      if (event != Event::kSent) break;
      if (!status.ok()) {
        fail(status, FailureStage::kBeforeAnswer, true);
        return;
      }
      state_ = State::kHead;
      sent_ns_ = engine::monotonic_ns();
      receive_head();
      return;
    case State::kHead:
    case State::kBody:
    case State::kText:
      if (event != Event::kReceived) break;
      if (result < 0) {
        on_receive_failed(result);
      } else if (state_ == State::kHead) {
        on_head_bytes(static_cast<size_t>(result));
      } else if (result == 0) {
        if (state_ == State::kText && text_remaining_ == UINT64_MAX && !parser_.head().chunked) {
          finish_text();  // a body delimited by the close
          return;
        }
        fail(Status(ErrorKind::kIntegrity, "truncated body: connection closed with " +
                                               (state_ == State::kBody ? std::to_string(body_remaining_) + " body bytes"
                                                                       : std::string("part of the body")) +
                                               " still expected"),
             FailureStage::kInAnswer, true);
      } else {
        const uint64_t now = engine::monotonic_ns();
        last_byte_ns_ = now;
        window_bytes_ += static_cast<uint64_t>(result);
        if (too_slow(now)) {
          fail_slow();
          return;
        }
        if (state_ == State::kBody) {
          auto& counters = call_.router_->engine().counters;
          counters.add(counters.bytes_body, static_cast<uint64_t>(result));
          advance(static_cast<uint64_t>(result));
          continue_body();
        } else if (consume_text(std::span<const char>(reinterpret_cast<const char*>(conn_->head_buffer()),
                                                      static_cast<size_t>(result)))) {
          continue_text();
        }
      }
      return;
    case State::kIdle:
    case State::kQueued:
    case State::kAbandoned:
      break;
  }
  assert(false && "an event the attempt's state does not expect");
  fail(Status(ErrorKind::kIntegrity, "HTTP attempt received an event its state does not expect"), FailureStage::kLocal,
       false);
}

void Attempt::send_request() {
  state_ = State::kSending;
  const Request& request = call_.request;
  RequestHead& head = call_.head_;
  head.method.assign(request.method);
  head.path.assign(request.path);
  head.query.assign(request.query);
  head.host.assign(route_.client->endpoint().host_header);
  set_fields(head.fields, request.fields, call_.router_->options());
  head.range.reset();
  if (request.range) head.range = ByteRange{request.range->first + call_.delivered_, request.range->last};
  head.content_length.reset();
  if (!request.body.empty() || request.send_content_length) head.content_length = request.body.size();
  if (Status decorated = call_.policy->decorate(call_, head); !decorated.ok()) {
    fail(decorated, FailureStage::kLocal, false);
    return;
  }
  call_.wire_.clear();
  if (Status written = write_request_head(head, &call_.wire_); !written.ok()) {
    fail(written, FailureStage::kLocal, false);
    return;
  }
  // The body is sent from the caller's memory (no copy on plain HTTP).
  conn_->send(this, call_.wire_, request.body);
}

void Attempt::receive(std::byte* dest, uint32_t length, int32_t buf_index, uint64_t timeout_ns) {
  // With a throughput floor, wake at least once per grace period to check it: a trickle is never silent long
  // enough for the idle timeout.
  const HttpOptions& options = call_.router_->options();
  if (options.min_throughput_bytes_per_s > 0 && state_ != State::kHead) {
    timeout_ns = std::min<uint64_t>(timeout_ns, std::max<uint64_t>(options.slow_grace_ms, 1) * kNsPerMs);
  }
  conn_->receive(this, dest, length, buf_index, timeout_ns);
}

bool Attempt::too_slow(uint64_t now) {
  const HttpOptions& options = call_.router_->options();
  if (options.min_throughput_bytes_per_s == 0) return false;
  const uint64_t elapsed = now - window_start_ns_;
  if (elapsed < uint64_t{options.slow_grace_ms} * kNsPerMs) return false;
  // bytes / seconds < floor, without floating point: bytes * 1e9 < floor * ns.
  const bool slow = static_cast<unsigned __int128>(window_bytes_) * 1'000'000'000u <
                    static_cast<unsigned __int128>(options.min_throughput_bytes_per_s) * elapsed;
  window_start_ns_ = now;  // a new window: a connection that recovers is judged on its recent rate
  window_bytes_ = 0;
  return slow;
}

// A trickling connection: abandoned, its address avoided for a while, and the range resumed on another connection.
void Attempt::fail_slow() {
  auto& counters = call_.router_->engine().counters;
  counters.add(counters.slow_connections, 1);
  route_.client->addresses().cool_down(conn_->address());
  fail(Status(ErrorKind::kTimeout, "connection to " + conn_->address().text() + " too slow: under " +
                                       std::to_string(call_.router_->options().min_throughput_bytes_per_s) +
                                       " bytes/s for " + std::to_string(call_.router_->options().slow_grace_ms) +
                                       " ms (HttpOptions::min_throughput_bytes_per_s)"),
       FailureStage::kInAnswer, true);
}

void Attempt::on_receive_failed(int32_t result) {
  if (result == -ETIMEDOUT && state_ == State::kHead && parser_.buffered_bytes() == 0 && !hedge_checked_) {
    const uint64_t waited = engine::monotonic_ns() - sent_ns_;
    if (waited < uint64_t{call_.router_->options().first_byte_timeout_ms} * kNsPerMs) {
      const uint64_t threshold = call_.router_->timing()->threshold_ns();
      if (threshold > 0 && waited >= threshold) {
        hedge_checked_ = true;
        call_.hedge(*this);  // late, not lost: wait on, with a second attempt racing this one
      }
      receive_head();  // a hedge timer that found no threshold yet is set again
      return;
    }
  }
  if (result == -ETIMEDOUT && state_ != State::kHead) {
    const uint64_t now = engine::monotonic_ns();
    const uint64_t idle = uint64_t{call_.router_->options().idle_timeout_ms} * kNsPerMs;
    if (now - last_byte_ns_ < idle) {
      if (too_slow(now)) {
        fail_slow();
      } else if (state_ == State::kBody) {
        continue_body();  // a throughput check, not silence: receive again
      } else {
        continue_text();
      }
      return;
    }
  }
  if (result == -EPROTO && !conn_->tls_status().ok()) {
    fail(conn_->tls_status(), parser_.buffered_bytes() > 0 ? FailureStage::kInAnswer : FailureStage::kBeforeAnswer,
         true);
    return;
  }
  if (result == -ECANCELED) {
    fail(Status(ErrorKind::kCancelled, call_.what() + ": cancelled"), FailureStage::kLocal, false);
    return;
  }
  const ErrorKind kind = result == -ETIMEDOUT ? ErrorKind::kTimeout : ErrorKind::kNetwork;
  const std::string when = state_ == State::kHead ? "waiting for the response" : "reading the response body";
  const FailureStage stage =
      parser_.buffered_bytes() > 0 || state_ != State::kHead ? FailureStage::kInAnswer : FailureStage::kBeforeAnswer;
  fail(Status(kind, (result == -ETIMEDOUT ? "timed out " : errno_text(result) + " ") + when), stage, true);
}

void Attempt::receive_head() {
  uint64_t timeout = uint64_t{call_.router_->options().first_byte_timeout_ms} * kNsPerMs;
  if (parser_.buffered_bytes() == 0) {
    const uint64_t waited = engine::monotonic_ns() - sent_ns_;
    timeout = waited < timeout ? timeout - waited : 1;
    // The first-byte wait doubles as the hedge timer: no timer of its own per request.
    if (!hedge_checked_ && call_.may_hedge(*this)) {
      // Until enough first-byte times are known to say what late is, look again every hedge_min_ms: a request
      // sent early is hedged too once the threshold exists.
      const uint64_t threshold = call_.router_->timing()->threshold_ns();
      const uint64_t wake =
          threshold > 0 ? threshold : waited + uint64_t{call_.router_->options().hedge_min_ms} * kNsPerMs;
      if (wake > waited && wake - waited < timeout) timeout = wake - waited;
      else hedge_checked_ = true;  // too late or too near the timeout to be worth it
    }
  }
  auto length = static_cast<uint32_t>(Connection::kHeadBufferBytes);
  if (!call_.pieces.empty() && call_.request.range) {
    // A small body is worth one copy to save a receive; a large one must not be copied.
    const uint64_t body = call_.request.range->last - call_.request.range->first + 1 - call_.delivered_;
    length = kHeadProbeBytes + static_cast<uint32_t>(body <= kSmallBodyBytes ? body : 0);
  }
  conn_->receive(this, conn_->head_buffer(), length, -1, timeout);
}

void Attempt::on_head_bytes(size_t n) {
  if (n == 0) {
    const bool started = parser_.buffered_bytes() > 0;
    fail(Status(ErrorKind::kNetwork,
                started ? "connection closed inside the response head" : "connection closed before any response"),
         started ? FailureStage::kInAnswer : FailureStage::kBeforeAnswer, true);
    return;
  }
  if (parser_.buffered_bytes() == 0) {
    if (RequestTiming* timing = call_.router_->timing()) timing->record_first_byte(engine::monotonic_ns() - sent_ns_);
  }
  const auto bytes = std::span<const char>(reinterpret_cast<const char*>(conn_->head_buffer()), n);
  const ResponseHeadParser::Result r = parser_.feed(bytes);
  if (r.progress == ResponseHeadParser::Progress::kError) {
    fail(Status(parser_.status().kind(),
                "bad response from " + route_.client->endpoint().host_header + ": " + parser_.status().message()),
         FailureStage::kInAnswer, false);
    return;
  }
  if (r.progress == ResponseHeadParser::Progress::kNeedMore) {
    receive_head();
    return;
  }
  on_head(std::span<const std::byte>(conn_->head_buffer() + r.consumed, n - r.consumed));
}

void Attempt::on_head(std::span<const std::byte> leftover) {
  const ResponseHead& head = parser_.head();
  if (head.status >= 100 && head.status < 200 && head.status != 101) {
    // An interim answer (100 Continue, 103 Early Hints): the real head follows, maybe in these very bytes.
    parser_.reset();
    const ResponseHeadParser::Result r =
        parser_.feed(std::span<const char>(reinterpret_cast<const char*>(leftover.data()), leftover.size()));
    if (r.progress == ResponseHeadParser::Progress::kError) {
      fail(Status(parser_.status().kind(),
                  "bad response from " + route_.client->endpoint().host_header + ": " + parser_.status().message()),
           FailureStage::kInAnswer, false);
    } else if (r.progress == ResponseHeadParser::Progress::kNeedMore) {
      receive_head();
    } else {
      on_head(leftover.subspan(r.consumed));
    }
    return;
  }
  call_.claim(*this);  // the first answer wins; a racing attempt is abandoned before it reads a body byte
  if (head.connection_close) reuse_ = Reuse::kClose;
  const uint64_t now = engine::monotonic_ns();
  body_start_ns_ = now;
  body_length_ = 0;
  window_start_ns_ = now;
  window_bytes_ = 0;
  last_byte_ns_ = now;
  const bool success = head.status >= 200 && head.status < 300;
  if (success) {
    if (Status checked = call_.policy->check_head(head); !checked.ok()) {
      fail(checked, FailureStage::kInAnswer, false);
      return;
    }
  }
  if (success && !call_.pieces.empty()) {
    if (head.status != 206 && head.status != 200) {
      fail(Status(ErrorKind::kIntegrity, call_.what() + ": expected 206 or 200 with the body, got HTTP " +
                                             std::to_string(head.status)),
           FailureStage::kInAnswer, false);
      return;
    }
    if (Status framed = frame_ranged_body(head); !framed.ok()) {
      fail(framed, FailureStage::kInAnswer, false);
      return;
    }
    state_ = State::kBody;
    place_leftover(leftover);
    continue_body();
    return;
  }
  start_text(head, leftover);
}

Status Attempt::frame_ranged_body(const ResponseHead& head) {
  const ByteRange& range = *call_.request.range;
  const uint64_t first = range.first + call_.delivered_;
  const uint64_t last = range.last;
  auto what = [this]() -> const std::string& { return call_.what(); };  // built only for an error
  if (head.chunked) {
    return Status(ErrorKind::kUnsupported, what() + ": server sent the ranged body with chunked transfer coding; "
                                                  "a body that lands in place needs Content-Length");
  }
  if (head.status == 206) {
    const auto& cr = head.content_range;
    // A range cut short at the object's end: the caller asked for bytes that do not exist (as file:// says).
    if (cr && !cr->unsatisfied && cr->first == first && cr->last < last && cr->complete_length &&
        *cr->complete_length == cr->last + 1) {
      return Status(ErrorKind::kInvalidArgument,
                    what() + ": the range ends past the object's end at " + std::to_string(*cr->complete_length));
    }
    if (!cr || cr->unsatisfied || cr->first != first || cr->last != last ||
        (head.content_length && *head.content_length != last - first + 1)) {
      const std::string got = cr ? "Content-Range bytes " + std::to_string(cr->first) + "-" + std::to_string(cr->last)
                                 : "no Content-Range";
      return Status(ErrorKind::kIntegrity, what() + ": server answered 206 with " + got + " to a request for bytes " +
                                               std::to_string(first) + "-" + std::to_string(last));
    }
    skip_remaining_ = 0;
    body_remaining_ = last - first + 1;
    body_length_ = body_remaining_;
    return {};
  }
  // 200: the server ignored Range and sends the whole object; read and drop what precedes the range.
  if (!head.content_length) {
    return Status(ErrorKind::kUnsupported, what() + ": server ignored the Range header and sent a body of "
                                                  "unknown length; refusing an unbounded read");
  }
  if (*head.content_length <= last) {
    return Status(ErrorKind::kInvalidArgument,
                  what() + ": the range ends past the object's end at " + std::to_string(*head.content_length));
  }
  if (first > kMaxSkipBytes) {
    return Status(ErrorKind::kUnsupported, what() + ": server ignored the Range header; reaching byte " +
                                               std::to_string(first) + " would read and drop more than " +
                                               std::to_string(kMaxSkipBytes) + " bytes");
  }
  skip_remaining_ = first;
  body_remaining_ = last + 1;
  if (*head.content_length > last + 1) reuse_ = Reuse::kClose;  // the rest of the object is never read
  return {};
}

// Locates the destination of the next body byte: piece pointer (or scratch for gaps) and how much fits.
void Attempt::next_target(std::byte** dest, uint32_t* len, int32_t* buf_index) {
  const auto scratch = worker_->scratch();
  if (skip_remaining_ > 0) {
    *dest = scratch.data();
    *len = static_cast<uint32_t>(std::min<uint64_t>(skip_remaining_, scratch.size()));
    *buf_index = worker_->scratch_buf_index();
    return;
  }
  const auto& pieces = call_.pieces;
  while (piece_offset_ >= pieces[piece_].length) {
    piece_offset_ -= pieces[piece_].length;
    ++piece_;
  }
  const engine::ReadPiece& piece = pieces[piece_];
  uint64_t room = std::min(piece.length - piece_offset_, body_remaining_);
  if (piece.data != nullptr) {
    *dest = piece.data + piece_offset_;
    *buf_index = piece.buf_index;
    room = std::min<uint64_t>(room, kMaxReceiveBytes);
  } else {
    *dest = scratch.data();
    *buf_index = worker_->scratch_buf_index();
    room = std::min<uint64_t>(room, scratch.size());
  }
  *len = static_cast<uint32_t>(room);
}

void Attempt::advance(uint64_t n) {
  body_remaining_ -= n;
  if (skip_remaining_ > 0) {
    skip_remaining_ -= n;
    return;
  }
  call_.delivered_ += n;
  piece_offset_ += n;
}

// Body bytes that arrived with the head: the only user-space copy on the data path, bounded by the head buffer.
void Attempt::place_leftover(std::span<const std::byte> leftover) {
  // Where the body resumes: a retry starts the pieces at the byte reached, not at their beginning.
  piece_ = 0;
  piece_offset_ = call_.delivered_;
  auto& counters = call_.router_->engine().counters;
  counters.add(counters.bytes_body, leftover.size());
  while (!leftover.empty() && body_remaining_ > 0) {
    std::byte* dest;
    uint32_t len;
    int32_t index;
    next_target(&dest, &len, &index);
    const size_t n = std::min<size_t>(len, leftover.size());
    if (skip_remaining_ == 0 && call_.pieces[piece_].data != nullptr) {
      std::memcpy(dest, leftover.data(), n);
      counters.add(counters.bytes_copied_user, n);
    }
    advance(n);
    leftover = leftover.subspan(n);
  }
  if (!leftover.empty()) reuse_ = Reuse::kClose;  // more than the response: do not trust the connection
}

void Attempt::continue_body() {
  if (body_remaining_ == 0) {
    succeed();
    return;
  }
  std::byte* dest;
  uint32_t len;
  int32_t index;
  next_target(&dest, &len, &index);
  receive(dest, len, index, uint64_t{call_.router_->options().idle_timeout_ms} * kNsPerMs);
}

void Attempt::start_text(const ResponseHead& head, std::span<const std::byte> leftover) {
  state_ = State::kText;
  call_.text.clear();
  decoder_ = ChunkedDecoder();
  const bool no_body = call_.request.method == "HEAD" || head.status == 204 || head.status == 304;
  if (no_body) {
    text_remaining_ = 0;
  } else if (head.chunked) {
    text_remaining_ = UINT64_MAX;
  } else if (head.content_length) {
    text_remaining_ = *head.content_length;
    if (text_remaining_ > call_.text_limit) {
      fail(Status(ErrorKind::kUnsupported, call_.what() + ": HTTP " + std::to_string(head.status) +
                                               " response body of " + std::to_string(text_remaining_) +
                                               " bytes exceeds the limit of " + std::to_string(call_.text_limit)),
           FailureStage::kInAnswer, false);
      return;
    }
  } else {
    text_remaining_ = UINT64_MAX;  // delimited by close
    reuse_ = Reuse::kClose;
  }
  if (!consume_text(std::span<const char>(reinterpret_cast<const char*>(leftover.data()), leftover.size()))) return;
  continue_text();
}

// Returns false when the attempt already ended.
bool Attempt::consume_text(std::span<const char> bytes) {
  if (parser_.head().chunked) {
    const ChunkedDecoder::Result r = decoder_.feed(bytes, &call_.text);
    if (r.progress == ChunkedDecoder::Progress::kError) {
      fail(decoder_.status(), FailureStage::kInAnswer, false);
      return false;
    }
    if (r.progress == ChunkedDecoder::Progress::kDone) text_remaining_ = 0;
  } else {
    const size_t n = std::min<uint64_t>(bytes.size(), text_remaining_);
    call_.text.append(bytes.data(), n);
    if (text_remaining_ != UINT64_MAX) text_remaining_ -= n;
    if (n < bytes.size()) reuse_ = Reuse::kClose;  // more than the response: do not reuse the connection
  }
  if (call_.text.size() > call_.text_limit) {
    fail(Status(ErrorKind::kUnsupported,
                call_.what() + ": response body exceeds the limit of " + std::to_string(call_.text_limit) + " bytes"),
         FailureStage::kInAnswer, false);
    return false;
  }
  return true;
}

void Attempt::continue_text() {
  if (text_remaining_ == 0) {
    finish_text();
    return;
  }
  receive(conn_->head_buffer(), static_cast<uint32_t>(Connection::kHeadBufferBytes), -1,
          uint64_t{call_.router_->options().idle_timeout_ms} * kNsPerMs);
}

void Attempt::finish_text() {
  const ResponseHead& head = parser_.head();
  if (head.status >= 200 && head.status < 300) {
    succeed();
    return;
  }
  // An error answer, judged once: its status, its message and whether another attempt may help.
  conn_->exchanges++;
  Judgement judgement = call_.policy->judge(head, call_.text, call_.what());
  call_.response = head;
  release_connection();
  state_ = State::kIdle;
  Failure failure;
  failure.stage = FailureStage::kAnswer;
  failure.retryable = judgement.retryable;
  call_.attempt_ended(*this, route_, judgement.status, failure);
}

void Attempt::succeed() {
  if (body_length_ > 0) {
    if (RequestTiming* timing = call_.router_->timing())
      timing->record_body(body_length_, engine::monotonic_ns() - body_start_ns_);
  }
  if (call_.keep_response) call_.response = parser_.head();
  conn_->exchanges++;
  release_connection();
  state_ = State::kIdle;
  call_.attempt_ended(*this, route_, {}, {});
}

void Attempt::fail(Status status, FailureStage stage, bool retryable) {  // by value: it may live in the connection
  Failure failure;
  failure.stage = stage;
  failure.retryable = retryable;
  failure.reused_connection = reused_;
  if (stage == FailureStage::kConnect && conn_ && retryable) {
    // Somewhere else to go at once: another address of this host that is not cooling down, or another endpoint.
    AddressBook& book = route_.client->addresses();
    book.cool_down(conn_->address());
    failure.elsewhere = book.healthy_others(conn_->address()) > 0 ||
                        static_cast<uint32_t>(__builtin_popcountll(call_.avoid_ | (1ull << route_.endpoint))) <
                            call_.router_->endpoint_count();
  }
  reuse_ = Reuse::kClose;
  release_connection();
  if (state_ == State::kQueued) route_.client->withdraw(*worker_, this);
  state_ = State::kIdle;
  call_.attempt_ended(*this, route_, status, failure);
}

void Attempt::release_connection() {
  if (!conn_) return;
  route_.client->release(*worker_, std::move(conn_), reuse_ == Reuse::kKeep);
}

// ---- Call ---------------------------------------------------------------------------------------------------------

const HttpOptions& Call::default_options() {
  static const HttpOptions options;
  return options;
}

std::string Call::describe() const {
  std::string text = request.display.empty()
                         ? request.method + " " + request.path + (request.query.empty() ? "" : "?" + request.query)
                         : request.display;
  if (request.range) text += " bytes " + std::to_string(request.range->first) + "-" + std::to_string(request.range->last);
  return text;
}

const std::string& Call::what() {
  if (what_.empty()) {
    if (request.display.empty()) {
      if (HttpClient* client = primary_.route().client; client != nullptr) {
        request.display = request.method + " " + client->url_for(request.path) +
                          (request.query.empty() ? "" : "?" + request.query);
      }
    }
    what_ = describe();
  }
  return what_;
}

void Call::start(engine::Worker& worker, Router& router) {
  worker_ = &worker;
  router_ = &router;
  retry_ = RetryPolicy(router.options());
  what_.clear();
  delivered_ = 0;
  avoid_ = 0;
  winner_ = nullptr;
  running_ = true;
  cancelled_ = false;
  if (RequestTiming* timing = router.timing()) timing->count_request();
  next_attempt();
}

void Call::next_attempt() { primary_.begin(*worker_, router_->route(avoid_)); }

bool Call::may_hedge(const Attempt& slow) {
  return router_->timing() != nullptr && router_->options().hedge && !cancelled_ && winner_ == nullptr && !pieces.empty() &&
         request.method == "GET" && !other(slow).live();
}

void Call::hedge(Attempt& slow) {
  if (!may_hedge(slow) || !router_->timing()->take_budget()) return;
  auto& counters = router_->engine().counters;
  counters.add(counters.hedges_sent, 1);
  other(slow).begin(*worker_, router_->route(avoid_), /*hedge=*/true);
}

void Call::claim(Attempt& attempt) {
  if (winner_ != nullptr) return;
  winner_ = &attempt;
  if (attempt.is_hedge()) {
    auto& counters = router_->engine().counters;
    counters.add(counters.hedges_won, 1);
  }
  if (Attempt& rival = other(attempt); rival.live()) rival.abandon();
}

void Call::cancel() {
  if (!running_ || cancelled_) return;
  cancelled_ = true;
  bool in_flight = false;
  for (Attempt* attempt : {&primary_, &second_}) {
    switch (attempt->cancel()) {
      case Attempt::Cancelled::kInFlight: in_flight = true; break;  // the operation in flight ends the attempt
      case Attempt::Cancelled::kWasQueued: router_->attempt_ended(attempt->route(), false); break;
      case Attempt::Cancelled::kNothing: break;
    }
  }
  if (in_flight) return;
  if (timer_.in_flight) {
    worker_->loop().cancel(&timer_);  // on_timer ends the call
    return;
  }
  finish(Status(ErrorKind::kCancelled, what() + ": cancelled"));
}

void Call::attempt_ended(Attempt& attempt, const Route& route, const Status& in_status, const Failure& in_failure) {
  const bool network = !in_status.ok() && is_network(in_status);
  router_->attempt_ended(route, network);
  if (network) avoid_ |= 1ull << route.endpoint;
  // The winner's result decides; with no winner yet, the latest failure does. A loser's end decides nothing.
  if (winner_ == nullptr || winner_ == &attempt) {
    outcome_ = in_status;
    outcome_failure_ = in_failure;
  }
  if (primary_.live() || second_.live()) return;  // wait until the other attempt has ended too
  winner_ = nullptr;
  const Status status = std::move(outcome_);
  const Failure failure = outcome_failure_;
  outcome_ = Status();
  if (status.ok()) {
    finish({});
    return;
  }
  if (cancelled_) {
    finish(Status(ErrorKind::kCancelled, what() + ": cancelled"));
    return;
  }
  const RetryPolicy::Decision decision = retry_.after(failure);
  auto& counters = router_->engine().counters;
  switch (decision.action) {
    case RetryPolicy::Action::kNow:
      // A kept-alive connection the server had closed: the others idle as long are likely closed too.
      route.client->drop_idle(*worker_);
      next_attempt();
      return;
    case RetryPolicy::Action::kElsewhereNow:
      counters.add(counters.retries, 1);
      next_attempt();
      return;
    case RetryPolicy::Action::kAfterBackoff:
      counters.add(counters.retries, 1);
      timer_.timeout_ns = std::max<uint64_t>(decision.delay_ms * 1'000'000, 1);
      worker_->loop().submit(&timer_);
      return;
    case RetryPolicy::Action::kFail:
      break;
  }
  if (!failure.retryable) {
    finish(status);
    return;
  }
  const unsigned n = retry_.failures();
  std::string message = what() + " failed after " + std::to_string(n) + (n == 1 ? " attempt: " : " attempts: ") +
                        status.message();
  const int endpoints = __builtin_popcountll(avoid_);
  if (is_network(status) && endpoints > 1) message += " (every endpoint failed: " + std::to_string(endpoints) + " tried)";
  finish(Status(status.kind(), message, status.http_status(), status.s3_code(), status.request_id()));
}

void Call::on_timer(engine::Completion* c) {
  auto* self = static_cast<Call*>(c->context);
  if (self->cancelled_) {
    self->finish(Status(ErrorKind::kCancelled, self->what() + ": cancelled"));
    return;
  }
  self->next_attempt();
}

void Call::finish(Status status) {
  running_ = false;
  done(*this, done_context, status);
}

Status Call::run(Router& router) {
  std::promise<Status> result;
  done = [](Call&, void* context, const Status& status) { static_cast<std::promise<Status>*>(context)->set_value(status); };
  done_context = &result;
  engine::Worker& worker = router.engine().pick_worker();
  worker.post([this, &worker, &router] { start(worker, router); });
  return result.get_future().get();
}

}  // namespace ringfetch::http
