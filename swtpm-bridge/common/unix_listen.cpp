#include "common/unix_listen.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vtpm::bridge {
namespace {
std::string errstr() { return std::strerror(errno); }
}  // namespace

Result<UniqueFd> listen_unix(const std::string& path, mode_t mode, std::optional<uid_t> uid, std::optional<gid_t> gid,
                             int backlog) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return make_error(rc::kFail, "UNIX socket path too long: " + path);
    // The socket appears at `path` only once it listens: bound, chmod'ed and
    // chown'ed under a temporary name beside it, then renamed over it.
    // libvirt waits for the path and QEMU connects at once; between bind()
    // and listen() it would be refused. (No room for the name: bound in place.)
    const size_t slash = path.rfind('/');
    std::string at =
        path.substr(0, slash == std::string::npos ? 0 : slash + 1) + ".vtpm-" + std::to_string(::getpid()) + ".sock";
    if (at.size() >= sizeof addr.sun_path) at = path;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, at.c_str(), at.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return make_error(rc::kFail, "socket(): " + errstr());
    ::unlink(at.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return make_error(rc::kFail, "could not bind UNIX socket " + at + ": " + errstr());
    auto failed = [&](const std::string& what) {
        const std::string msg = what + ": " + errstr();
        ::unlink(at.c_str());
        return make_error(rc::kFail, msg);
    };
    if (::chmod(at.c_str(), mode) < 0) return failed("could not chmod " + at);
    if ((uid || gid) &&
        ::chown(at.c_str(), uid ? *uid : static_cast<uid_t>(-1), gid ? *gid : static_cast<gid_t>(-1)) < 0)
        return failed("could not chown " + at);
    if (::listen(fd.get(), backlog) < 0) return failed("listen() on " + at);
    if (at != path && ::rename(at.c_str(), path.c_str()) < 0) return failed("could not move the socket to " + path);
    return fd;
}

}  // namespace vtpm::bridge
