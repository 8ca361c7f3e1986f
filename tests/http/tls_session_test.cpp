// TlsSession against an in-process OpenSSL server, with the ciphertext carried by hand: shows that the session's
// BIO reads received bytes in place (in chunks of any size, down to one byte), reports "want input" only once it
// has consumed them all, appends its records to the caller's string, and reports closes and damage as before.
#include "http/tls_session.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace ringfetch::http {
namespace {

// A server with a fresh self-signed P-256 certificate, talking through memory BIOs (test side only).
class MemoryServer {
 public:
  MemoryServer() {
    ctx_ = SSL_CTX_new(TLS_server_method());
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(ctx_, cert);
    SSL_CTX_use_PrivateKey(ctx_, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    ssl_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_accept_state(ssl_);
  }
  ~MemoryServer() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }

  void receive(std::string* ciphertext) {
    BIO_write(in_, ciphertext->data(), static_cast<int>(ciphertext->size()));
    ciphertext->clear();
  }
  std::vector<std::byte> take_output() {
    std::vector<std::byte> bytes(BIO_ctrl_pending(out_));
    if (!bytes.empty()) BIO_read(out_, bytes.data(), static_cast<int>(bytes.size()));
    return bytes;
  }
  void step() { SSL_do_handshake(ssl_); }
  bool write(const std::string& text) {
    size_t n = 0;
    return SSL_write_ex(ssl_, text.data(), text.size(), &n) == 1 && n == text.size();
  }
  std::string read_all() {
    std::string text(1 << 16, '\0');
    size_t n = 0;
    if (SSL_read_ex(ssl_, text.data(), text.size(), &n) != 1) return {};
    text.resize(n);
    return text;
  }
  void close() { SSL_shutdown(ssl_); }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
};

std::shared_ptr<TlsContext> unverified_context() {
  TlsOptions options;
  options.verify = false;  // the certificate is self-signed; verification is covered against nginx
  std::shared_ptr<TlsContext> context;
  EXPECT_TRUE(TlsContext::create(options, &context).ok());
  return context;
}

// The client side as the connection drives it: a receive buffer refilled only once the session has read it all.
struct Client {
  std::string send_buffer;
  std::vector<std::byte> receive_buffer;
  TlsSession session;

  Client() { EXPECT_TRUE(session.init(unverified_context(), "localhost", false, &send_buffer).ok()); }

  // Hands over the next `chunk` bytes of what the server sent, the way one recv would.
  bool deliver(std::vector<std::byte>* from_server, size_t chunk) {
    if (from_server->empty()) return false;
    EXPECT_EQ(session.unread_input(), 0u);
    const size_t n = std::min(chunk, from_server->size());
    receive_buffer.assign(from_server->begin(), from_server->begin() + static_cast<std::ptrdiff_t>(n));
    from_server->erase(from_server->begin(), from_server->begin() + static_cast<std::ptrdiff_t>(n));
    session.set_input(receive_buffer);
    return true;
  }
};

void handshake(Client* client, MemoryServer* server, size_t chunk) {
  std::vector<std::byte> from_server;
  for (int round = 0; round < 10000; ++round) {
    const TlsSession::Result r = client->session.handshake();
    server->receive(&client->send_buffer);
    if (r == TlsSession::Result::kDone) {
      server->step();  // reads the client's Finished (TLS 1.3: and queues session tickets ahead of any data)
      return;
    }
    ASSERT_EQ(r, TlsSession::Result::kWantInput) << client->session.status().message();
    ASSERT_EQ(client->session.unread_input(), 0u);  // want-input means every byte handed over was read
    server->step();
    const std::vector<std::byte> more = server->take_output();
    from_server.insert(from_server.end(), more.begin(), more.end());
    ASSERT_TRUE(client->deliver(&from_server, chunk)) << "the handshake stalled";
  }
  FAIL() << "the handshake did not finish";
}

// Reads until `expected` bytes of plaintext arrived, feeding the server's records `chunk` bytes at a time.
std::string read_exactly(Client* client, std::vector<std::byte>* from_server, size_t expected, size_t chunk) {
  std::string text;
  std::vector<char> dest(5000);
  while (text.size() < expected) {
    size_t n = 0;
    const TlsSession::Result r = client->session.read(dest.data(), dest.size(), &n);
    if (r == TlsSession::Result::kDone) {
      text.append(dest.data(), n);
      continue;
    }
    EXPECT_EQ(r, TlsSession::Result::kWantInput) << client->session.status().message();
    if (r != TlsSession::Result::kWantInput || !client->deliver(from_server, chunk)) break;
  }
  return text;
}

std::string pattern(size_t n) {
  std::string text(n, '\0');
  for (size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return text;
}

class TlsSessionChunks : public ::testing::TestWithParam<size_t> {};

TEST_P(TlsSessionChunks, HandshakeAndRecordsGoThroughTheCallersBuffersInAnyChunking) {
  MemoryServer server;
  Client client;
  handshake(&client, &server, GetParam());
  if (HasFailure()) return;

  const std::string request = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(client.session.write(request.data(), request.size()), TlsSession::Result::kDone);
  EXPECT_GT(client.send_buffer.size(), request.size());  // whole records, appended to the caller's string
  server.receive(&client.send_buffer);
  EXPECT_EQ(server.read_all(), request);

  const std::string body = pattern(100000);  // several 16 KiB records
  ASSERT_TRUE(server.write(body));
  std::vector<std::byte> from_server = server.take_output();
  EXPECT_EQ(read_exactly(&client, &from_server, body.size(), GetParam()), body);
  EXPECT_TRUE(from_server.empty());
}

INSTANTIATE_TEST_SUITE_P(Chunks, TlsSessionChunks, ::testing::Values(1, 7, 5 + 16384 + 22, 64 << 10));

TEST(TlsSession, BytesLeftInTheReceiveBufferAreReadBeforeAskingForMore) {
  MemoryServer server;
  Client client;
  handshake(&client, &server, 64 << 10);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(server.write("first") && server.write("second"));
  std::vector<std::byte> from_server = server.take_output();
  ASSERT_TRUE(client.deliver(&from_server, from_server.size()));  // both records in one receive

  char dest[64];
  size_t n = 0;
  ASSERT_EQ(client.session.read(dest, sizeof(dest), &n), TlsSession::Result::kDone);
  EXPECT_EQ(std::string(dest, n), "first");
  EXPECT_TRUE(client.session.has_buffered_plaintext());  // "second" is still in the receive buffer
  ASSERT_EQ(client.session.read(dest, sizeof(dest), &n), TlsSession::Result::kDone);
  EXPECT_EQ(std::string(dest, n), "second");
  EXPECT_EQ(client.session.read(dest, sizeof(dest), &n), TlsSession::Result::kWantInput);
  EXPECT_EQ(client.session.unread_input(), 0u);
}

TEST(TlsSession, CloseNotifyReadsAsClosed) {
  MemoryServer server;
  Client client;
  handshake(&client, &server, 64 << 10);
  ASSERT_FALSE(HasFailure());
  server.close();
  std::vector<std::byte> from_server = server.take_output();
  ASSERT_TRUE(client.deliver(&from_server, from_server.size()));
  char dest[64];
  size_t n = 0;
  EXPECT_EQ(client.session.read(dest, sizeof(dest), &n), TlsSession::Result::kClosed);
}

TEST(TlsSession, DamagedRecordIsAnErrorSayingWhatFailed) {
  MemoryServer server;
  Client client;
  handshake(&client, &server, 64 << 10);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(server.write(pattern(1000)));
  std::vector<std::byte> from_server = server.take_output();
  from_server[from_server.size() - 20] ^= std::byte{0x55};  // inside the last record's ciphertext or tag
  ASSERT_TRUE(client.deliver(&from_server, from_server.size()));
  std::vector<char> dest(4096);
  size_t n = 0;
  TlsSession::Result r = client.session.read(dest.data(), dest.size(), &n);
  while (r == TlsSession::Result::kDone) r = client.session.read(dest.data(), dest.size(), &n);  // earlier records
  ASSERT_EQ(r, TlsSession::Result::kError);
  EXPECT_NE(client.session.status().message().find("TLS read failed"), std::string::npos)
      << client.session.status().message();
}

TEST(TlsSession, KernelTlsProbeAnswersTheSameEveryTimeAndAgreesWithTheKernelsList) {
  const bool offered = kernel_offers_ktls();
  EXPECT_EQ(kernel_offers_ktls(), offered);
  std::ifstream list("/proc/sys/net/ipv4/tcp_available_ulp");
  std::stringstream text;
  text << list.rdbuf();
  // Loading the module on demand can only add "tls", so a listed "tls" must be usable.
  if (text.str().find("tls") != std::string::npos) {
    EXPECT_TRUE(offered);
  }
  std::printf("kernel TLS offered here: %s (available ULPs: %s)\n", offered ? "yes" : "no", text.str().c_str());
}

}  // namespace
}  // namespace ringfetch::http
