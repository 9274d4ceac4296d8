#include "bridge/socket/admin.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "bridge/socket/sockets.hpp"
#include "common/unix_listen.hpp"
#include "ctrl/framer.hpp"
#include "util/log.hpp"

namespace vtpm::bridge {
namespace {

// The admin socket's one command: anything else is refused by its code
// before the framer is asked, so no other command's body is ever read.
constexpr uint32_t kVerifyCode = static_cast<uint32_t>(ctrl::Cmd::VtpmVerifyRam);

}  // namespace

Result<std::unique_ptr<AdminSocket>> AdminSocket::open(const std::string& path, VerifyHandler verify,
                                                       EventLoop& loop) {
    // umask first: the socket never exists with wider permissions, not even
    // between bind() and chmod().
    const mode_t old = ::umask(0077);
    auto fd = listen_unix(path, 0600, std::nullopt, std::nullopt);
    ::umask(old);
    if (!fd) return make_error(rc::kFail, "admin socket: " + fd.error().message);
    set_nonblocking(fd->get(), true);
    return std::unique_ptr<AdminSocket>(new AdminSocket(path, std::move(*fd), std::move(verify), loop));
}

AdminSocket::AdminSocket(std::string path, UniqueFd listen, VerifyHandler verify, EventLoop& loop)
    : path_(std::move(path)), listen_(std::move(listen)), loop_(loop), verify_(std::move(verify)) {
    listen_watch_ = loop_.watch(listen_.get(), EPOLLIN, [this](int fd, uint32_t) { return on_listen(fd); });
    VTPM_LOG_INFO("admin socket %s: CMD_VTPM_VERIFY_RAM from root or uid %u", path_.c_str(),
                  static_cast<unsigned>(::geteuid()));
}

AdminSocket::~AdminSocket() {
    close_client();
    loop_.unwatch(listen_watch_);
    ::unlink(path_.c_str());
}

bool AdminSocket::on_listen(int fd) {
    UniqueFd c(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!c) return true;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != ::geteuid())) {
        VTPM_LOG_ERROR("admin socket: connection from uid %u (pid %d) refused: only root or uid %u",
                       static_cast<unsigned>(cred.uid), static_cast<int>(cred.pid),
                       static_cast<unsigned>(::geteuid()));
        return true;
    }
    // One client at a time, as on the control socket.
    close_client();
    client_ = std::move(c);
    buf_.clear();
    client_watch_ = loop_.watch(client_.get(), EPOLLIN, [this](int cfd, uint32_t) { return on_client(cfd); });
    return true;
}

void AdminSocket::close_client() {
    loop_.unwatch(client_watch_);
    client_watch_ = 0;
    client_.reset();
    buf_.clear();
}

bool AdminSocket::on_client(int fd) {
    const ssize_t n = recv_some(fd, buf_, nullptr);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0 || !process()) {
        close_client();
        return false;
    }
    return true;
}

bool AdminSocket::process() {
    // The control channel's framing with the vendor commands on.
    static const ctrl::Framer framer(ctrl::FramerOptions{true, true});
    while (buf_.size() >= 4) {
        const uint32_t code = load_be32(buf_.data());
        if (code != kVerifyCode) {
            VTPM_LOG_ERROR("admin socket: command %s refused: only CMD_VTPM_VERIFY_RAM is served here",
                           hex32(code).c_str());
            (void)write_all(client_.get(), ctrl::encode_result(rc::kBadOrdinal));
            return false;
        }
        const ctrl::Frame f = framer.next(buf_);
        if (f.kind == ctrl::Frame::Kind::Incomplete) return true;
        core::Reply reply = f.request ? verify_()
                                      : core::Reply{ctrl::encode_vendor_text_response(f.request.code(),
                                                                                      f.request.error().message)};
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(f.size));
        if (!write_all(client_.get(), reply.bytes)) return false;
    }
    return true;
}

}  // namespace vtpm::bridge
