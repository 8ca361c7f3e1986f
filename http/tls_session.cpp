// TLS through a BIO of our own over the connection's buffers. The engine moves ciphertext between the socket and
// those buffers; SSL_read writes plaintext straight into the destination memory of the item being filled.
#include "http/tls_session.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ringfetch::http {
namespace {

std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "unknown TLS error" : text;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* context = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  context->remember_session(session);
  return 1;  // we keep the reference
}

std::string default_ca_file() {
  for (const char* name : {"SSL_CERT_FILE", "AWS_CA_BUNDLE"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
  }
  return {};
}

void warn_unverified_once() {
  static bool warned = false;
  if (warned) return;
  warned = true;
  std::fprintf(stderr, "ringfetch: warning: TLS certificate verification is turned off\n");
}

// The BIO between OpenSSL and the connection. A memory BIO would cost a copy of every received byte (receive buffer
// into the BIO, then BIO into OpenSSL's record buffer); this one hands OpenSSL the bytes the recv placed in the
// receive buffer. Running out of input is "retry", never end of file: whether the peer closed is the socket's
// answer, which the connection has already seen.
TlsSession::Channel* channel_of(BIO* bio) { return static_cast<TlsSession::Channel*>(BIO_get_data(bio)); }

int channel_read(BIO* bio, char* out, size_t capacity, size_t* n) {
  TlsSession::Channel* channel = channel_of(bio);
  BIO_clear_retry_flags(bio);
  const size_t left = channel->input.size() - channel->consumed;
  if (left == 0) {
    BIO_set_retry_read(bio);
    *n = 0;
    return 0;
  }
  *n = std::min(capacity, left);
  std::memcpy(out, channel->input.data() + channel->consumed, *n);
  channel->consumed += *n;
  return 1;
}

// Records go straight onto the connection's send buffer, which grows as needed, so writes never wait.
int channel_write(BIO* bio, const char* in, size_t length, size_t* n) {
  BIO_clear_retry_flags(bio);
  channel_of(bio)->output->append(in, length);
  *n = length;
  return 1;
}

long channel_ctrl(BIO* bio, int command, long /*number*/, void* /*pointer*/) {
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;  // everything written is already in the send buffer
    case BIO_CTRL_PENDING: {
      const TlsSession::Channel* channel = channel_of(bio);
      return static_cast<long>(channel->input.size() - channel->consumed);
    }
    default:
      return 0;  // includes the kTLS queries: this BIO never offloads to the kernel
  }
}

int channel_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// One method table for the process, built on first use and kept until exit (OpenSSL only reads it).
const BIO_METHOD* channel_method() {
  static BIO_METHOD* const method = [] {
    const int type = BIO_get_new_index();
    BIO_METHOD* m = type == -1 ? nullptr : BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "ringfetch connection");
    if (m != nullptr && (BIO_meth_set_read_ex(m, &channel_read) != 1 || BIO_meth_set_write_ex(m, &channel_write) != 1 ||
                         BIO_meth_set_ctrl(m, &channel_ctrl) != 1 || BIO_meth_set_create(m, &channel_create) != 1)) {
      BIO_meth_free(m);
      m = nullptr;
    }
    return m;
  }();
  return method;
}

// Closes a descriptor on scope exit (the probe opens three).
struct ScopedFd {
  int fd = -1;
  ~ScopedFd() {
    if (fd >= 0) close(fd);
  }
};

// A connected loopback TCP socket, because the kernel only attaches "tls" to an established connection.
bool probe_ktls_on_loopback() {
  ScopedFd listener{socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  ScopedFd client{socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (listener.fd < 0 || client.fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  if (bind(listener.fd, generic, length) != 0 || listen(listener.fd, 1) != 0 ||
      getsockname(listener.fd, generic, &length) != 0 || connect(client.fd, generic, length) != 0) {
    return false;
  }
  static constexpr char kUlp[] = "tls";
  return setsockopt(client.fd, IPPROTO_TCP, TCP_ULP, kUlp, sizeof(kUlp)) == 0;  // ENOENT: no tls module
}

}  // namespace

bool kernel_offers_ktls() {
  static const bool offered = probe_ktls_on_loopback();
  return offered;
}

Status TlsContext::create(const TlsOptions& options, std::shared_ptr<TlsContext>* out) {
  std::shared_ptr<TlsContext> context(new TlsContext());
  context->ctx_ = SSL_CTX_new(TLS_client_method());
  if (context->ctx_ == nullptr) return Status(ErrorKind::kNetwork, "cannot create TLS context: " + openssl_errors());
  SSL_CTX_set_min_proto_version(context->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(context->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_app_data(context->ctx_, context.get());
  SSL_CTX_set_session_cache_mode(context->ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(context->ctx_, &on_new_session);
  context->verify_ = options.verify;
  if (!options.verify) {
    warn_unverified_once();
    SSL_CTX_set_verify(context->ctx_, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(context->ctx_, SSL_VERIFY_PEER, nullptr);
    const std::string ca_file = options.ca_file.empty() ? default_ca_file() : options.ca_file;
    if (!ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(context->ctx_, ca_file.c_str(), nullptr) != 1) {
        return Status(ErrorKind::kInvalidArgument, "cannot load CA file '" + ca_file + "': " + openssl_errors());
      }
    } else if (SSL_CTX_set_default_verify_paths(context->ctx_) != 1) {
      return Status(ErrorKind::kNetwork, "cannot load the system CA store: " + openssl_errors());
    }
  }
  *out = std::move(context);
  return {};
}

TlsContext::~TlsContext() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

SSL_SESSION* TlsContext::take_session_for_reuse() {
  std::lock_guard lock(mutex_);
  if (session_ != nullptr) SSL_SESSION_up_ref(session_);
  return session_;
}

void TlsContext::remember_session(SSL_SESSION* session) {
  std::lock_guard lock(mutex_);
  if (session_ != nullptr) SSL_SESSION_free(session_);
  session_ = session;
}

Status TlsSession::init(std::shared_ptr<TlsContext> context, const std::string& server_name, bool ip_literal,
                        std::string* output) {
  context_ = std::move(context);
  server_name_ = server_name;
  channel_.output = output;
  ssl_ = SSL_new(context_->ctx());
  const BIO_METHOD* method = channel_method();
  BIO* bio = ssl_ != nullptr && method != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) {
    return Status(ErrorKind::kNetwork, "cannot create TLS session for '" + server_name + "': " + openssl_errors());
  }
  BIO_set_data(bio, &channel_);
  SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_ from here on
  SSL_set_connect_state(ssl_);
  if (!ip_literal) SSL_set_tlsext_host_name(ssl_, server_name.c_str());
  if (context_->verify()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                              : X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), 0);
    if (ok != 1) return Status(ErrorKind::kNetwork, "cannot set TLS peer name '" + server_name + "'");
  }
  if (SSL_SESSION* session = context_->take_session_for_reuse()) {
    SSL_set_session(ssl_, session);
    SSL_SESSION_free(session);
  }
  return {};
}

TlsSession::~TlsSession() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

TlsSession::Result TlsSession::fail(int rc, const char* what) {
  const int error = SSL_get_error(ssl_, rc);
  if (error == SSL_ERROR_WANT_READ) return Result::kWantInput;
  if (error == SSL_ERROR_ZERO_RETURN) return Result::kClosed;
  std::string detail;
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    detail = std::string("certificate verification failed for '") + server_name_ +
             "': " + X509_verify_cert_error_string(verify);
  } else {
    detail = openssl_errors();
  }
  ERR_clear_error();
  status_ = Status(ErrorKind::kNetwork, std::string("TLS ") + what + " failed: " + detail);
  return Result::kError;
}

TlsSession::Result TlsSession::handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  return rc == 1 ? Result::kDone : fail(rc, "handshake");
}

TlsSession::Result TlsSession::read(void* dest, size_t capacity, size_t* n) {
  ERR_clear_error();
  size_t got = 0;
  const int rc = SSL_read_ex(ssl_, dest, capacity, &got);
  if (rc == 1) {
    *n = got;
    return Result::kDone;
  }
  return fail(rc, "read");
}

TlsSession::Result TlsSession::write(const void* data, size_t n) {
  ERR_clear_error();
  size_t written = 0;
  while (written < n) {
    size_t chunk = 0;
    const int rc = SSL_write_ex(ssl_, static_cast<const char*>(data) + written, n - written, &chunk);
    if (rc != 1) return fail(rc, "write");
    written += chunk;
  }
  return Result::kDone;
}

void TlsSession::set_input(std::span<const std::byte> ciphertext) {
  assert(unread_input() == 0 && "the previous input is still being read from the receive buffer");
  channel_.input = ciphertext;
  channel_.consumed = 0;
}

bool TlsSession::has_buffered_plaintext() const { return SSL_pending(ssl_) > 0 || unread_input() > 0; }

bool TlsSession::session_reused() const { return SSL_session_reused(ssl_) == 1; }

}  // namespace ringfetch::http
