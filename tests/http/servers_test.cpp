// Proves the test-server harness (tests/servers/) works before any library test relies on it: nginx, s3rver and the
// FaultServer are driven here with plain blocking POSIX sockets and OpenSSL only, no ringfetch code, so a failure
// here is a harness or environment problem, never a client bug.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "servers/fault_server.hpp"
#include "servers/loopback.hpp"
#include "servers/nginx_server.hpp"
#include "servers/s3rver_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kBlobSize = 1 << 20;
constexpr uint64_t kBlobSeed = 42;
constexpr auto kReceiveTimeout = 5s;
constexpr auto kStallProbeTimeout = 300ms;
constexpr std::size_t kMaxResponseBytes = 8 << 20;
constexpr std::size_t kReadChunk = 64 * 1024;

std::string as_string(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::string pattern_string(uint64_t offset, uint64_t length, uint64_t seed) {
  return as_string(pattern_slice(offset, length, seed));
}

bool process_group_gone(pid_t pgid) { return ::kill(-pgid, 0) == -1 && errno == ESRCH; }

// ---- a blocking loopback client ------------------------------------------------------------------------------------

enum class End { kOpen, kEof, kReset, kTimeout, kOtherError };

class Client {
 public:
  explicit Client(uint16_t port, IpFamily family = IpFamily::kV4, std::chrono::milliseconds timeout = kReceiveTimeout) {
    fd_ = ::socket(family == IpFamily::kV4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    set_timeout(timeout);
    int rc;
    if (family == IpFamily::kV4) {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(port);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    } else {
      sockaddr_in6 addr{};
      addr.sin6_family = AF_INET6;
      addr.sin6_addr = in6addr_loopback;
      addr.sin6_port = htons(port);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }
    if (rc != 0) throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int fd() const { return fd_; }

  void set_timeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  void send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Appends what arrives to `buffer` until `done(buffer)`, EOF, an error, the timeout or the size limit.
  template <typename Done>
  End read_until(std::string& buffer, Done done) {
    char chunk[kReadChunk];
    while (!done(buffer) && buffer.size() < kMaxResponseBytes) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) return End::kEof;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return End::kTimeout;
      return errno == ECONNRESET ? End::kReset : End::kOtherError;
    }
    return End::kOpen;
  }

  End read_to_end(std::string& buffer) {
    return read_until(buffer, [](const std::string&) { return false; });
  }

 private:
  int fd_ = -1;
};

struct Response {
  int status = 0;
  std::string head;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  End end = End::kOpen;  // how reading stopped; kOpen means the whole body arrived and the connection is open

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses the head in `raw` (if complete) into `out`; returns the head length or 0.
std::size_t parse_head(const std::string& raw, Response& out) {
  std::size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  out.head = raw.substr(0, end + 4);
  if (out.head.starts_with("HTTP/1.")) out.status = std::atoi(out.head.c_str() + 9);
  std::size_t line = out.head.find("\r\n") + 2;
  while (line < end) {
    std::size_t eol = out.head.find("\r\n", line);
    std::string text = out.head.substr(line, eol - line);
    std::size_t colon = text.find(':');
    if (colon != std::string::npos) {
      std::size_t value = text.find_first_not_of(' ', colon + 1);
      out.headers[lower(text.substr(0, colon))] = value == std::string::npos ? "" : text.substr(value);
    }
    line = eol + 2;
  }
  return end + 4;
}

// Reads one response: the head, then Content-Length body bytes (none for HEAD).
Response read_response(Client& client, bool head_request = false) {
  Response r;
  std::string raw;
  r.end = client.read_until(raw, [&](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; });
  std::size_t head_size = parse_head(raw, r);
  if (head_size == 0) {
    r.body = raw;  // whatever arrived that was not a head
    return r;
  }
  std::size_t length =
      head_request ? 0 : std::stoull(r.header("content-length").empty() ? "0" : r.header("content-length"));
  if (r.end == End::kOpen) {
    r.end = client.read_until(raw, [&](const std::string& b) { return b.size() >= head_size + length; });
  }
  r.body = raw.substr(head_size);
  return r;
}

std::string get_request(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

Response get(uint16_t port, const std::string& target, const std::string& extra_headers = "",
             IpFamily family = IpFamily::kV4) {
  Client client(port, family);
  client.send_all(get_request(target, extra_headers));
  return read_response(client);
}

// ---- TLS -----------------------------------------------------------------------------------------------------------

struct TlsOutcome {
  bool handshake_ok = false;
  long verify_result = X509_V_OK;
  std::string response;  // raw bytes of the answer to `request`, if one was sent
};

// Connects to 127.0.0.1:port, verifies the peer against `ca_file` and (if given) host name `host` / IP `ip`,
// then optionally sends `request` and reads until the server closes.
TlsOutcome tls_exchange(uint16_t port, const std::filesystem::path& ca_file, const std::string& host,
                        const std::string& ip = "", const std::string& request = "") {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  EXPECT_EQ(SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr), 1);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  Client client(port);
  SSL_set_fd(ssl.get(), client.fd());
  if (!host.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), host.c_str());
    SSL_set1_host(ssl.get(), host.c_str());
  }
  if (!ip.empty()) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), ip.c_str());
  TlsOutcome outcome;
  outcome.handshake_ok = SSL_connect(ssl.get()) == 1;
  outcome.verify_result = SSL_get_verify_result(ssl.get());
  ERR_clear_error();
  if (!outcome.handshake_ok || request.empty()) return outcome;
  EXPECT_EQ(SSL_write(ssl.get(), request.data(), static_cast<int>(request.size())), static_cast<int>(request.size()));
  char chunk[kReadChunk];
  for (int n; (n = SSL_read(ssl.get(), chunk, sizeof chunk)) > 0;) outcome.response.append(chunk, n);
  ERR_clear_error();
  return outcome;
}

// ---- temp files and the pattern ------------------------------------------------------------------------------------

TEST(PatternTest, IsDeterministicAndDependsOnSeed) {
  EXPECT_EQ(make_pattern(1000, 7), make_pattern(1000, 7));
  EXPECT_NE(make_pattern(1000, 7), make_pattern(1000, 8));
  EXPECT_TRUE(make_pattern(0, 7).empty());
}

TEST(PatternTest, SlicesMatchTheWholeAtUnalignedOffsets) {
  std::vector<std::byte> whole = make_pattern(4096, 3);
  for (uint64_t offset : std::initializer_list<uint64_t>{0, 1, 7, 8, 9, 1000, 4000}) {
    for (uint64_t length : std::initializer_list<uint64_t>{0, 1, 5, 8, 17, 96}) {
      std::vector<std::byte> slice = pattern_slice(offset, length, 3);
      ASSERT_TRUE(std::equal(slice.begin(), slice.end(), whole.begin() + static_cast<std::ptrdiff_t>(offset)))
          << offset << "+" << length;
    }
  }
}

TEST(PatternTest, WritePatternFileMatchesAcrossChunkBoundaries) {
  TempDir dir;
  const uint64_t size = (9ull << 20) + 13;  // more than two 4 MiB chunks, odd tail
  write_pattern_file(dir / "big", size, 5);
  EXPECT_EQ(std::filesystem::file_size(dir / "big"), size);
  EXPECT_EQ(read_file(dir / "big"), as_string(make_pattern(size, 5)));
}

TEST(TempDirTest, IsRemovedRecursivelyOnDestruction) {
  std::filesystem::path path;
  {
    TempDir dir("tempdir-test-");
    path = dir.path();
    std::filesystem::create_directories(dir / "a" / "b");
    write_file(dir / "a" / "b" / "f", "hello");
    EXPECT_EQ(read_file(dir / "a" / "b" / "f"), "hello");
    EXPECT_TRUE(path.string().starts_with(test_build_dir().string()));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

// ---- nginx ---------------------------------------------------------------------------------------------------------

class NginxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = std::make_unique<TempDir>("nginx-root-");
    write_pattern_file(*root_ / "blob.bin", kBlobSize, kBlobSeed);
    server_ = std::make_unique<NginxServer>(root_->path());
  }
  static void TearDownTestSuite() {
    server_.reset();
    root_.reset();
  }
  static std::unique_ptr<TempDir> root_;
  static std::unique_ptr<NginxServer> server_;
};
std::unique_ptr<TempDir> NginxTest::root_;
std::unique_ptr<NginxServer> NginxTest::server_;

TEST_F(NginxTest, RangeGetReturns206WithTheRequestedBytes) {
  Response r = get(server_->http_port(), "/blob.bin", "Range: bytes=100-199\r\n");
  EXPECT_EQ(r.status, 206) << r.head;
  EXPECT_EQ(r.header("content-range"), "bytes 100-199/" + std::to_string(kBlobSize));
  EXPECT_EQ(r.header("content-length"), "100");
  EXPECT_FALSE(r.header("etag").empty());
  EXPECT_EQ(r.body, pattern_string(100, 100, kBlobSeed));
}

TEST_F(NginxTest, KeepsTheConnectionAliveAcrossRequests) {
  Client client(server_->http_port());
  for (uint64_t offset : std::initializer_list<uint64_t>{0, 4096, kBlobSize - 10}) {
    client.send_all(
        get_request("/blob.bin", "Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + 9) + "\r\n"));
    Response r = read_response(client);
    ASSERT_EQ(r.status, 206);
    EXPECT_EQ(r.body, pattern_string(offset, 10, kBlobSeed));
    EXPECT_EQ(r.end, End::kOpen);
  }
}

TEST_F(NginxTest, WholeFileWithoutRange) {
  Response r = get(server_->http_port(), "/blob.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, pattern_string(0, kBlobSize, kBlobSeed));
}

TEST_F(NginxTest, NoRangesPortIgnoresRangeAndAnswers200WithTheWholeFile) {
  Response r = get(server_->no_ranges_port(), "/blob.bin", "Range: bytes=100-199\r\n");
  EXPECT_EQ(r.status, 200) << r.head;
  EXPECT_EQ(r.header("content-length"), std::to_string(kBlobSize));
  EXPECT_EQ(r.body, pattern_string(0, kBlobSize, kBlobSeed));
}

TEST_F(NginxTest, MissingFileIs404) { EXPECT_EQ(get(server_->http_port(), "/nope.bin").status, 404); }

TEST_F(NginxTest, Ipv6LoopbackServesTheSameFile) {
  if (server_->ipv6_port() == 0) GTEST_SKIP() << "IPv6 loopback unavailable";
  Response r = get(server_->ipv6_port(), "/blob.bin", "Range: bytes=5-9\r\n", IpFamily::kV6);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, pattern_string(5, 5, kBlobSeed));
}

TEST_F(NginxTest, HttpsVerifiesAgainstTheTestCaAndHostName) {
  TlsOutcome tls = tls_exchange(server_->https_port(), server_->ca_file(), "localhost", "",
                                get_request("/blob.bin", "Range: bytes=100-199\r\nConnection: close\r\n"));
  ASSERT_TRUE(tls.handshake_ok) << X509_verify_cert_error_string(tls.verify_result);
  EXPECT_EQ(tls.verify_result, X509_V_OK);
  Response r;
  std::size_t head = parse_head(tls.response, r);
  ASSERT_GT(head, 0u);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(tls.response.substr(head), pattern_string(100, 100, kBlobSeed));
}

TEST_F(NginxTest, HttpsCertificateCoversIp127001) {
  TlsOutcome tls = tls_exchange(server_->https_port(), server_->ca_file(), "", "127.0.0.1");
  EXPECT_TRUE(tls.handshake_ok) << X509_verify_cert_error_string(tls.verify_result);
}

TEST_F(NginxTest, HttpsFailsVerificationAgainstAnUnrelatedCa) {
  TlsOutcome tls = tls_exchange(server_->https_port(), server_->other_ca_file(), "localhost");
  EXPECT_FALSE(tls.handshake_ok);
  EXPECT_EQ(tls.verify_result, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
      << X509_verify_cert_error_string(tls.verify_result);
}

TEST_F(NginxTest, WrongHostPortHasAValidChainButTheWrongName) {
  TlsOutcome chain_only = tls_exchange(server_->wrong_host_https_port(), server_->ca_file(), "");
  EXPECT_TRUE(chain_only.handshake_ok) << X509_verify_cert_error_string(chain_only.verify_result);
  TlsOutcome named = tls_exchange(server_->wrong_host_https_port(), server_->ca_file(), "localhost");
  EXPECT_FALSE(named.handshake_ok);
  EXPECT_EQ(named.verify_result, X509_V_ERR_HOSTNAME_MISMATCH) << X509_verify_cert_error_string(named.verify_result);
}

TEST(NginxLifecycleTest, StopEndsEveryNginxProcessAndClosesThePorts) {
  std::ptrdiff_t fds_before = open_fd_count();
  TempDir root("nginx-root-");
  write_file(root / "x", "x");
  NginxServer server(root.path());
  pid_t pid = server.pid();
  uint16_t port = server.http_port();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(get(port, "/x").body, "x");
  std::filesystem::path dir = server.dir();
  server.stop();
  EXPECT_EQ(server.pid(), -1);
  EXPECT_TRUE(process_group_gone(pid)) << "nginx master or workers still alive";
  EXPECT_FALSE(port_accepts(IpFamily::kV4, port));
  server.stop();  // idempotent
  EXPECT_EQ(open_fd_count(), fds_before);
}

TEST(NginxLifecycleTest, BrokenConfigFailsClearlyWithTheErrorLog) {
  TempDir root("nginx-root-");
  NginxOptions options;
  options.extra_http_config = "  no_such_directive on;\n";
  try {
    NginxServer server(root.path(), options);
    FAIL() << "nginx started with a broken config";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown directive \"no_such_directive\""), std::string::npos) << e.what();
  }
}

// ---- s3rver --------------------------------------------------------------------------------------------------------

std::string amz_date_now() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

// s3rver checks the access key, that x-amz-content-sha256 is present and that x-amz-date is within 15 minutes of
// now; it does not check the SigV4 signature (so "00" passes) nor the credential scope's date.
std::string fake_sigv4_headers(const std::string& access_key, bool with_content_sha = true) {
  std::string headers = "Authorization: AWS4-HMAC-SHA256 Credential=" + access_key +
                        "/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n"
                        "x-amz-date: " + amz_date_now() + "\r\n";
  if (with_content_sha) headers += "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n";
  return headers;
}

Response s3_request(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "") {
  Client client(port);
  client.send_all(method + " " + target +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  return read_response(client);
}

class S3rverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<S3rverServer>(); }
  static void TearDownTestSuite() { server_.reset(); }
  static std::unique_ptr<S3rverServer> server_;
};
std::unique_ptr<S3rverServer> S3rverTest::server_;

TEST_F(S3rverTest, ListBucketsWithAFakeSigV4HeaderIs200) {
  EXPECT_EQ(server_->endpoint(), "http://127.0.0.1:" + std::to_string(server_->port()));
  Response r = get(server_->port(), "/", fake_sigv4_headers(server_->access_key()));
  EXPECT_EQ(r.status, 200) << r.head << r.body;
  EXPECT_NE(r.body.find("ListAllMyBucketsResult"), std::string::npos) << r.body;
}

TEST_F(S3rverTest, UnknownAccessKeyIsRejected) {
  Response r = get(server_->port(), "/", fake_sigv4_headers("NOT-A-KEY"));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("<Code>InvalidAccessKeyId</Code>"), std::string::npos) << r.body;
}

TEST_F(S3rverTest, SigV4WithoutContentSha256IsRejected) {
  Response r = get(server_->port(), "/", fake_sigv4_headers(server_->access_key(), false));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("x-amz-content-sha256"), std::string::npos) << r.body;
}

// ListObjectsV2 paging needs DES for its continuation tokens: this fails unless node runs with the legacy provider.
TEST_F(S3rverTest, ListObjectsV2PagingWorks) {
  ASSERT_EQ(s3_request(server_->port(), "PUT", "/paging").status, 200);
  for (const char* key : {"a", "b", "c"})
    ASSERT_EQ(s3_request(server_->port(), "PUT", "/paging/" + std::string(key), key).status, 200);
  Response first = get(server_->port(), "/paging?list-type=2&max-keys=2");
  ASSERT_EQ(first.status, 200) << first.body;
  std::size_t at = first.body.find("<NextContinuationToken>");
  ASSERT_NE(at, std::string::npos) << first.body;
  at += std::strlen("<NextContinuationToken>");
  std::string token = first.body.substr(at, first.body.find('<', at) - at);
  std::string encoded;
  for (char c : token) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      encoded += c;
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
      encoded += hex;
    }
  }
  Response second = get(server_->port(), "/paging?list-type=2&max-keys=2&continuation-token=" + encoded);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_NE(second.body.find("<Key>c</Key>"), std::string::npos) << second.body;
  EXPECT_EQ(second.body.find("<Key>a</Key>"), std::string::npos) << second.body;
}

TEST(S3rverLifecycleTest, StopEndsNodeAndClosesThePort) {
  S3rverServer server;
  pid_t pid = server.pid();
  uint16_t port = server.port();
  EXPECT_TRUE(port_accepts(IpFamily::kV4, port));
  EXPECT_TRUE(std::filesystem::is_directory(server.data_dir()));
  server.stop();
  EXPECT_TRUE(process_group_gone(pid));
  EXPECT_FALSE(port_accepts(IpFamily::kV4, port));
}

// ---- FaultServer ---------------------------------------------------------------------------------------------------

constexpr uint64_t kObjectSize = 256 * 1024;
constexpr uint64_t kObjectSeed = 9;

class FaultServerTest : public ::testing::Test {
 protected:
  FaultServer server_{make_pattern(kObjectSize, kObjectSeed)};

  Response fetch(Client& client, uint64_t first, uint64_t last, const std::string& extra = "") {
    client.send_all(
        get_request("/obj", "Range: bytes=" + std::to_string(first) + "-" + std::to_string(last) + "\r\n" + extra));
    return read_response(client);
  }
  std::string bytes(uint64_t first, uint64_t last) { return pattern_string(first, last - first + 1, kObjectSeed); }
};

TEST_F(FaultServerTest, ServesRangesWithKeepAliveAndCounts) {
  Client client(server_.port());
  Response a = fetch(client, 100, 199);
  EXPECT_EQ(a.status, 206);
  EXPECT_EQ(a.header("content-range"), "bytes 100-199/" + std::to_string(kObjectSize));
  EXPECT_EQ(a.header("content-length"), "100");
  EXPECT_EQ(a.header("etag"), server_.etag());
  EXPECT_EQ(a.body, bytes(100, 199));
  Response b = fetch(client, kObjectSize - 5, kObjectSize + 100);  // clamped to the end
  EXPECT_EQ(b.status, 206);
  EXPECT_EQ(b.body, bytes(kObjectSize - 5, kObjectSize - 1));
  EXPECT_EQ(server_.requests_received(), 2u);
  EXPECT_EQ(server_.connections_accepted(), 1u);
}

TEST_F(FaultServerTest, OpenSuffixUnsatisfiableAndNoRange) {
  EXPECT_EQ(get(server_.port(), "/o", "Range: bytes=262100-\r\n").body, bytes(262100, kObjectSize - 1));
  Response suffix = get(server_.port(), "/o", "Range: bytes=-10\r\n");
  EXPECT_EQ(suffix.header("content-range"), "bytes 262134-262143/262144");
  EXPECT_EQ(suffix.body, bytes(kObjectSize - 10, kObjectSize - 1));
  Response beyond = get(server_.port(), "/o", "Range: bytes=262144-262200\r\n");
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.header("content-range"), "bytes */262144");
  Response whole = get(server_.port(), "/o");
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, bytes(0, kObjectSize - 1));
}

TEST_F(FaultServerTest, HeadRequestHasLengthButNoBody) {
  Client client(server_.port());
  client.send_all("HEAD /o HTTP/1.1\r\nHost: x\r\n\r\n");
  Response r = read_response(client, true);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), std::to_string(kObjectSize));
  client.send_all(get_request("/o", "Range: bytes=0-3\r\n"));  // the stream is still in sync
  EXPECT_EQ(read_response(client).body, bytes(0, 3));
}

TEST_F(FaultServerTest, LogsRequestHeads) {
  get(server_.port(), "/bucket/key?x=1",
      "Range: bytes=0-0\r\nIf-Match: " + server_.etag() + "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=K/...\r\n");
  std::vector<LoggedRequest> log = server_.request_log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].target, "/bucket/key?x=1");
  EXPECT_EQ(log[0].connection, 1u);
  EXPECT_EQ(log[0].header("range"), "bytes=0-0");
  EXPECT_EQ(log[0].header("IF-MATCH"), server_.etag());
  EXPECT_EQ(log[0].header("Authorization"), "AWS4-HMAC-SHA256 Credential=K/...");
  EXPECT_FALSE(log[0].header("x-absent").has_value());
}

TEST_F(FaultServerTest, ResetMidBodySendsNBytesThenRst) {
  server_.push_fault(Fault::reset_mid_body(1000));
  Client client(server_.port());
  Response r = fetch(client, 0, 99'999);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-length"), "100000");
  EXPECT_EQ(r.end, End::kReset);
  EXPECT_EQ(r.body, bytes(0, 999));
}

TEST_F(FaultServerTest, ResetMidBodyDeliversMoreThanASocketBufferBeforeTheRst) {
  server_.push_fault(Fault::reset_mid_body(200'000));
  Client client(server_.port());
  Response r = fetch(client, 0, kObjectSize - 1);
  EXPECT_EQ(r.end, End::kReset);
  EXPECT_EQ(r.body.size(), 200'000u);
  EXPECT_EQ(r.body, bytes(0, 199'999));
}

TEST_F(FaultServerTest, StallSendsNothingUntilTheServerStops) {
  server_.push_fault(Fault::stall());
  Client client(server_.port(), IpFamily::kV4, kStallProbeTimeout);
  client.send_all(get_request("/o"));
  std::string got;
  EXPECT_EQ(client.read_to_end(got), End::kTimeout);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(server_.wait_for_requests(1, 1s));
  server_.stop();
  EXPECT_EQ(client.read_to_end(got), End::kEof);
  EXPECT_TRUE(got.empty());
}

TEST_F(FaultServerTest, StallAfterHeadSendsHeadAndSomeBodyThenNothing) {
  server_.push_fault(Fault::stall_after_head(10));
  Client client(server_.port(), IpFamily::kV4, kStallProbeTimeout);
  Response r = fetch(client, 0, 999);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.end, End::kTimeout);
  EXPECT_EQ(r.body, bytes(0, 9));
}

TEST_F(FaultServerTest, StalledConnectionIsDroppedWhenTheClientCloses) {
  server_.push_fault(Fault::stall());
  {
    Client client(server_.port());
    client.send_all(get_request("/o"));
    ASSERT_TRUE(server_.wait_for_requests(1, 1s));
  }
  // The server is not stuck on the closed connection: a new one is served normally.
  Client next(server_.port());
  EXPECT_EQ(fetch(next, 0, 0).status, 206);
}

TEST_F(FaultServerTest, Status503HasAnS3ErrorBodyAndKeepsTheConnection) {
  server_.push_faults({Fault::status_error(503), Fault::status_error(500), Fault::status_error(503, "Busy")});
  Client client(server_.port());
  Response slow = fetch(client, 0, 9);
  EXPECT_EQ(slow.status, 503);
  EXPECT_EQ(slow.header("content-type"), "application/xml");
  EXPECT_EQ(slow.header("content-length"), std::to_string(slow.body.size()));
  EXPECT_NE(slow.body.find("<Error><Code>SlowDown</Code><Message>"), std::string::npos) << slow.body;
  EXPECT_NE(slow.body.find("<RequestId>"), std::string::npos);
  Response internal = fetch(client, 0, 9);
  EXPECT_EQ(internal.status, 500);
  EXPECT_NE(internal.body.find("<Code>InternalError</Code>"), std::string::npos);
  EXPECT_NE(fetch(client, 0, 9).body.find("<Code>Busy</Code>"), std::string::npos);
  Response normal = fetch(client, 0, 9);  // the script is used up
  EXPECT_EQ(normal.status, 206);
  EXPECT_EQ(normal.body, bytes(0, 9));
  EXPECT_EQ(server_.pending_faults(), 0u);
  EXPECT_EQ(server_.connections_accepted(), 1u);
}

TEST_F(FaultServerTest, TruncatedBodyAnnouncesFullLengthThenCloses) {
  server_.push_fault(Fault::truncated_body(500));
  Client client(server_.port());
  Response r = fetch(client, 1000, 2999);
  EXPECT_EQ(r.header("content-length"), "2000");
  EXPECT_EQ(r.end, End::kEof);
  EXPECT_EQ(r.body, bytes(1000, 1499));
}

TEST_F(FaultServerTest, WrongContentRangeShiftsTheHeaderOnly) {
  server_.push_fault(Fault::wrong_content_range(7));
  Client client(server_.port());
  Response r = fetch(client, 100, 199);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-range"), "bytes 107-206/262144");
  EXPECT_EQ(r.body, bytes(100, 199));
}

TEST_F(FaultServerTest, OversizedHeadExceeds64KiB) {
  server_.push_fault(Fault::oversized_head());
  Client client(server_.port());
  Response r = fetch(client, 0, 9);
  EXPECT_EQ(r.status, 206);
  EXPECT_GT(r.head.size(), 64u * 1024);
  EXPECT_EQ(r.body, bytes(0, 9));
}

TEST_F(FaultServerTest, GarbageHeadIsNotHttpAndCloses) {
  server_.push_fault(Fault::garbage_head());
  Client client(server_.port());
  client.send_all(get_request("/o"));
  std::string got;
  EXPECT_EQ(client.read_to_end(got), End::kEof);
  EXPECT_FALSE(got.empty());
  EXPECT_FALSE(got.starts_with("HTTP/"));
}

TEST_F(FaultServerTest, CloseAfterHeadSendsNoBody) {
  server_.push_fault(Fault::close_after_head());
  Client client(server_.port());
  Response r = fetch(client, 0, 99);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-length"), "100");
  EXPECT_EQ(r.end, End::kEof);
  EXPECT_TRUE(r.body.empty());
}

TEST_F(FaultServerTest, CloseIdleDropsAKeptAliveConnectionWithoutAnswer) {
  Client client(server_.port());
  EXPECT_EQ(fetch(client, 0, 9).status, 206);
  server_.push_fault(Fault::close_idle());
  Response r = fetch(client, 0, 9);
  EXPECT_EQ(r.end, End::kEof);
  EXPECT_TRUE(r.head.empty());
  EXPECT_TRUE(r.body.empty());
  Client fresh(server_.port());
  EXPECT_EQ(fetch(fresh, 0, 9).body, bytes(0, 9));
  EXPECT_EQ(server_.connections_accepted(), 2u);
  EXPECT_EQ(server_.requests_received(), 3u);
}

TEST_F(FaultServerTest, Full200IgnoresRange) {
  server_.push_fault(Fault::full_200());
  Client client(server_.port());
  Response r = fetch(client, 100, 199);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-range"), "");
  EXPECT_EQ(r.body, bytes(0, kObjectSize - 1));
}

TEST_F(FaultServerTest, ChangeEtagChangesItFromNowOnAndIfMatchSees412) {
  std::string old_etag = server_.etag();
  Client client(server_.port());
  EXPECT_EQ(fetch(client, 0, 9, "If-Match: " + old_etag + "\r\n").status, 206);
  server_.push_fault(Fault::change_etag());
  Response changed = fetch(client, 0, 9);
  EXPECT_EQ(changed.status, 206);
  EXPECT_NE(changed.header("etag"), old_etag);
  EXPECT_EQ(changed.header("etag"), server_.etag());
  EXPECT_EQ(fetch(client, 0, 9).header("etag"), server_.etag());  // persists
  Response refused = fetch(client, 0, 9, "If-Match: " + old_etag + "\r\n");
  EXPECT_EQ(refused.status, 412);
  EXPECT_NE(refused.body.find("<Code>PreconditionFailed</Code>"), std::string::npos);
}

TEST(FaultServerOptionsTest, IfMatchCanBeIgnoredLikeS3rverDoes) {
  FaultServerOptions options;
  options.honor_if_match = false;
  FaultServer server(make_pattern(100, 1), options);
  EXPECT_EQ(get(server.port(), "/o", "If-Match: \"stale\"\r\n").status, 200);
}

TEST(FaultServerOptionsTest, ClosesConnectionsBeyondTheBound) {
  FaultServerOptions options;
  options.max_connections = 1;
  FaultServer server(make_pattern(100, 1), options);
  Client first(server.port());
  first.send_all(get_request("/o"));
  EXPECT_EQ(read_response(first).status, 200);  // `first` holds the only slot
  Client second(server.port());
  std::string got;
  EXPECT_EQ(second.read_to_end(got), End::kEof);
  EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST(FaultServerOptionsTest, AnswersAnOversizedRequestHeadWith431) {
  FaultServerOptions options;
  options.max_request_head_bytes = 1024;
  FaultServer server(make_pattern(100, 1), options);
  Client client(server.port());
  client.send_all(get_request("/o", "X-Big: " + std::string(2000, 'b') + "\r\n"));
  Response r = read_response(client);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.end, End::kOpen);
  std::string rest;
  EXPECT_EQ(client.read_to_end(rest), End::kEof);
  EXPECT_EQ(server.requests_received(), 0u);
}

TEST(FaultServerLifecycleTest, StopIsIdempotentAndClosesThePort) {
  FaultServer server(make_pattern(10, 1));
  uint16_t port = server.port();
  EXPECT_EQ(server.endpoint(), "http://127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(port_accepts(IpFamily::kV4, port));
  server.stop();
  server.stop();
  EXPECT_FALSE(port_accepts(IpFamily::kV4, port));
}

TEST(FaultServerLifecycleTest, StopClosesEveryDescriptorWithClientsStillConnected) {
  std::ptrdiff_t fds_before = open_fd_count();
  {
    FaultServer server(make_pattern(1000, 1));
    server.push_fault(Fault::stall());
    Client stalled(server.port());
    stalled.send_all(get_request("/o"));
    Client idle(server.port());
    idle.send_all(get_request("/o"));
    EXPECT_EQ(read_response(idle).status, 200);
    EXPECT_TRUE(server.wait_for_requests(2, 1s));
    server.stop();
    std::string rest;
    EXPECT_EQ(stalled.read_to_end(rest), End::kEof);
    EXPECT_EQ(idle.read_to_end(rest), End::kEof);
  }
  EXPECT_EQ(open_fd_count(), fds_before);
}

}  // namespace
}  // namespace ringfetch::testing
