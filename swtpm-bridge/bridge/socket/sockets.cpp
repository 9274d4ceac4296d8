#include "bridge/socket/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/hot.hpp"

namespace vtpm::bridge {
namespace {
std::string errstr() { return std::strerror(errno); }
}  // namespace

Result<UniqueFd> listen_tcp(const std::string& bindaddr, unsigned port, const std::string& ifname) {
    if (port > 65535) return make_error(rc::kFail, "TCP port out of range: " + std::to_string(port));
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = bindaddr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    if (family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(static_cast<uint16_t>(port));
        if (::inet_pton(AF_INET6, bindaddr.c_str(), &a->sin6_addr) != 1)
            return make_error(rc::kFail, "invalid IPv6 bind address: " + bindaddr);
        if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr)) {
            if (ifname.empty()) return make_error(rc::kFail, "a link-local address needs ifname=");
            a->sin6_scope_id = ::if_nametoindex(ifname.c_str());
            if (a->sin6_scope_id == 0) return make_error(rc::kFail, "unknown interface: " + ifname);
        }
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(static_cast<uint16_t>(port));
        if (::inet_pton(AF_INET, bindaddr.c_str(), &a->sin_addr) != 1)
            return make_error(rc::kFail, "invalid IPv4 bind address: " + bindaddr);
        len = sizeof *a;
    }
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return make_error(rc::kFail, "socket(): " + errstr());
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
        return make_error(rc::kFail, "could not bind to " + bindaddr + ":" + std::to_string(port) + ": " + errstr());
    if (::listen(fd.get(), 1) < 0) return make_error(rc::kFail, "listen(): " + errstr());
    return fd;
}

bool is_socket(int fd) {
    struct stat st{};
    return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

bool is_listening(int fd) {
    int v = 0;
    socklen_t l = sizeof v;
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v != 0;
}

namespace {

// recv_some with a descriptor passed along (the control channel); not
// inlined, so the data channel's receive stays short.
[[gnu::noinline]] ssize_t recv_with_fd(int fd, Bytes& buf, UniqueFd* fd_out, size_t max) {
    uint8_t tmp[8192];
    iovec iov{tmp, std::min(sizeof tmp, std::max<size_t>(max, 1))};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n;
    do {
        n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        // A character device (chardev, the vTPM proxy) is read, not received from.
        if (n < 0 && errno == ENOTSOCK) {
            msg.msg_controllen = 0;
            n = ::read(fd, tmp, iov.iov_len);
        }
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; ++i) {
            int got;
            std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (fd_out && !fd_out->valid()) fd_out->reset(got);
            else ::close(got);  // only one fd is meaningful
        }
    }
    buf.insert(buf.end(), tmp, tmp + n);
    return n;
}

}  // namespace

ssize_t recv_some(int fd, Bytes& buf, UniqueFd* fd_out, size_t max) {
    if (fd_out) return recv_with_fd(fd, buf, fd_out, max);
    // No descriptor is taken here: the kernel drops any passed one.
    uint8_t tmp[8192];
    const ssize_t n = recv_into(fd, {tmp, std::min(sizeof tmp, std::max<size_t>(max, 1))});
    if (n > 0) buf.insert(buf.end(), tmp, tmp + n);
    return n;
}

VTPM_HOT ssize_t recv_into(int fd, std::span<uint8_t> into) {
    ssize_t n;
    do {
        n = ::recv(fd, into.data(), into.size(), MSG_DONTWAIT);
        // A character device (chardev, the vTPM proxy) is read, not received from.
        if (n < 0 && errno == ENOTSOCK) n = ::read(fd, into.data(), into.size());
    } while (n < 0 && errno == EINTR);
    return n;
}

VTPM_HOT bool write_all(int fd, ByteView data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                pollfd p{fd, POLLOUT, 0};
                if (::poll(&p, 1, 10000) <= 0) return false;  // peer stopped reading
                continue;
            }
            return false;
        }
        off += static_cast<size_t>(n);
    }
    return true;
}

void set_nonblocking(int fd, bool on) {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) return;
    ::fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

void set_cloexec(int fd) {
    int fl = ::fcntl(fd, F_GETFD);
    if (fl >= 0) ::fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

}  // namespace vtpm::bridge
