// libcurl multi client (see curl_client.hpp). The loop is the documented one: curl_multi_perform, read the done
// messages, re-add finished handles with their next range, curl_multi_poll.
#include "curl_client.hpp"

#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "measure.hpp"

namespace ringfetch::bench {
namespace {

constexpr long kTunedBufferBytes = 512 << 10;
constexpr int kPollTimeoutMs = 1000;
constexpr long kTransferTimeoutS = 120;
constexpr long kPartialContent = 206;

struct Transfer {
  CURL* easy = nullptr;
  size_t request = 0;
  std::byte* dest = nullptr;
  uint64_t expected = 0;
  uint64_t got = 0;
  uint64_t started_ns = 0;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->got + n > t->expected) return 0;  // more than the range (e.g. a 200 with the whole object): abort
  std::memcpy(t->dest + t->got, data, n);
  t->got += n;
  return n;
}

class CurlClient {
 public:
  CurlClient(const TransportJob& job, CurlProfile profile, RunResult* out) : job_(job), profile_(profile), out_(out) {}
  ~CurlClient() {
    for (auto& t : transfers_) {
      if (multi_ != nullptr) curl_multi_remove_handle(multi_, t->easy);
      curl_easy_cleanup(t->easy);
    }
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }

  void run() {
    if (job_.record_latency) out_->latency_ns.assign(job_.requests.size(), 0);
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(job_.connections));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(job_.connections));
    const std::string url = job_.server.root_url(job_.protocol) + job_.path;
    const size_t count = std::min<size_t>(job_.connections, job_.requests.size());
    for (size_t i = 0; i < count; ++i) transfers_.push_back(make_transfer(url));
    for (auto& t : transfers_) start(*t);
    loop();
  }

 private:
  std::unique_ptr<Transfer> make_transfer(const std::string& url) {
    auto t = std::make_unique<Transfer>();
    CURL* e = curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TIMEOUT, kTransferTimeoutS);
    if (job_.protocol == Protocol::kHttps && !job_.server.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, job_.server.ca_file.c_str());  // else libcurl's default trust store
    }
    if (profile_ == CurlProfile::kTuned) {
      curl_easy_setopt(e, CURLOPT_BUFFERSIZE, kTunedBufferBytes);
      curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
      curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
      curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    }
    return t;
  }

  void start(Transfer& t) {
    const ByteSpan& r = job_.requests[next_];
    t.request = next_++;
    t.dest = job_.dest.data() + r.offset;
    t.expected = r.length;
    t.got = 0;
    const std::string range = std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1);
    curl_easy_setopt(t.easy, CURLOPT_RANGE, range.c_str());  // copied by libcurl
    t.started_ns = now_ns();
    ++out_->requests;
    curl_multi_add_handle(multi_, t.easy);
  }

  bool finish(CURLMsg* msg) {
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (msg->data.result != CURLE_OK || status != kPartialContent || t->got != t->expected) {
      out_->error = "curl: request " + std::to_string(t->request) + ": " + curl_easy_strerror(msg->data.result) +
                    ", HTTP " + std::to_string(status) + ", " + std::to_string(t->got) + " of " +
                    std::to_string(t->expected) + " bytes";
      return false;
    }
    if (job_.record_latency) out_->latency_ns[t->request] = now_ns() - t->started_ns;
    out_->bytes_wire += t->got;
    out_->bytes_copied += t->got;
    ++completed_;
    curl_multi_remove_handle(multi_, t->easy);
    if (next_ < job_.requests.size()) start(*t);
    return true;
  }

  void loop() {
    while (completed_ < job_.requests.size()) {
      int running = 0;
      if (curl_multi_perform(multi_, &running) != CURLM_OK) {
        out_->error = "curl: curl_multi_perform failed";
        return;
      }
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE && !finish(msg)) return;
      }
      if (completed_ < job_.requests.size()) curl_multi_poll(multi_, nullptr, 0, kPollTimeoutMs, nullptr);
    }
    out_->ok = true;
  }

  const TransportJob& job_;
  CurlProfile profile_;
  RunResult* out_;
  CURLM* multi_ = nullptr;
  std::vector<std::unique_ptr<Transfer>> transfers_;
  size_t next_ = 0;
  size_t completed_ = 0;
};

}  // namespace

void init_curl() { curl_global_init(CURL_GLOBAL_DEFAULT); }

void run_curl(const TransportJob& job, CurlProfile profile, RunResult* out) {
  CurlClient client(job, profile, out);
  client.run();
}

}  // namespace ringfetch::bench
