// vtpm-hostd: the one process on a host that opens the hardware TPM. It
// holds the AuthKey's auth value and answers typed statements (hostapi/
// protocol.hpp) from bridges, vtpm-setup and vtpm-attest on a unix socket.
//   vtpm-hostd --dir HOSTDIR [--tcti TCTI] [--socket PATH] [--log level=N[,file=F]]
// It runs in the foreground (systemd's Type=simple, or a test's child).
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/process.hpp"
#include "hostapi/io.hpp"
#include "hostapi/protocol.hpp"
#include "hostd/service.hpp"
#include "hosttpm/esys.hpp"
#include "issuance/host_root.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/subopts.hpp"

using namespace vtpm;

namespace {

// A client that stalls mid-request is dropped after this long: requests are
// served one at a time, and one stuck peer must not stop the others.
constexpr int kPeerTimeoutMs = 10000;

int usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage: vtpm-hostd --dir HOSTDIR [--tcti TCTI] [--socket PATH] [--ek-ca FILE|DIR]\n"
                 "                  [--log level=N[,file=FILE]]\n"
                 "  TCTI defaults to %s, PATH to %s. --ek-ca: who may issue vTPM EK certificates\n"
                 "  (besides this host's AuthKey): a PEM file, or a directory of *cert.pem files.\n",
                 hosttpm::kDefaultTcti, hostapi::kDefaultSocket);
    return rc;
}

// Requests of one connection, in order, until the peer closes.
void serve(hostd::Service& service, int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        VTPM_LOG_ERROR("SO_PEERCRED failed: %s; connection dropped", std::strerror(errno));
        return;
    }
    const hostd::Peer peer{cred.pid, cred.uid, cred.gid};
    for (;;) {
        uint8_t prefix[4];
        bool eof = false;
        if (auto r = hostapi::recv_exact(fd, prefix, sizeof prefix, kPeerTimeoutMs, eof); !r) {
            if (!eof) VTPM_LOG_WARN("pid %d: %s", static_cast<int>(peer.pid), r.error().message.c_str());
            return;
        }
        auto n = hostapi::frame_length(ByteView(prefix, 4));
        if (!n) {
            VTPM_LOG_WARN("pid %d: %s; connection dropped", static_cast<int>(peer.pid), n.error().message.c_str());
            (void)hostapi::send_all(fd, hostapi::encode_failure(0, rc::kBadParameter, n.error().message));
            return;
        }
        Bytes body(*n);
        if (auto r = hostapi::recv_exact(fd, body.data(), body.size(), kPeerTimeoutMs, eof); !r) {
            VTPM_LOG_WARN("pid %d: %s", static_cast<int>(peer.pid), r.error().message.c_str());
            return;
        }
        Bytes response = service.handle(body, peer);
        const bool sent = static_cast<bool>(hostapi::send_all(fd, response));
        OPENSSL_cleanse(response.data(), response.size());  // a StateKey answer carries a key
        if (!sent) return;
    }
}

Result<UniqueFd> listen_on(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return make_error(rc::kBadParameter, "socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return make_error(rc::kFail, path + " exists and is not a socket");
        ::unlink(path.c_str());  // a stale socket of an earlier run
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return make_error(rc::kFail, std::string("socket: ") + std::strerror(errno));
    // Owner and group only, from the moment the socket exists: the group
    // names who may ask (the bridges' user is put in it).
    const mode_t old = ::umask(0117);
    const int b = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    ::umask(old);
    if (b != 0) return make_error(rc::kFail, "bind " + path + ": " + std::strerror(err));
    if (::listen(fd.get(), 64) != 0) return make_error(rc::kFail, std::string("listen: ") + std::strerror(errno));
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

    for (;;) {
        pollfd fds[2] = {{listener->get(), POLLIN, 0}, {sig.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            VTPM_LOG_ERROR("poll: %s", std::strerror(errno));
            break;
        }
        if (fds[1].revents) {
            VTPM_LOG_INFO("signal received, stopping");
            break;
        }
        if (fds[0].revents & POLLIN) {
            UniqueFd conn(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (conn) serve(service, conn.get());
        }
    }
    ::unlink(socket_path.c_str());
    return 0;
}
