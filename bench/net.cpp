#include "net.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

namespace bench {
namespace {

using vtpm::Result;
using vtpm::UniqueFd;

constexpr size_t kMaxResponse = 4096 + 64;
constexpr int kReceiveTimeoutSeconds = 30;

vtpm::Error sys_error(const std::string& what) {
    return vtpm::make_error(vtpm::rc::kIoError, what + ": " + std::strerror(errno));
}

sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

bool bindable(int fd, uint16_t port) {
    sockaddr_in a = loopback(port);
    return ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

uint32_t be32_at(const Bytes& b, size_t off) {
    return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
}

}  // namespace

Result<uint16_t> free_port_pair() {
    for (int attempt = 0; attempt < 200; ++attempt) {
        UniqueFd a(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        UniqueFd b(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!a || !b) return sys_error("socket");
        if (!bindable(a.get(), 0)) return sys_error("bind 127.0.0.1:0");
        sockaddr_in got{};
        socklen_t len = sizeof got;
        if (::getsockname(a.get(), reinterpret_cast<sockaddr*>(&got), &len) != 0) return sys_error("getsockname");
        uint16_t port = ntohs(got.sin_port);
        if (port < 65535 && bindable(b.get(), static_cast<uint16_t>(port + 1))) return port;
    }
    return vtpm::make_error(vtpm::rc::kFail, "no free pair of TCP ports on 127.0.0.1");
}

Result<UniqueFd> connect_retry(uint16_t port, std::chrono::steady_clock::time_point deadline,
                               const std::function<bool()>& still_alive) {
    const sockaddr_in addr = loopback(port);
    for (;;) {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) return sys_error("socket");
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
            int one = 1;
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            timeval tv{kReceiveTimeoutSeconds, 0};
            ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            return fd;
        }
        if (errno != ECONNREFUSED && errno != EINTR) return sys_error("connect 127.0.0.1:" + std::to_string(port));
        if (!still_alive())
            return vtpm::make_error(vtpm::rc::kFail, "server exited before accepting on port " + std::to_string(port));
        if (std::chrono::steady_clock::now() > deadline)
            return vtpm::make_error(vtpm::rc::kFail, "nothing listens on 127.0.0.1:" + std::to_string(port));
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
}

Result<void> send_all(int fd, const uint8_t* msg, size_t len) {
    while (len > 0) {
        ssize_t n = ::send(fd, msg, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return sys_error("send");
        msg += n;
        len -= static_cast<size_t>(n);
    }
    return {};
}

Result<void> recv_at_least(int fd, Bytes& buf, size_t want) {
    size_t have = buf.size();
    if (buf.capacity() < want) buf.reserve(std::max(want, kMaxResponse));
    while (have < want) {
        buf.resize(buf.capacity());
        ssize_t n = ::recv(fd, buf.data() + have, buf.size() - have, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            buf.resize(have);
            if (n == 0) return vtpm::make_error(vtpm::rc::kIoError, "connection closed by the server");
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return vtpm::make_error(vtpm::rc::kIoError,
                                        "no answer within " + std::to_string(kReceiveTimeoutSeconds) + " s");
            return sys_error("recv");
        }
        have += static_cast<size_t>(n);
        buf.resize(have);
    }
    return {};
}

Result<void> tpm_transact(int fd, const Bytes& cmd, Bytes& rsp) {
    rsp.clear();
    if (auto r = send_all(fd, cmd.data(), cmd.size()); !r) return r;
    if (auto r = recv_at_least(fd, rsp, 10); !r) return r;
    uint32_t size = be32_at(rsp, 2);
    if (size < 10 || size > kMaxResponse)
        return vtpm::make_error(vtpm::rc::kFail, "response header announces " + std::to_string(size) + " bytes");
    if (auto r = recv_at_least(fd, rsp, size); !r) return r;
    if (rsp.size() != size)
        return vtpm::make_error(vtpm::rc::kFail, "server sent " + std::to_string(rsp.size()) + " bytes for a " +
                                                     std::to_string(size) + "-byte response");
    return {};
}

}  // namespace bench
