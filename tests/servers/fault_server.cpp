// FaultServer (see fault_server.hpp). One epoll loop on one thread owns every connection; the test thread only
// touches the fault script, the log and the counters, under one mutex. Each connection is an explicit state
// machine: read a head -> build the whole answer for it (normal reply, then the fault's changes) -> hold it back for
// the first-byte delay, if one is set (a timer of the loop) -> write it -> keep alive, close, reset, or stall, as the
// answer says. A request body is read in full (hashed and counted, kept only when small enough to be an XML document)
// before the answer is built. Everything is bounded: connections, head and body size, retained body bytes, log
// length, bytes per send() call, the delay timers (one per connection), and the wait for a reset to drain.
#include "servers/fault_server.hpp"

#include "s3/xml_document.hpp"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace ringfetch::testing {
namespace {

constexpr int kListenBacklog = 256;
constexpr int kMaxEpollEvents = 64;
constexpr std::size_t kReadChunkBytes = 16 * 1024;
// Per send() call, so that one large body does not keep the loop from other connections.
constexpr std::size_t kMaxSendBytes = 1 << 20;
// kOversizedHead: more than the 64 KiB a client may allow for a response head.
constexpr std::size_t kOversizedHeadBytes = 64 * 1024 + 1024;
constexpr std::size_t kFillerValueBytes = 100;
// Request bodies are kept (for CompleteMultipartUpload's XML) up to this size; larger ones are only hashed.
constexpr std::size_t kMaxRetainedBodyBytes = 1 << 20;
// Multipart mode: S3's limits on part numbers.
constexpr uint64_t kMaxPartNumber = 10000;
constexpr std::string_view kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// kResetMidBody: wait (bounded) until the peer has acknowledged what was sent, so the RST cannot discard it.
constexpr auto kResetDrainTimeout = std::chrono::seconds(1);
constexpr int kDrainPollMs = 1;
// A graceful close first reads what the client already sent (else close() sends RST), but not forever.
constexpr int kMaxDrainReadsBeforeClose = 64;
constexpr uint64_t kListenerTag = 0;
constexpr uint64_t kWakeTag = 1;
constexpr uint64_t kFirstConnectionTag = 2;
constexpr const char* kLastModified = "Wed, 01 Jan 2025 00:00:00 GMT";
constexpr std::string_view kHeadEnd = "\r\n\r\n";

using Headers = std::vector<std::pair<std::string, std::string>>;

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

// ---- request heads -------------------------------------------------------------------------------------------

bool parse_request_line(std::string_view line, LoggedRequest& out) {
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) return false;
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  out.version = line.substr(sp2 + 1);
  return out.version.starts_with("HTTP/1.");
}

bool parse_header_line(std::string_view line, LoggedRequest& out) {
  std::size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  std::string_view name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string_view::npos) return false;  // also rejects obs-fold lines
  out.headers.emplace_back(std::string(name), std::string(trim(line.substr(colon + 1))));
  return true;
}

// `head` is everything before the blank line.
std::optional<LoggedRequest> parse_request_head(std::string_view head) {
  LoggedRequest request;
  std::size_t eol = head.find("\r\n");
  if (!parse_request_line(head.substr(0, eol), request)) return std::nullopt;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    if (!parse_header_line(head.substr(0, eol), request)) return std::nullopt;
  }
  return request;
}

// ---- targets -----------------------------------------------------------------------------------------------------

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; a malformed escape is kept as it is.
std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// A request target split into its decoded path and decoded query parameters ("uploads" alone has an empty value).
struct Target {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;

  const std::string* param(std::string_view name) const {
    for (const auto& [n, v] : query) {
      if (n == name) return &v;
    }
    return nullptr;
  }
};

Target parse_target(std::string_view target) {
  Target out;
  std::size_t question = target.find('?');
  out.path = percent_decode(target.substr(0, question));
  if (question == std::string_view::npos) return out;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    std::size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    std::size_t eq = pair.find('=');
    if (!pair.empty()) {
      out.query.emplace_back(percent_decode(pair.substr(0, eq)),
                             eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1)));
    }
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
  }
  return out;
}

// ---- ranges ------------------------------------------------------------------------------------------------------

enum class RangeKind { kNone, kRange, kUnsatisfiable };
struct RangeRequest {
  RangeKind kind = RangeKind::kNone;
  uint64_t first = 0;
  uint64_t last = 0;
};

// One range of `bytes=a-b`, `bytes=a-` or `bytes=-n`. Anything else (several ranges, bad syntax) is ignored, as
// RFC 9110 allows, and the whole object is sent.
RangeRequest parse_range(const std::optional<std::string>& header, uint64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (!header || header->size() < kUnit.size() || !iequals(std::string_view(*header).substr(0, kUnit.size()), kUnit)) {
    return {};
  }
  std::string_view spec = trim(std::string_view(*header).substr(kUnit.size()));
  std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos || spec.find(',') != std::string_view::npos) return {};
  std::optional<uint64_t> a = parse_u64(spec.substr(0, dash));
  std::optional<uint64_t> b = parse_u64(spec.substr(dash + 1));
  if (!a && b) {  // suffix: the last n bytes
    if (*b == 0 || size == 0) return {RangeKind::kUnsatisfiable};
    return {RangeKind::kRange, size - std::min(*b, size), size - 1};
  }
  if (!a || (b && *b < *a) || (!b && dash + 1 != spec.size())) return {};
  if (*a >= size) return {RangeKind::kUnsatisfiable};
  return {RangeKind::kRange, *a, std::min(b.value_or(size - 1), size - 1)};
}

// ---- replies -----------------------------------------------------------------------------------------------------

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string default_s3_code(int status) {
  switch (status) {
    case 400: return "InvalidRequest";
    case 403: return "AccessDenied";
    case 404: return "NoSuchKey";
    case 413: return "EntityTooLarge";
    case 500: return "InternalError";
    case 503: return "SlowDown";
    default: return "InjectedFault";
  }
}

std::string s3_message(std::string_view code) {
  if (code == "SlowDown") return "Please reduce your request rate.";
  if (code == "InternalError") return "We encountered an internal error. Please try again.";
  if (code == "PreconditionFailed") return "At least one of the pre-conditions you specified did not hold";
  if (code == "InvalidRange") return "The requested range is not satisfiable";
  if (code == "NoSuchUpload") return "The specified upload does not exist.";
  if (code == "InvalidPart") return "One or more of the specified parts could not be found.";
  if (code == "InvalidPartOrder") return "The list of parts was not in ascending order.";
  if (code == "MalformedXML") return "The XML you provided was not well-formed.";
  return "Injected by the ringfetch test FaultServer";
}

// The whole answer to one request, before it is put on the wire.
struct Reply {
  int status = 200;
  Headers headers;
  std::string text_body;     // error bodies; sent instead of object bytes
  uint64_t body_offset = 0;  // object bytes [body_offset, body_offset + body_length) otherwise
  uint64_t body_length = 0;
  uint64_t content_length = 0;
};

Reply error_reply(int status, std::string code, const std::string& request_id) {
  Reply reply;
  reply.status = status;
  reply.text_body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" +
                    s3_message(code) + "</Message><RequestId>" + request_id + "</RequestId></Error>";
  reply.content_length = reply.text_body.size();
  reply.headers = {{"Content-Type", "application/xml"}};
  return reply;
}

// A 200 (or 204) answer with an S3 XML document, or none.
Reply xml_reply(int status, std::string document) {
  Reply reply;
  reply.status = status;
  if (!document.empty()) {
    reply.text_body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + std::move(document);
    reply.headers = {{"Content-Type", "application/xml"}};
  }
  reply.content_length = reply.text_body.size();
  return reply;
}

using s3::xml_escape;

// The five predefined entities; enough for the documents S3 clients send.
std::string xml_unescape(std::string_view text) {
  static constexpr std::pair<std::string_view, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  std::string out;
  while (!text.empty()) {
    bool replaced = false;
    for (const auto& [entity, c] : kEntities) {
      if (text.starts_with(entity)) {
        out.push_back(c);
        text.remove_prefix(entity.size());
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.push_back(text.front());
      text.remove_prefix(1);
    }
  }
  return out;
}

// Text of the first <name>...</name> in `xml` at or after `from`; `*end` is set past it. No nesting, attributes or
// CDATA: the CompleteMultipartUpload document has none of them.
std::optional<std::string> xml_element(std::string_view xml, std::string_view name, std::size_t from,
                                       std::size_t* end) {
  const std::string open = "<" + std::string(name) + ">";
  const std::string close = "</" + std::string(name) + ">";
  std::size_t start = xml.find(open, from);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  std::size_t stop = xml.find(close, start);
  if (stop == std::string_view::npos) return std::nullopt;
  if (end != nullptr) *end = stop + close.size();
  return xml_unescape(xml.substr(start, stop - start));
}

std::string unquoted(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return std::string(etag);
}

std::string etag_for(uint64_t generation) { return "\"ringfetch-fault-" + std::to_string(generation) + "\""; }

std::string content_range(int64_t first, int64_t last, uint64_t size) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size);
}

bool if_match_fails(const LoggedRequest& request, const std::string& etag) {
  std::optional<std::string> value = request.header("If-Match");
  if (!value || trim(*value) == "*") return false;
  std::string_view rest = *value;
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    if (trim(rest.substr(0, comma)) == etag) return false;
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  return true;
}

std::string render_head(const Reply& reply) {
  std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " " + std::string(reason_phrase(reply.status)) +
                     "\r\n";
  // RFC 9110: no Content-Length in a 204.
  if (reply.status != 204) head += "Content-Length: " + std::to_string(reply.content_length) + "\r\n";
  for (const auto& [name, value] : reply.headers) head += name + ": " + value + "\r\n";
  return head;  // without the blank line, so faults can still add headers
}

std::string filler_headers(std::size_t min_bytes) {
  std::string out;
  for (int i = 0; out.size() < min_bytes; ++i) {
    out += "X-Filler-" + std::to_string(i) + ": " + std::string(kFillerValueBytes, 'f') + "\r\n";
  }
  return out;
}

std::string garbage_bytes() {
  // A TLS-record-like prefix, a NUL and high bytes: nothing an HTTP parser could take for a status line.
  std::string out = std::string("\x16\x03\x01 this is not HTTP ") + '\0';
  for (int i = 0; i < 256; ++i) out += static_cast<char>(255 - i);
  return out + "\r\n\r\n";
}

// ---- connections -------------------------------------------------------------------------------------------------

// kDelayed: the answer is ready but held back until the first-byte delay has passed (FaultServerOptions).
enum class ConnState { kReadingHead, kReadingBody, kDelayed, kWriting, kStalled, kDrainingForReset, kClosed };
enum class AfterSend { kKeepAlive, kClose, kReset, kStall };
enum class CloseMode { kPlain, kGraceful, kReset };

// What goes on the wire for one request: `bytes` (head, maybe an error body), then object bytes, then `after`.
struct Wire {
  std::string bytes;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  AfterSend after = AfterSend::kKeepAlive;
  bool close_now = false;  // kCloseIdle: nothing is sent at all
};

struct DigestDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

const EVP_MD* sha256_digest() {
  static EVP_MD* const digest = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (digest == nullptr) throw std::runtime_error("FaultServer: OpenSSL has no SHA256");
  return digest;
}

// SHA-256 of a request body, fed as the bytes arrive. Costs nothing for the common request without a body.
class BodyHasher {
 public:
  void reset() { started_ = false; }
  void update(std::string_view bytes) {
    if (bytes.empty()) return;
    if (!started_) {
      if (!context_) context_.reset(EVP_MD_CTX_new());
      if (!context_ || EVP_DigestInit_ex(context_.get(), sha256_digest(), nullptr) != 1) {
        throw std::runtime_error("FaultServer: SHA-256 init failed");
      }
      started_ = true;
    }
    EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size());
  }
  std::string hex() {
    if (!started_) return std::string(kEmptySha256);
    started_ = false;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context_.get(), digest, &length);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
      out.push_back(kHex[digest[i] >> 4]);
      out.push_back(kHex[digest[i] & 15]);
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> context_;
  bool started_ = false;
};

struct Connection {
  int fd = -1;
  uint64_t ordinal = 0;
  ConnState state = ConnState::kReadingHead;
  CloseMode close_mode = CloseMode::kPlain;
  uint32_t interest = EPOLLIN | EPOLLRDHUP;
  std::string in;        // received bytes not yet parsed; bounded by the head limit plus one read chunk
  // kReadingBody: the request whose body is arriving, what is still to come, its digest and (when small) its text.
  std::optional<LoggedRequest> pending;
  uint64_t body_remaining = 0;
  BodyHasher hasher;
  std::string body_text;
  std::string out;       // head (and text body) being sent
  std::size_t out_sent = 0;
  uint64_t body_pos = 0;
  uint64_t body_end = 0;
  AfterSend after = AfterSend::kKeepAlive;
  std::chrono::steady_clock::time_point reset_deadline;
  uint64_t tag = 0;  // its key in the loop's connection map (the first-byte-delay timers name connections by it)
  std::chrono::steady_clock::time_point head_received_at;  // of the request being answered
};

void close_socket(Connection& c) {
  if (c.close_mode == CloseMode::kReset) {
    linger hard{1, 0};
    ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  } else if (c.close_mode == CloseMode::kGraceful) {
    // Unread input at close() turns the FIN into an RST, so take what is there first.
    char sink[kReadChunkBytes];
    for (int reads = 0; reads < kMaxDrainReadsBeforeClose; ++reads) {
      if (::recv(c.fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
    }
    ::shutdown(c.fd, SHUT_WR);
  }
  ::close(c.fd);
  c.fd = -1;
}

Fault fault_of(FaultKind kind) {
  Fault fault;
  fault.kind = kind;
  return fault;
}

}  // namespace

// ---- public value types --------------------------------------------------------------------------------------------

Fault Fault::reset_mid_body(uint64_t body_bytes) {
  Fault fault = fault_of(FaultKind::kResetMidBody);
  fault.body_bytes = body_bytes;
  return fault;
}
Fault Fault::stall() { return fault_of(FaultKind::kStall); }
Fault Fault::stall_after_head(uint64_t body_bytes) {
  Fault fault = fault_of(FaultKind::kStall);
  fault.body_bytes = body_bytes;
  fault.send_head = true;
  return fault;
}
Fault Fault::status_error(int status, std::string s3_code) {
  Fault fault = fault_of(FaultKind::kStatus);
  fault.status = status;
  fault.s3_code = std::move(s3_code);
  return fault;
}
Fault Fault::truncated_body(uint64_t body_bytes) {
  Fault fault = fault_of(FaultKind::kTruncatedBody);
  fault.body_bytes = body_bytes;
  return fault;
}
Fault Fault::wrong_content_range(int64_t range_shift) {
  Fault fault = fault_of(FaultKind::kWrongContentRange);
  fault.range_shift = range_shift;
  return fault;
}
Fault Fault::oversized_head() { return fault_of(FaultKind::kOversizedHead); }
Fault Fault::garbage_head() { return fault_of(FaultKind::kGarbageHead); }
Fault Fault::close_after_head() { return fault_of(FaultKind::kCloseAfterHead); }
Fault Fault::close_idle() { return fault_of(FaultKind::kCloseIdle); }
Fault Fault::full_200() { return fault_of(FaultKind::kFull200); }
Fault Fault::change_etag() { return fault_of(FaultKind::kChangeEtag); }
Fault Fault::none() { return fault_of(FaultKind::kNone); }
Fault Fault::interim_answer() { return fault_of(FaultKind::kInterimAnswer); }
Fault Fault::chunked_body() { return fault_of(FaultKind::kChunkedBody); }

std::optional<std::string> LoggedRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

// ---- the server --------------------------------------------------------------------------------------------------

struct FaultServer::Impl {
  Impl(std::vector<std::byte> bytes, FaultServerOptions opts) : object(std::move(bytes)), options(opts) {}
  ~Impl() { close_descriptors(); }

  void open_listener();
  void close_descriptors();
  void run();
  void accept_all();
  void on_event(uint64_t tag, uint32_t events);
  void on_readable(Connection& c);
  void drive(Connection& c);
  bool start_next_request(Connection& c);
  bool read_body(Connection& c);
  bool flush(Connection& c);
  void after_response(Connection& c);
  void finish(uint64_t tag);
  void reset_drained();
  void close_all();
  // First-byte delay: park an answer that is ready too early; send the ones whose time has come.
  void hold_back(Connection& c);
  void release_due();
  int wait_timeout_ms() const;

  struct Admission {
    std::optional<Fault> fault;
    std::string etag;
    std::string request_id;
    std::optional<Reply> s3_reply;  // multipart mode: the answer to a multipart call
  };
  Admission admit(const LoggedRequest& request, const std::string& body);
  std::optional<Fault> next_fault_locked(const LoggedRequest& request, const Target& target);
  // Multipart mode, under the mutex: performs the call and returns its answer; nullopt for other requests.
  std::optional<Reply> multipart_call_locked(const LoggedRequest& request, const Target& target,
                                             const std::string& body, const std::string& request_id, bool effective);
  Reply initiate_upload_locked(const std::string& bucket, const std::string& key);
  Reply upload_part_locked(MultipartUpload& upload, const Target& target, const LoggedRequest& request,
                           const std::string& request_id);
  Reply complete_upload_locked(MultipartUpload& upload, const std::string& body, const std::string& request_id);
  MultipartUpload* find_upload_locked(const std::string& id, const std::string& bucket, const std::string& key);
  Reply list_uploads_locked(const std::string& bucket, const Target& target);
  Reply reply_for(const LoggedRequest& request, const Admission& admission) const;
  Wire respond(const LoggedRequest& request, const Admission& admission) const;
  Reply object_reply(const LoggedRequest& request, const std::string& etag, bool ignore_range,
                     const std::string& request_id) const;
  void install(Connection& c, Wire wire);
  void answer_and_close(Connection& c, int status);

  const std::vector<std::byte> object;
  const FaultServerOptions options;
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  uint16_t port = 0;
  std::thread thread;

  mutable std::mutex mutex;  // guards faults, rules, log, etag_generation, uploads, parts
  mutable std::condition_variable request_cv;
  std::deque<Fault> faults;
  std::vector<FaultRule> rules;
  std::vector<MultipartUpload> uploads;  // in the order started; bounded by the tests that start them
  std::vector<ReceivedPart> parts;       // every successful UploadPart, in arrival order
  std::deque<LoggedRequest> log;
  uint64_t etag_generation = 1;
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> connections{0};

  // Loop thread only.
  std::unordered_map<uint64_t, Connection> conns;
  uint64_t next_tag = kFirstConnectionTag;
  // Connections in kDelayed, earliest release first. An entry whose connection has closed meanwhile is skipped; a
  // connection is parked at most once at a time and leaves kDelayed only through its entry, so no entry is stale
  // otherwise. Bounded by max_connections.
  using DelayTimer = std::pair<std::chrono::steady_clock::time_point, uint64_t>;
  std::priority_queue<DelayTimer, std::vector<DelayTimer>, std::greater<>> delayed;
  uint64_t answers_held = 0;  // answers made so far (for straggler_every)
};

void FaultServer::Impl::open_listener() {
  listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) throw_errno("FaultServer: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) throw_errno("FaultServer: bind");
  if (::listen(listen_fd, kListenBacklog) != 0) throw_errno("FaultServer: listen");
  if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) throw_errno("FaultServer: getsockname");
  port = ntohs(addr.sin_port);
  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) throw_errno("FaultServer: epoll_create1");
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) throw_errno("FaultServer: eventfd");
  epoll_event listen_event{.events = EPOLLIN, .data = {.u64 = kListenerTag}};
  epoll_event wake_event{.events = EPOLLIN, .data = {.u64 = kWakeTag}};
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &listen_event) != 0 ||
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &wake_event) != 0) {
    throw_errno("FaultServer: epoll_ctl");
  }
}

void FaultServer::Impl::close_descriptors() {
  for (int* fd : {&listen_fd, &epoll_fd, &wake_fd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void FaultServer::Impl::run() {
  epoll_event events[kMaxEpollEvents];
  for (;;) {
    int n = ::epoll_wait(epoll_fd, events, kMaxEpollEvents, wait_timeout_ms());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        close_all();
        return;
      }
      if (tag == kListenerTag) {
        accept_all();
      } else {
        on_event(tag, events[i].events);
      }
    }
    reset_drained();
    release_due();
  }
  close_all();
}

void FaultServer::Impl::accept_all() {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
    if (fd < 0) return;  // EAGAIN, or out of descriptors: try again on the next event
    if (conns.size() >= options.max_connections) {
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint64_t tag = next_tag++;
    epoll_event event{.events = EPOLLIN | EPOLLRDHUP, .data = {.u64 = tag}};
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
      ::close(fd);
      continue;
    }
    Connection& c = conns[tag];
    c.fd = fd;
    c.tag = tag;
    c.ordinal = connections.fetch_add(1) + 1;
  }
}

void FaultServer::Impl::on_event(uint64_t tag, uint32_t events) {
  auto it = conns.find(tag);
  if (it == conns.end()) return;
  Connection& c = it->second;
  if (events & EPOLLERR) {
    c.state = ConnState::kClosed;
  } else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    on_readable(c);
  }
  drive(c);
  finish(tag);
}

void FaultServer::Impl::on_readable(Connection& c) {
  char buffer[kReadChunkBytes];
  while (c.state != ConnState::kClosed && c.in.size() <= options.max_request_head_bytes) {
    ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {  // EOF or error: the client is gone
      c.state = ConnState::kClosed;
      return;
    }
    // Stalled, writing or resetting: input is dropped (clients here never pipeline).
    if (c.state != ConnState::kReadingHead && c.state != ConnState::kReadingBody) continue;
    c.in.append(buffer, static_cast<std::size_t>(n));
  }
}

void FaultServer::Impl::drive(Connection& c) {
  for (;;) {
    if (c.state == ConnState::kReadingHead) {
      if (!start_next_request(c)) return;
    } else if (c.state == ConnState::kReadingBody) {
      if (!read_body(c)) return;
    } else if (c.state == ConnState::kWriting) {
      if (!flush(c)) return;
      after_response(c);
    } else {
      return;
    }
  }
}

bool FaultServer::Impl::start_next_request(Connection& c) {
  std::size_t end = c.in.find(kHeadEnd);
  if (end == std::string::npos || end + kHeadEnd.size() > options.max_request_head_bytes) {
    if (c.in.size() > options.max_request_head_bytes) answer_and_close(c, 431);
    return c.state == ConnState::kWriting;
  }
  c.head_received_at = std::chrono::steady_clock::now();
  std::optional<LoggedRequest> request = parse_request_head(std::string_view(c.in).substr(0, end));
  c.in.erase(0, end + kHeadEnd.size());
  if (!request) {
    answer_and_close(c, 400);
    return true;
  }
  if (request->header("Transfer-Encoding")) {
    answer_and_close(c, 501);
    return true;
  }
  std::optional<std::string> length = request->header("Content-Length");
  std::optional<uint64_t> body = length ? parse_u64(*length) : uint64_t{0};
  if (!body) {
    answer_and_close(c, 400);
    return true;
  }
  if (*body > options.max_request_body_bytes) {
    answer_and_close(c, 413);
    return true;
  }
  request->connection = c.ordinal;
  c.pending = std::move(*request);
  c.body_remaining = *body;
  c.body_text.clear();
  c.hasher.reset();
  c.state = ConnState::kReadingBody;
  return true;
}

// Takes body bytes from the input; once the whole body is in, answers. False while more must arrive.
bool FaultServer::Impl::read_body(Connection& c) {
  const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(c.body_remaining, c.in.size()));
  const std::string_view bytes = std::string_view(c.in).substr(0, n);
  c.hasher.update(bytes);
  LoggedRequest& request = *c.pending;
  request.body_bytes += n;
  if (request.body_bytes <= kMaxRetainedBodyBytes) {
    c.body_text.append(bytes);
  } else {
    c.body_text.clear();  // too large to be a document: hashed and counted only
  }
  c.body_remaining -= n;
  c.in.erase(0, n);
  if (c.body_remaining > 0) return false;
  request.body_sha256 = c.hasher.hex();
  Admission admission = admit(request, c.body_text);
  install(c, respond(request, admission));
  c.pending.reset();
  c.body_text.clear();
  return true;
}

bool FaultServer::Impl::flush(Connection& c) {
  while (c.out_sent < c.out.size() || c.body_pos < c.body_end) {
    const char* data;
    std::size_t size;
    if (c.out_sent < c.out.size()) {
      data = c.out.data() + c.out_sent;
      size = c.out.size() - c.out_sent;
    } else {
      data = reinterpret_cast<const char*>(object.data()) + c.body_pos;
      size = static_cast<std::size_t>(std::min<uint64_t>(c.body_end - c.body_pos, kMaxSendBytes));
    }
    ssize_t n = ::send(c.fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n < 0) {
      c.state = ConnState::kClosed;
      return false;
    }
    if (c.out_sent < c.out.size()) {
      c.out_sent += static_cast<std::size_t>(n);
    } else {
      c.body_pos += static_cast<uint64_t>(n);
    }
  }
  return true;
}

void FaultServer::Impl::after_response(Connection& c) {
  c.out.clear();
  c.out_sent = 0;
  switch (c.after) {
    case AfterSend::kKeepAlive: c.state = ConnState::kReadingHead; break;
    case AfterSend::kClose:
      c.state = ConnState::kClosed;
      c.close_mode = CloseMode::kGraceful;
      break;
    case AfterSend::kReset:
      c.state = ConnState::kDrainingForReset;
      c.reset_deadline = std::chrono::steady_clock::now() + kResetDrainTimeout;
      break;
    case AfterSend::kStall: c.state = ConnState::kStalled; break;
  }
}

// Closes a finished connection, or points epoll at what its state waits for.
void FaultServer::Impl::finish(uint64_t tag) {
  Connection& c = conns.at(tag);
  if (c.state == ConnState::kClosed) {
    close_socket(c);
    conns.erase(tag);
    return;
  }
  uint32_t wanted = 0;
  if (c.state == ConnState::kReadingHead || c.state == ConnState::kReadingBody || c.state == ConnState::kStalled ||
      c.state == ConnState::kDelayed) {
    wanted = EPOLLIN | EPOLLRDHUP;
  }
  if (c.state == ConnState::kWriting) wanted = EPOLLOUT;
  if (wanted == c.interest) return;
  c.interest = wanted;
  epoll_event event{.events = wanted, .data = {.u64 = tag}};
  ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &event);
}

void FaultServer::Impl::reset_drained() {
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> done;
  for (auto& [tag, c] : conns) {
    if (c.state != ConnState::kDrainingForReset) continue;
    int unacked = 0;
    if (::ioctl(c.fd, SIOCOUTQ, &unacked) != 0 || unacked == 0 || now >= c.reset_deadline) done.push_back(tag);
  }
  for (uint64_t tag : done) {
    Connection& c = conns.at(tag);
    c.state = ConnState::kClosed;
    c.close_mode = CloseMode::kReset;
    finish(tag);
  }
}

int FaultServer::Impl::wait_timeout_ms() const {
  const bool draining = std::any_of(
      conns.begin(), conns.end(), [](const auto& entry) { return entry.second.state == ConnState::kDrainingForReset; });
  int timeout = draining ? kDrainPollMs : -1;
  if (!delayed.empty()) {
    // Rounded up: waking a little late costs under a millisecond; waking early would spin until the deadline.
    const auto until = std::chrono::ceil<std::chrono::milliseconds>(delayed.top().first -
                                                                     std::chrono::steady_clock::now());
    const int due = static_cast<int>(std::max<int64_t>(0, until.count()));
    timeout = timeout < 0 ? due : std::min(timeout, due);
  }
  return timeout;
}

// Called when an answer is installed: its head goes out first_byte_delay after its request head arrived, not before.
void FaultServer::Impl::hold_back(Connection& c) {
  auto delay = options.first_byte_delay;
  if (options.straggler_every > 0 && ++answers_held % options.straggler_every == 0) delay += options.straggler_delay;
  if (delay <= std::chrono::milliseconds::zero()) return;
  const auto release_at = c.head_received_at + delay;
  if (release_at <= std::chrono::steady_clock::now()) return;  // e.g. a slow request body took longer already
  c.state = ConnState::kDelayed;
  delayed.emplace(release_at, c.tag);
}

void FaultServer::Impl::release_due() {
  const auto now = std::chrono::steady_clock::now();
  while (!delayed.empty() && delayed.top().first <= now) {
    const uint64_t tag = delayed.top().second;
    delayed.pop();
    auto it = conns.find(tag);
    if (it == conns.end() || it->second.state != ConnState::kDelayed) continue;  // closed meanwhile
    it->second.state = ConnState::kWriting;
    drive(it->second);
    finish(tag);
  }
}

void FaultServer::Impl::close_all() {
  for (auto& [tag, c] : conns) close_socket(c);
  conns.clear();
}

FaultServer::Impl::Admission FaultServer::Impl::admit(const LoggedRequest& request, const std::string& body) {
  const Target target = parse_target(request.target);
  std::lock_guard lock(mutex);
  Admission admission;
  admission.fault = next_fault_locked(request, target);
  if (admission.fault && admission.fault->kind == FaultKind::kChangeEtag) ++etag_generation;
  admission.etag = etag_for(etag_generation);
  uint64_t number = requests.load() + 1;
  char id[32];
  std::snprintf(id, sizeof id, "RF%016llX", static_cast<unsigned long long>(number));
  admission.request_id = id;
  if (options.s3_multipart) {
    const FaultKind kind = admission.fault ? admission.fault->kind : FaultKind::kNone;
    const bool effective =
        kind != FaultKind::kStatus && kind != FaultKind::kCloseIdle && kind != FaultKind::kGarbageHead;
    admission.s3_reply = multipart_call_locked(request, target, body, admission.request_id, effective);
  }
  if (log.size() >= options.max_logged_requests && !log.empty()) log.pop_front();
  if (options.max_logged_requests > 0) log.push_back(request);
  requests.store(number);
  request_cv.notify_all();
  return admission;
}

std::optional<Fault> FaultServer::Impl::next_fault_locked(const LoggedRequest& request, const Target& target) {
  for (FaultRule& rule : rules) {
    if (rule.times == 0 || (!rule.method.empty() && rule.method != request.method)) continue;
    const bool matches = std::all_of(rule.query.begin(), rule.query.end(), [&](const auto& wanted) {
      const std::string* value = target.param(wanted.first);
      return value != nullptr && *value == wanted.second;
    });
    if (!matches) continue;
    --rule.times;
    return rule.fault;
  }
  if (faults.empty()) return std::nullopt;
  Fault fault = faults.front();
  faults.pop_front();
  return fault;
}

// ---- multipart mode ----------------------------------------------------------------------------------------------

std::optional<Reply> FaultServer::Impl::multipart_call_locked(const LoggedRequest& request, const Target& target,
                                                              const std::string& body, const std::string& request_id,
                                                              bool effective) {
  const std::string* upload_id = target.param("uploadId");
  const bool initiate = request.method == "POST" && target.param("uploads") != nullptr;
  const bool part = request.method == "PUT" && upload_id != nullptr && target.param("partNumber") != nullptr;
  const bool complete = request.method == "POST" && upload_id != nullptr;
  const bool abort = request.method == "DELETE" && upload_id != nullptr;
  const bool list = request.method == "GET" && target.param("uploads") != nullptr;
  if (!initiate && !part && !complete && !abort && !list) return std::nullopt;
  // Path style: /bucket/key.
  std::string_view path = target.path;
  if (path.starts_with("/")) path.remove_prefix(1);
  const std::size_t slash = path.find('/');
  const std::string bucket(path.substr(0, slash));
  const std::string key(slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1));
  if (list) {
    if (bucket.empty() || !key.empty()) return error_reply(400, "InvalidRequest", request_id);
    return effective ? list_uploads_locked(bucket, target) : Reply{};
  }
  if (bucket.empty() || key.empty()) return error_reply(400, "InvalidRequest", request_id);
  if (!effective) return Reply{};  // replaced by the fault's answer; nothing happens
  if (initiate) return initiate_upload_locked(bucket, key);
  MultipartUpload* upload = find_upload_locked(*upload_id, bucket, key);
  if (upload == nullptr) return error_reply(404, "NoSuchUpload", request_id);
  if (part) return upload_part_locked(*upload, target, request, request_id);
  if (complete) return complete_upload_locked(*upload, body, request_id);
  upload->state = UploadState::kAborted;
  upload->parts.clear();  // S3 frees the parts of an aborted upload
  return xml_reply(204, {});
}

// ListMultipartUploads: the open uploads of `bucket` whose key starts with `prefix`, in the order started, one
// page of at most max-uploads (default 1000) after key-marker / upload-id-marker (both as this server sets them).
Reply FaultServer::Impl::list_uploads_locked(const std::string& bucket, const Target& target) {
  const std::string prefix = target.param("prefix") != nullptr ? *target.param("prefix") : std::string();
  const std::size_t max_uploads =
      target.param("max-uploads") != nullptr ? std::stoul(*target.param("max-uploads")) : std::size_t{1000};
  const std::string* marker = target.param("upload-id-marker");
  bool past_marker = marker == nullptr || marker->empty();
  std::string entries;
  std::size_t listed = 0;
  bool truncated = false;
  std::string last_key, last_id;
  for (const MultipartUpload& upload : uploads) {
    if (!past_marker) {
      past_marker = upload.upload_id == *marker;
      continue;
    }
    if (upload.state != UploadState::kOpen || upload.bucket != bucket || !upload.key.starts_with(prefix)) continue;
    if (listed == max_uploads) {
      truncated = true;
      break;
    }
    entries += "<Upload><Key>" + xml_escape(upload.key) + "</Key><UploadId>" + xml_escape(upload.upload_id) +
               "</UploadId><Initiated>2026-01-01T00:00:00.000Z</Initiated></Upload>";
    last_key = upload.key;
    last_id = upload.upload_id;
    ++listed;
  }
  std::string document = "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>" +
                         xml_escape(bucket) + "</Bucket><Prefix>" + xml_escape(prefix) + "</Prefix><IsTruncated>" +
                         (truncated ? "true" : "false") + "</IsTruncated>";
  if (truncated) {
    document += "<NextKeyMarker>" + xml_escape(last_key) + "</NextKeyMarker><NextUploadIdMarker>" +
                xml_escape(last_id) + "</NextUploadIdMarker>";
  }
  return xml_reply(200, document + entries + "</ListMultipartUploadsResult>");
}

MultipartUpload* FaultServer::Impl::find_upload_locked(const std::string& id, const std::string& bucket,
                                                       const std::string& key) {
  for (MultipartUpload& upload : uploads) {
    if (upload.upload_id == id) {
      const bool usable = upload.state == UploadState::kOpen && upload.bucket == bucket && upload.key == key;
      return usable ? &upload : nullptr;
    }
  }
  return nullptr;
}

Reply FaultServer::Impl::initiate_upload_locked(const std::string& bucket, const std::string& key) {
  MultipartUpload upload;
  upload.upload_id = "rf-upload-" + std::to_string(uploads.size() + 1);
  upload.bucket = bucket;
  upload.key = key;
  uploads.push_back(upload);
  return xml_reply(200, "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>" +
                            xml_escape(bucket) + "</Bucket><Key>" + xml_escape(key) + "</Key><UploadId>" +
                            xml_escape(upload.upload_id) + "</UploadId></InitiateMultipartUploadResult>");
}

Reply FaultServer::Impl::upload_part_locked(MultipartUpload& upload, const Target& target,
                                            const LoggedRequest& request, const std::string& request_id) {
  std::optional<uint64_t> number = parse_u64(*target.param("partNumber"));
  if (!number || *number < 1 || *number > kMaxPartNumber) {
    return error_reply(400, "InvalidArgument", request_id);
  }
  ReceivedPart received;
  received.upload_id = upload.upload_id;
  received.part_number = *number;
  received.size = request.body_bytes;
  received.sha256 = request.body_sha256;
  received.etag = "\"" + request.body_sha256.substr(0, 32) + "\"";
  auto at = std::lower_bound(upload.parts.begin(), upload.parts.end(), *number,
                             [](const ReceivedPart& p, uint64_t n) { return p.part_number < n; });
  if (at != upload.parts.end() && at->part_number == *number) {
    *at = received;
  } else {
    upload.parts.insert(at, received);
  }
  parts.push_back(received);
  Reply reply = xml_reply(200, {});
  reply.headers.emplace_back("ETag", received.etag);
  return reply;
}

Reply FaultServer::Impl::complete_upload_locked(MultipartUpload& upload, const std::string& body,
                                                const std::string& request_id) {
  std::vector<uint64_t> listed;
  std::string etags;
  std::size_t pos = 0;
  std::size_t part_end = 0;
  while (xml_element(body, "Part", pos, &part_end)) {
    const std::string_view part = std::string_view(body).substr(pos, part_end - pos);
    std::optional<std::string> number_text = xml_element(part, "PartNumber", 0, nullptr);
    std::optional<std::string> etag = xml_element(part, "ETag", 0, nullptr);
    std::optional<uint64_t> number = number_text ? parse_u64(*number_text) : std::nullopt;
    if (!number || !etag) return error_reply(400, "MalformedXML", request_id);
    if (!listed.empty() && *number <= listed.back()) return error_reply(400, "InvalidPartOrder", request_id);
    auto found = std::find_if(upload.parts.begin(), upload.parts.end(),
                              [&](const ReceivedPart& p) { return p.part_number == *number; });
    if (found == upload.parts.end() || unquoted(found->etag) != unquoted(*etag)) {
      return error_reply(400, "InvalidPart", request_id);
    }
    listed.push_back(*number);
    etags += unquoted(found->etag);
    pos = part_end;
  }
  if (listed.empty() || body.find("<CompleteMultipartUpload") == std::string::npos) {
    return error_reply(400, "MalformedXML", request_id);
  }
  upload.state = UploadState::kCompleted;
  upload.completed_part_numbers = listed;
  upload.etag = "\"" + etags.substr(0, 32) + "-" + std::to_string(listed.size()) + "\"";
  return xml_reply(200, "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>/" +
                            xml_escape(upload.bucket) + "/" + xml_escape(upload.key) + "</Location><Bucket>" +
                            xml_escape(upload.bucket) + "</Bucket><Key>" + xml_escape(upload.key) + "</Key><ETag>" +
                            xml_escape(upload.etag) + "</ETag></CompleteMultipartUploadResult>");
}

Reply FaultServer::Impl::object_reply(const LoggedRequest& request, const std::string& etag, bool ignore_range,
                                      const std::string& request_id) const {
  bool head_only = request.method == "HEAD";
  if (request.method != "GET" && !head_only) return error_reply(405, "MethodNotAllowed", request_id);
  if (options.honor_if_match && if_match_fails(request, etag))
    return error_reply(412, "PreconditionFailed", request_id);
  uint64_t size = object.size();
  RangeRequest range = ignore_range ? RangeRequest{} : parse_range(request.header("Range"), size);
  if (range.kind == RangeKind::kUnsatisfiable) {
    Reply reply = error_reply(416, "InvalidRange", request_id);
    reply.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
    return reply;
  }
  Reply reply;
  if (range.kind == RangeKind::kRange) {
    reply.status = 206;
    reply.body_offset = range.first;
    reply.body_length = range.last - range.first + 1;
    reply.headers.emplace_back(
        "Content-Range", content_range(static_cast<int64_t>(range.first), static_cast<int64_t>(range.last), size));
  } else {
    reply.body_length = size;
  }
  reply.content_length = reply.body_length;
  if (head_only) reply.body_length = 0;
  reply.headers.insert(reply.headers.end(), {{"ETag", etag},
                                             {"Accept-Ranges", "bytes"},
                                             {"Last-Modified", kLastModified},
                                             {"Content-Type", "application/octet-stream"}});
  return reply;
}

Reply FaultServer::Impl::reply_for(const LoggedRequest& request, const Admission& admission) const {
  const std::optional<Fault>& fault = admission.fault;
  auto is = [&](FaultKind kind) { return fault && fault->kind == kind; };
  Reply reply =
      is(FaultKind::kStatus)
          ? error_reply(fault->status, fault->s3_code.empty() ? default_s3_code(fault->status) : fault->s3_code,
                        admission.request_id)
      : admission.s3_reply ? *admission.s3_reply
                           : object_reply(request, admission.etag, is(FaultKind::kFull200), admission.request_id);
  reply.headers.emplace_back("x-amz-request-id", admission.request_id);
  if (is(FaultKind::kWrongContentRange) && reply.status / 100 == 2) {
    int64_t first = static_cast<int64_t>(reply.body_offset) + fault->range_shift;
    int64_t last = first + static_cast<int64_t>(reply.content_length) - 1;
    reply.status = 206;
    std::erase_if(reply.headers, [](const auto& header) { return header.first == "Content-Range"; });
    reply.headers.emplace_back("Content-Range", content_range(first, last, object.size()));
  }
  if (request.method == "HEAD") reply.text_body.clear();
  return reply;
}

Wire FaultServer::Impl::respond(const LoggedRequest& request, const Admission& admission) const {
  const std::optional<Fault>& fault = admission.fault;
  FaultKind kind = fault ? fault->kind : FaultKind::kNone;
  Wire wire;
  if (kind == FaultKind::kCloseIdle) {
    wire.close_now = true;
    return wire;
  }
  if (kind == FaultKind::kGarbageHead) {
    wire.bytes = garbage_bytes();
    wire.after = AfterSend::kClose;
    return wire;
  }
  Reply reply = reply_for(request, admission);
  std::optional<std::string> connection = request.header("Connection");
  bool close = (connection && iequals(*connection, "close")) || request.version == "HTTP/1.0";
  if (close) reply.headers.emplace_back("Connection", "close");
  wire.bytes = render_head(reply);
  if (kind == FaultKind::kOversizedHead) wire.bytes += filler_headers(kOversizedHeadBytes);
  wire.bytes += "\r\n" + reply.text_body;
  wire.body_offset = reply.body_offset;
  wire.body_length = reply.body_length;
  if (kind == FaultKind::kChunkedBody) {
    // The same answer with its body as one chunk: the Content-Length line gives way to Transfer-Encoding.
    const size_t cl = wire.bytes.find("Content-Length: ");
    wire.bytes.replace(cl, wire.bytes.find("\r\n", cl) + 2 - cl, "Transfer-Encoding: chunked\r\n");
    char size_line[32];
    std::snprintf(size_line, sizeof(size_line), "%llx\r\n", static_cast<unsigned long long>(wire.body_length));
    wire.bytes += size_line;
    wire.bytes.append(reinterpret_cast<const char*>(object.data()) + wire.body_offset, wire.body_length);
    wire.bytes += "\r\n0\r\n\r\n";
    wire.body_length = 0;
  }
  if (kind == FaultKind::kInterimAnswer) wire.bytes.insert(0, "HTTP/1.1 103 Early Hints\r\nLink: </hint>; rel=preload\r\n\r\n");
  wire.after = close ? AfterSend::kClose : AfterSend::kKeepAlive;
  switch (kind) {
    case FaultKind::kResetMidBody:
      wire.body_length = std::min(wire.body_length, fault->body_bytes);
      wire.after = AfterSend::kReset;
      break;
    case FaultKind::kTruncatedBody:
      wire.body_length = std::min(wire.body_length, fault->body_bytes);
      wire.after = AfterSend::kClose;
      break;
    case FaultKind::kCloseAfterHead:
      wire.body_length = 0;
      wire.after = AfterSend::kClose;
      break;
    case FaultKind::kStall:
      if (!fault->send_head) wire.bytes.clear();
      wire.body_length = fault->send_head ? std::min(wire.body_length, fault->body_bytes) : 0;
      wire.after = AfterSend::kStall;
      break;
    default: break;
  }
  return wire;
}

void FaultServer::Impl::install(Connection& c, Wire wire) {
  if (wire.close_now) {
    c.state = ConnState::kClosed;
    c.close_mode = CloseMode::kGraceful;
    return;
  }
  c.out = std::move(wire.bytes);
  c.out_sent = 0;
  c.body_pos = wire.body_offset;
  c.body_end = wire.body_offset + wire.body_length;
  c.after = wire.after;
  c.state = ConnState::kWriting;
  hold_back(c);
}

// For requests we refuse to parse: a short error, then close (the stream position is unknown).
void FaultServer::Impl::answer_and_close(Connection& c, int status) {
  Reply reply = error_reply(status, default_s3_code(status), "RF-unparsed");
  reply.headers.emplace_back("Connection", "close");
  Wire wire;
  wire.bytes = render_head(reply) + "\r\n" + reply.text_body;
  wire.after = AfterSend::kClose;
  install(c, std::move(wire));
  c.in.clear();
}

// ---- FaultServer -------------------------------------------------------------------------------------------------

FaultServer::FaultServer(std::vector<std::byte> object, FaultServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(object), options)) {
  impl_->open_listener();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

FaultServer::~FaultServer() { stop(); }

void FaultServer::stop() {
  if (impl_->thread.joinable()) {
    uint64_t one = 1;
    while (::write(impl_->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    impl_->thread.join();
  }
  impl_->close_descriptors();
}

uint16_t FaultServer::port() const noexcept { return impl_->port; }
std::string FaultServer::endpoint() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }
const std::vector<std::byte>& FaultServer::object() const noexcept { return impl_->object; }

std::string FaultServer::etag() const {
  std::lock_guard lock(impl_->mutex);
  return etag_for(impl_->etag_generation);
}

void FaultServer::push_fault(Fault fault) {
  std::lock_guard lock(impl_->mutex);
  impl_->faults.push_back(std::move(fault));
}

void FaultServer::push_faults(const std::vector<Fault>& faults) {
  std::lock_guard lock(impl_->mutex);
  impl_->faults.insert(impl_->faults.end(), faults.begin(), faults.end());
}

std::size_t FaultServer::pending_faults() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->faults.size();
}

void FaultServer::clear_faults() {
  std::lock_guard lock(impl_->mutex);
  impl_->faults.clear();
}

void FaultServer::add_rule(FaultRule rule) {
  std::lock_guard lock(impl_->mutex);
  impl_->rules.push_back(std::move(rule));
}

void FaultServer::clear_rules() {
  std::lock_guard lock(impl_->mutex);
  impl_->rules.clear();
}

std::vector<MultipartUpload> FaultServer::uploads() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->uploads;
}

namespace {
uint64_t count_in_state(const std::vector<MultipartUpload>& uploads, UploadState state) {
  return static_cast<uint64_t>(
      std::count_if(uploads.begin(), uploads.end(), [&](const MultipartUpload& u) { return u.state == state; }));
}
}  // namespace

uint64_t FaultServer::uploads_started() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->uploads.size();
}

uint64_t FaultServer::uploads_completed() const {
  std::lock_guard lock(impl_->mutex);
  return count_in_state(impl_->uploads, UploadState::kCompleted);
}

uint64_t FaultServer::uploads_aborted() const {
  std::lock_guard lock(impl_->mutex);
  return count_in_state(impl_->uploads, UploadState::kAborted);
}

std::vector<ReceivedPart> FaultServer::parts_received() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->parts;
}

std::vector<std::string> FaultServer::open_upload_ids() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> open;
  for (const MultipartUpload& upload : impl_->uploads) {
    if (upload.state == UploadState::kOpen) open.push_back(upload.upload_id);
  }
  return open;
}

uint64_t FaultServer::requests_received() const noexcept { return impl_->requests.load(); }
uint64_t FaultServer::connections_accepted() const noexcept { return impl_->connections.load(); }

std::vector<LoggedRequest> FaultServer::request_log() const {
  std::lock_guard lock(impl_->mutex);
  return {impl_->log.begin(), impl_->log.end()};
}

bool FaultServer::wait_for_requests(uint64_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->request_cv.wait_for(lock, timeout, [&] { return impl_->requests.load() >= count; });
}

}  // namespace ringfetch::testing
