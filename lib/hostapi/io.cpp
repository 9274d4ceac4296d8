#include "hostapi/io.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace vtpm::hostapi {

Result<void> send_all(int fd, ByteView b) {
    size_t off = 0;
    while (off < b.size()) {
        const ssize_t n = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return make_error(rc::kFail, std::string("sending: ") + std::strerror(errno));
        off += static_cast<size_t>(n);
    }
    return {};
}

Result<void> recv_exact(int fd, uint8_t* p, size_t n, int timeout_ms, bool& clean_eof) {
    clean_eof = false;
    // One deadline for the whole message: a peer trickling bytes must not
    // stretch the wait without bound.
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t off = 0;
    while (off < n) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd pfd{fd, POLLIN, 0};
        const int pr = ::poll(&pfd, 1, static_cast<int>(std::max<decltype(left)>(left, 0)));
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0)
            return make_error(rc::kFail, (off == 0 ? "no data within " : "the message was incomplete after ") +
                                             std::to_string(timeout_ms / 1000) + " s");
        const ssize_t got = ::recv(fd, p + off, n - off, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return make_error(rc::kFail, std::string("receiving: ") + std::strerror(errno));
        if (got == 0) {
            clean_eof = off == 0;
            return make_error(rc::kFail, off == 0 ? "the peer closed the connection" : "the peer closed mid-message");
        }
        off += static_cast<size_t>(got);
    }
    return {};
}

}  // namespace vtpm::hostapi
