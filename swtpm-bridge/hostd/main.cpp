// vtpm-hostd: the one process on a host that opens the hardware TPM. It
// holds the AuthKey's auth value and answers typed statements (hostapi/
// protocol.hpp) from bridges, vtpm-setup and vtpm-attest on a unix socket.
//   vtpm-hostd --dir HOSTDIR [--tcti TCTI] [--socket PATH] [--log level=N[,file=F]]
// It runs in the foreground (systemd's Type=simple, or a test's child).
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <string>
#include <utility>
#include <vector>

#include "common/process.hpp"
#include "common/unix_listen.hpp"
#include "hostapi/protocol.hpp"
#include "hostd/service.hpp"
#include "hoststate/host_files.hpp"
#include "hosttpm/esys.hpp"
#include "issuance/host_root.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/subopts.hpp"

using namespace vtpm;

namespace {

using Clock = std::chrono::steady_clock;

// All clients are served from one poll() loop, a request at a time (the
// Service is not thread-safe and the TPM serializes anyway), so every wait
// on a peer is bounded per message, never per byte: a request frame must be
// complete this long after its first byte, and an answer taken by the peer
// this long after it was ready.
constexpr auto kMessageTimeout = std::chrono::seconds(10);
// A connection with nothing in flight is closed after this long.
constexpr auto kIdleTimeout = std::chrono::seconds(30);
// Beyond this many open connections a new one is closed at once.
constexpr size_t kMaxConnections = 128;
// Bytes read from one peer per turn of the loop (others wait no longer).
constexpr size_t kReadChunk = 64 * 1024;
// Large frames (a save's page hashes, up to hostapi::kMaxFrame) are read only
// while all large frames in memory, requests and answers, stay within this:
// 128 peers each announcing the largest frame would otherwise hold 20 GiB
// and have the kernel kill a guest for it. A frame admitted is read whole; a
// frame waiting for room is not read at all (its peer is dropped if it waits
// past kMessageTimeout). Small frames (every kind but a save's) always pass.
constexpr size_t kSmallFrame = 64 * 1024;
constexpr size_t kLargeFramesBudget = 2 * (size_t{hostapi::kMaxFrame} + 4);

constexpr const char* kBusy = "too many large messages in memory now; try again";

// Bytes of large frames in memory, and one connection's share of them,
// given back when the frame is done or the connection goes.
struct Budget {
    size_t used = 0;
};
class Share {
public:
    Share() = default;
    Share(const Share&) = delete;
    Share& operator=(const Share&) = delete;
    ~Share() { release(); }
    // Takes n bytes (in place of what it held) if they fit; a small n
    // always does and takes nothing.
    bool take(Budget& b, size_t n) {
        release();
        if (n <= kSmallFrame) return true;
        if (b.used + n > kLargeFramesBudget) return false;
        b.used += n;
        budget_ = &b;
        n_ = n;
        return true;
    }
    void release() {
        if (budget_) budget_->used -= n_;
        budget_ = nullptr;
        n_ = 0;
    }

private:
    Budget* budget_ = nullptr;
    size_t n_ = 0;
};

// Zero and free a buffer that held a request or an answer.
void wipe(Bytes& b) {
    if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
    Bytes().swap(b);  // a frame may be large: give the memory back
}

// Resize `b` to `n` bytes; a larger buffer is a new one, and the old one is
// zeroed before it is freed (a request may carry a credential's secret).
void grow(Bytes& b, size_t n) {
    if (n > b.capacity()) {
        Bytes bigger;
        bigger.reserve(std::max(n, 2 * b.capacity()));
        bigger.assign(b.begin(), b.end());
        wipe(b);
        b.swap(bigger);
    }
    b.resize(n);
}

// One client connection: the request frame being received, or the answer
// being sent (then its next request waits in the socket: in order).
struct Connection {
    UniqueFd fd;
    hostd::Peer peer;
    Bytes in;               // the frame so far, length prefix included
    uint32_t body_len = 0;  // once the prefix is in
    Bytes out;              // the answer not yet taken, from out_off
    size_t out_off = 0;
    Clock::time_point deadline;
    Share share;            // of the large-frames budget, for `in` or `out`
    bool admitted = false;  // the frame's body may be read (room for it taken)

    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() {
        wipe(in);
        wipe(out);  // a StateKey answer carries a key
    }
    bool sending() const { return out_off < out.size(); }
    // The frame's length is in and its body waits for room in the budget.
    bool waiting() const { return in.size() == 4 && !admitted; }
    // Room for the announced frame, if the budget has it. A large frame's
    // buffer is reserved whole then: pages are touched only as bytes arrive,
    // and growing it by copies would leave several times its size touched.
    void admit(Budget& budget) {
        admitted = share.take(budget, 4 + size_t{body_len});
        if (admitted && body_len > kSmallFrame) in.reserve(4 + size_t{body_len});
    }
    int pid() const { return static_cast<int>(peer.pid); }
};

// What was done with a connection's turn: it stays, or is to be closed.
enum class Turn { Keep, Close };

// Send what the socket takes now (never blocking the loop). The answer
// done, the connection waits for its next request.
Turn flush(Connection& c) {
    while (c.sending()) {
        const ssize_t n =
            ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Turn::Keep;  // poll for POLLOUT
        if (n <= 0) {
            VTPM_LOG_WARN("pid %d: sending: %s; connection dropped", c.pid(), std::strerror(errno));
            return Turn::Close;
        }
        c.out_off += static_cast<size_t>(n);
    }
    wipe(c.out);
    c.out_off = 0;
    c.share.release();
    c.deadline = Clock::now() + kIdleTimeout;
    return Turn::Keep;
}

// Read what has arrived of the current frame (no further: the next request
// stays in the socket until this one is answered); answer it once whole.
Turn receive(hostd::Service& service, Budget& budget, Connection& c) {
    const size_t want = c.in.size() < 4 ? 4 - c.in.size() : 4 + size_t{c.body_len} - c.in.size();
    const size_t have = c.in.size();
    grow(c.in, have + std::min(want, kReadChunk));  // grows with what arrives, not with what is announced
    const ssize_t got = ::recv(c.fd.get(), c.in.data() + have, c.in.size() - have, MSG_DONTWAIT);
    c.in.resize(have + static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return Turn::Keep;
        VTPM_LOG_WARN("pid %d: receiving: %s; connection dropped", c.pid(), std::strerror(errno));
        return Turn::Close;
    }
    if (got == 0) {  // the peer closed: quietly between requests
        if (have != 0) VTPM_LOG_WARN("pid %d: the peer closed mid-message", c.pid());
        return Turn::Close;
    }
    if (have == 0) c.deadline = Clock::now() + kMessageTimeout;  // a frame started
    if (have < 4 && c.in.size() == 4) {
        auto n = hostapi::frame_length(ByteView(c.in.data(), 4));
        if (!n) {
            VTPM_LOG_WARN("pid %d: %s; connection dropped", c.pid(), n.error().message.c_str());
            const Bytes failure = hostapi::encode_failure(0, rc::kBadParameter, n.error().message);
            (void)::send(c.fd.get(), failure.data(), failure.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // best effort
            return Turn::Close;
        }
        c.body_len = *n;
        c.admit(budget);
    }
    if (c.in.size() < 4 || c.in.size() < 4 + size_t{c.body_len}) return Turn::Keep;
    c.out = service.handle(ByteView(c.in.data() + 4, c.body_len), c.peer);
    c.out_off = 0;
    wipe(c.in);
    c.body_len = 0;
    c.admitted = false;
    // A large answer (a save's page hashes, for LeavesFor) stays in memory
    // until the peer takes it: one that does not fit is dropped for a refusal.
    if (!c.share.take(budget, c.out.size())) {
        const uint16_t kind = c.out.size() >= 8 ? load_be16(c.out.data() + 6) : 0;
        wipe(c.out);
        c.out = hostapi::encode_failure(kind, rc::kRetry, kBusy);
        VTPM_LOG_WARN("pid %d: a large answer refused: %s", c.pid(), kBusy);
    }
    c.deadline = Clock::now() + kMessageTimeout;
    return flush(c);
}

// Serve every connection until SIGTERM, SIGINT or SIGHUP (on `sig`).
void serve(hostd::Service& service, int listener, int sig) {
    Budget budget;  // outlives the connections' shares of it
    std::list<Connection> conns;
    std::vector<pollfd> fds;
    for (;;) {
        fds.assign({{listener, POLLIN, 0}, {sig, POLLIN, 0}});
        auto next = Clock::time_point::max();
        for (auto& c : conns) {
            // Room given to waiting frames in the order their peers connected.
            if (c.waiting()) c.admit(budget);
            const short events = c.sending() ? POLLOUT : c.waiting() ? 0 : POLLIN;  // 0: hang-ups only
            fds.push_back({c.fd.get(), events, 0});
            next = std::min(next, c.deadline);
        }
        int timeout = -1;
        if (!conns.empty()) {
            const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count();
            timeout = static_cast<int>(std::clamp<decltype(ms)>(ms, 0, 60000));
        }
        if (::poll(fds.data(), fds.size(), timeout) < 0) {
            if (errno == EINTR) continue;
            VTPM_LOG_ERROR("poll: %s", std::strerror(errno));
            return;
        }
        if (fds[1].revents) {
            VTPM_LOG_INFO("signal received, stopping");
            return;
        }
        // The pollfds from index 2 follow `conns` in order; a new connection joins after this pass.
        size_t i = 2;
        for (auto it = conns.begin(); it != conns.end(); ++i) {
            Connection& c = *it;
            Turn t = Turn::Keep;
            if (fds[i].revents && c.waiting()) {
                VTPM_LOG_WARN("pid %d: the peer closed mid-message", c.pid());
                t = Turn::Close;
            } else if (fds[i].revents) {
                t = c.sending() ? flush(c) : receive(service, budget, c);
            }
            if (t == Turn::Keep && Clock::now() >= c.deadline) {
                const char* what = c.sending()    ? "the answer was not taken within"
                                   : c.in.empty() ? "idle for"
                                   : c.waiting()  ? "the request waited for room in memory for"
                                                  : "the request was incomplete after";
                const auto limit = c.sending() || !c.in.empty() ? kMessageTimeout : kIdleTimeout;
                VTPM_LOG_WARN("pid %d: %s %lld s; connection dropped", c.pid(), what,
                              static_cast<long long>(limit.count()));
                t = Turn::Close;
            }
            it = t == Turn::Close ? conns.erase(it) : std::next(it);
        }
        if (fds[0].revents & POLLIN) {
            UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!fd) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                    VTPM_LOG_WARN("accept: %s", std::strerror(errno));
                continue;
            }
            ucred cred{};
            socklen_t len = sizeof cred;
            if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
                VTPM_LOG_ERROR("SO_PEERCRED failed: %s; connection dropped", std::strerror(errno));
                continue;
            }
            if (conns.size() >= kMaxConnections) {
                VTPM_LOG_WARN("pid %d: %zu connections open already; connection dropped", static_cast<int>(cred.pid),
                              conns.size());
                continue;
            }
            Connection& c = conns.emplace_back();
            c.fd = std::move(fd);
            c.peer = hostd::Peer{cred.pid, cred.uid, cred.gid};
            c.deadline = Clock::now() + kIdleTimeout;
        }
    }
}

int usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage: vtpm-hostd --dir HOSTDIR [--tcti TCTI] [--socket PATH] [--ek-ca FILE|DIR]\n"
                 "                  [--log level=N[,file=FILE]]\n"
                 "  TCTI defaults to %s, PATH to %s. --ek-ca: who may issue vTPM EK certificates\n"
                 "  (besides this host's AuthKey): a PEM file, or a directory of *cert.pem files.\n",
                 hosttpm::kDefaultTcti, hostapi::kDefaultSocket);
    return rc;
}

Result<UniqueFd> listen_on(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return make_error(rc::kBadParameter, "socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return make_error(rc::kFail, path + " exists and is not a socket");
        // Only a stale socket of an earlier run is replaced: one that accepts
        // is served (by a vtpm-hostd of another HOSTDIR?) and is not ours to take.
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!probe) return make_error(rc::kFail, std::string("socket: ") + std::strerror(errno));
        if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN)
            return make_error(rc::kFail, path + " is served by another process (another vtpm-hostd?): not taken over");
        if (errno != ECONNREFUSED && errno != ENOENT)
            return make_error(rc::kFail, "cannot tell whether " + path + " is in use: " + std::strerror(errno));
    }
    // Owner and group only (the group names who may ask: the bridges' user
    // is put in it); the path appears only once the socket listens, so a
    // bridge that sees it is never refused. A stale socket is replaced.
    auto fd = bridge::listen_unix(path, 0660, std::nullopt, std::nullopt, 64);
    if (!fd) return fd;
    const int fl = ::fcntl(fd->get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd->get(), F_SETFL, fl | O_NONBLOCK) != 0)
        return make_error(rc::kFail, std::string("fcntl: ") + std::strerror(errno));
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    static const struct option longopts[] = {{"dir", required_argument, nullptr, 'd'},
                                             {"tcti", required_argument, nullptr, 't'},
                                             {"socket", required_argument, nullptr, 's'},
                                             {"log", required_argument, nullptr, 'l'},
                                             {"ek-ca", required_argument, nullptr, 'e'},
                                             {"help", no_argument, nullptr, 'h'},
                                             {nullptr, 0, nullptr, 0}};
    std::string dir, tcti = hosttpm::kDefaultTcti, socket_path = hostapi::kDefaultSocket, ek_ca;
    bridge::LogOpts log;
    log.level = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (c) {
            case 'd': dir = optarg; break;
            case 't': tcti = optarg; break;
            case 's': socket_path = optarg; break;
            case 'e': ek_ca = optarg; break;
            case 'l': {
                auto so = SubOpts::parse(optarg, {"level", "file"});
                if (!so) return std::fprintf(stderr, "vtpm-hostd: --log: %s\n", so.error().message.c_str()), 2;
                if (auto f = so->str("file")) log.file = *f;
                if (auto l = so->str("level")) {
                    char* end = nullptr;
                    const unsigned long v = std::strtoul(l->c_str(), &end, 10);
                    if (l->empty() || *end || v > 20)
                        return std::fprintf(stderr, "vtpm-hostd: --log: bad level '%s'\n", l->c_str()), 2;
                    log.level = static_cast<unsigned>(v);
                }
                break;
            }
            case 'h': return usage(0);
            default: return usage(2);
        }
    }
    if (optind < argc || dir.empty()) return usage(2);
    log.prefix = "vtpm-hostd: ";
    if (auto r = bridge::setup_logging(log); !r)
        return std::fprintf(stderr, "vtpm-hostd: %s\n", r.error().message.c_str()), 1;
    // It holds the AuthKey's auth value: no core dumps, no debugger of its user.
    if (auto r = bridge::harden_process(); !r)
        return std::fprintf(stderr, "vtpm-hostd: %s\n", r.error().message.c_str()), 1;
    // tpm2-tss logs expected failures as errors; our messages say what matters.
    setenv("TSS2_LOG", "all+none", 0);

    // One daemon per HOSTDIR: two would interleave ledger commits and leave
    // HOSTDIR/ledger behind the host TPM's counter (the next start refuses it).
    auto dir_lock = hoststate::lock_host_dir(dir, "another vtpm-hostd");  // before anything in HOSTDIR is read
    if (!dir_lock) return std::fprintf(stderr, "vtpm-hostd: %s\n", dir_lock.error().message.c_str()), 1;
    auto tpm = hosttpm::Esys::open(tcti);
    if (!tpm) return std::fprintf(stderr, "vtpm-hostd: host TPM (%s): %s\n", tcti.c_str(),
                                  tpm.error().message.c_str()), 1;
    auto root = issuance::HostRoot::open(std::move(*tpm), dir);
    if (!root) return std::fprintf(stderr, "vtpm-hostd: %s\n", root.error().message.c_str()), 1;
    // The ledger is checked against the host TPM's counter before anyone can
    // ask: a rolled-back HOSTDIR stops the daemon here.
    hostd::Service service(**root, ek_ca);
    auto ledger = service.open_ledger();
    if (!ledger) return std::fprintf(stderr, "vtpm-hostd: %s\n", ledger.error().message.c_str()), 1;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    UniqueFd sig(::signalfd(-1, &mask, SFD_CLOEXEC));
    if (!sig) return std::fprintf(stderr, "vtpm-hostd: signalfd: %s\n", std::strerror(errno)), 1;
    auto listener = listen_on(socket_path);
    if (!listener) return std::fprintf(stderr, "vtpm-hostd: %s\n", listener.error().message.c_str()), 1;
    VTPM_LOG_INFO("serving %s: AuthKey %s of %s, TPM %s", socket_path.c_str(),
                  to_hex((*root)->authkey_name()).substr(0, 16).c_str(), dir.c_str(), tcti.c_str());
    VTPM_LOG_INFO("%s", ledger->c_str());
    std::fprintf(stderr, "vtpm-hostd: ready on %s\n", socket_path.c_str());

    serve(service, listener->get(), sig.get());
    ::unlink(socket_path.c_str());
    return 0;
}
