#include "bridge/socket/server.hpp"

#include <sys/signalfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "bridge/socket/sockets.hpp"
#include "util/hot.hpp"
#include "util/log.hpp"

namespace vtpm::bridge {
namespace {

constexpr std::chrono::milliseconds kCtrlPartialTimeout{500};
// A data command short of its size field: swtpm 0.7.1 answers it at once
// (one read is one command); we wait this long for the rest, so that a
// command split across writes still runs whole.
constexpr std::chrono::milliseconds kDataPartialTimeout{500};
// Busy-polling is off unless asked for (VTPM_BUSY_POLL_US=N spins up to N µs
// for the next command of a burst): on a host it burns the CPU the guests'
// vCPUs need, for latency only an idle host sees.
constexpr long kDefaultMaxSpinUs = 0;
// How long the TPM must be idle before journaled state is copied into the
// state files.
constexpr std::chrono::milliseconds kCheckpointIdle{500};
// Readiness a connection is watched for (hang-up and errors always come).
constexpr uint32_t kReadable = EPOLLIN;
// swtpm's receive buffer: the 500 ms deadline applies to this much of a message.
constexpr size_t kCtrlDeadlineBytes = 4096;

}  // namespace

Server::Server(core::Dispatcher& dispatcher, ServerConfig cfg, EventLoop& loop)
    : dispatcher_(dispatcher), cfg_(std::move(cfg)), loop_(loop) {
    max_spin_us_ = kDefaultMaxSpinUs;
    if (const char* e = std::getenv("VTPM_BUSY_POLL_US")) max_spin_us_ = std::max(0L, std::strtol(e, nullptr, 10));
}

VTPM_HOT void Server::note_reply(Conn& c) {
    // Only busy-polling needs the time (one clock read less per command).
    if (max_spin_us_ > 0) c.last_reply = std::chrono::steady_clock::now();
}

VTPM_HOT void Server::note_input(Conn& c) {
    if (max_spin_us_ <= 0 || !c.is_socket || c.last_reply.time_since_epoch().count() == 0) return;
    auto gap = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - c.last_reply)
                   .count();
    // Spin next time only if this command came quickly; allow some slack.
    c.spin_us = gap < max_spin_us_ ? std::min<int64_t>(max_spin_us_, 2 * gap + 20) : 0;
}

VTPM_HOT ssize_t Server::spin_for_input(Conn& c, std::span<uint8_t> into) {
    if (c.spin_us <= 0 || !c.fd) return 0;
    const auto end = c.last_reply + std::chrono::microseconds(c.spin_us);
    while (std::chrono::steady_clock::now() < end) {
        ssize_t n = ::recv(c.fd.get(), into.data(), into.size(), MSG_DONTWAIT);
        if (n > 0) return n;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return 0;  // poll sees EOF
        __builtin_ia32_pause();
    }
    c.spin_us = 0;  // nothing came: sleep in poll() until the peer is busy again
    return 0;
}

bool Server::spin_for_ctrl_input() {
    uint8_t tmp[ctrl::kReadWindow];
    const ssize_t n = spin_for_input(ctrl_, tmp);
    if (n > 0) ctrl_buf_.insert(ctrl_buf_.end(), tmp, tmp + n);
    return n > 0;
}

VTPM_HOT void Server::note_state_activity() {
    if (!checkpoint_timer_ && dispatcher_.engine().store().needs_checkpoint()) [[unlikely]]
        arm_checkpoint_timer(kCheckpointIdle);
}

void Server::arm_checkpoint_timer(std::chrono::milliseconds after) {
    writes_at_arming_ = dispatcher_.engine().tpm_writes();
    checkpoint_timer_ = loop_.add_timer(after, [this] { on_checkpoint_timer(); });
}

void Server::on_checkpoint_timer() {
    checkpoint_timer_ = 0;
    auto& store = dispatcher_.engine().store();
    if (!store.needs_checkpoint()) return;
    // The TPM wrote its state again meanwhile: wait until it stops (500 to
    // 1000 ms after the last write). Commands that write nothing (most of
    // them) neither delay the checkpoint nor keep a timer running.
    if (dispatcher_.engine().tpm_writes() != writes_at_arming_) {
        arm_checkpoint_timer(kCheckpointIdle);
        return;
    }
    if (auto r = store.checkpoint(); !r) {
        // The journal still holds the state: try again later.
        VTPM_LOG_ERROR("%s", r.error().message.c_str());
        arm_checkpoint_timer(kCheckpointIdle * 10);
    }
}

Server::~Server() {
    for (EventLoop::Id id : {ctrl_listen_watch_, data_listen_watch_, sigterm_, ctrl_.watch, data_.watch})
        loop_.unwatch(id);
    for (EventLoop::Id id : {ctrl_timer_, checkpoint_timer_, data_timer_}) loop_.cancel_timer(id);
}

void Server::run() {
    std::signal(SIGPIPE, SIG_IGN);
    // SIGTERM through a signalfd watched by the loop, so it is handled
    // between commands like any other event.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    sigfd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (sigfd_) sigterm_ = loop_.watch(sigfd_.get(), EPOLLIN, [this](int fd, uint32_t) { return on_sigterm(fd); });
    if (cfg_.ctrl_client) adopt_ctrl_client(std::move(cfg_.ctrl_client));
    else if (cfg_.ctrl_listen) watch_ctrl_listen();
    if (cfg_.data_client) adopt_data_client(std::move(cfg_.data_client));
    else if (cfg_.data_listen) watch_data_listen();
    loop_.run();
}

void Server::quit() { loop_.quit(); }

bool Server::on_sigterm(int fd) {
    signalfd_siginfo si;
    while (::read(fd, &si, sizeof si) == sizeof si) {
    }
    VTPM_LOG_INFO("SIGTERM: shutting down");
    quit();
    return true;
}

// ---------------------------------------------------------------- control

void Server::watch_ctrl_listen() {
    if (!ctrl_listen_watch_ && cfg_.ctrl_listen)
        ctrl_listen_watch_ =
            loop_.watch(cfg_.ctrl_listen.get(), EPOLLIN, [this](int fd, uint32_t) { return on_ctrl_listen(fd); });
}

bool Server::on_ctrl_listen(int fd) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return true;
    // One control client at a time: stop accepting until this one leaves.
    ctrl_listen_watch_ = 0;
    adopt_ctrl_client(UniqueFd(c));
    return false;
}

void Server::adopt_ctrl_client(UniqueFd fd) {
    // The peer of a unix control socket is QEMU: the snapshot guard finds
    // guest RAM among its mappings.
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0)
        dispatcher_.set_peer_pid(cred.pid);
    else dispatcher_.set_peer_pid(0);
    ctrl_.fd = std::move(fd);
    ctrl_buf_.clear();
    dispatcher_.begin_connection();
    ctrl_.is_socket = is_socket(ctrl_.fd.get());
    ctrl_.spin_us = 0;
    ctrl_.last_reply = {};
    ctrl_.watch = loop_.watch(ctrl_.fd.get(), kReadable, [this](int fd, uint32_t) { return on_ctrl_client(fd); });
    if (!ctrl_.watch) {
        // A descriptor epoll cannot wait on (a regular file) would never be served.
        VTPM_LOG_ERROR("the control channel's descriptor cannot be waited on: terminating");
        quit();
    }
}

void Server::close_ctrl_client() {
    loop_.unwatch(ctrl_.watch);
    loop_.cancel_timer(ctrl_timer_);
    ctrl_.watch = ctrl_timer_ = 0;
    if (ctrl_.fd) dispatcher_.end_connection();
    ctrl_.fd.reset();
    ctrl_buf_.clear();
    ctrl_passed_fd_.reset();
    if (cfg_.ctrl_terminate) {
        VTPM_LOG_INFO("control connection closed: terminating");
        quit();
        return;
    }
    watch_ctrl_listen();
}

bool Server::on_ctrl_client(int fd) {
    UniqueFd passed;
    // At most what swtpm's read of one message would take (ctrl/framer.hpp).
    ssize_t n = recv_some(fd, ctrl_buf_, &passed, dispatcher_.framer().read_limit(ctrl_buf_));
    if (passed) ctrl_passed_fd_ = std::move(passed);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {
        close_ctrl_client();
        return false;
    }
    do {
        note_input(ctrl_);
        process_ctrl(false);
    } while (ctrl_.fd && ctrl_buf_.empty() && spin_for_ctrl_input());
    note_state_activity();
    // process_ctrl may have closed the connection (and removed this watch).
    return ctrl_.fd && ctrl_.watch;
}

void Server::on_ctrl_timeout() {
    ctrl_timer_ = 0;
    if (ctrl_.fd) process_ctrl(true);
}

void Server::send_ctrl(ByteView bytes, bool close_after) {
    if (!write_all(ctrl_.fd.get(), bytes)) {
        VTPM_LOG_ERROR("could not send the control response: %s", std::strerror(errno));
        close_after = true;
    }
    if (close_after) close_ctrl_client();
}

void Server::process_ctrl(bool timed_out) {
    const ctrl::Framer& framer = dispatcher_.framer();
    while (ctrl_.fd && !ctrl_buf_.empty()) {
        const ctrl::Frame frame = framer.next(ctrl_buf_);
        if (frame.kind == ctrl::Frame::Kind::Incomplete) {
            if (timed_out) {
                // swtpm gives a message 500 ms and then drops the connection
                // without an answer; answering a half message would desync the peer.
                VTPM_LOG_ERROR("control message %s incomplete after %lld ms (%zu bytes): closing the connection",
                               std::string(ctrl::cmd_name(frame.code)).c_str(),
                               static_cast<long long>(kCtrlPartialTimeout.count()), ctrl_buf_.size());
                close_ctrl_client();
                return;
            }
            // The deadline covers the first kCtrlDeadlineBytes of a message;
            // a large state blob may take longer to arrive.
            if (ctrl_buf_.size() < kCtrlDeadlineBytes) {
                if (!ctrl_timer_) ctrl_timer_ = loop_.add_timer(kCtrlPartialTimeout, [this] { on_ctrl_timeout(); });
            } else if (ctrl_timer_) {
                loop_.cancel_timer(ctrl_timer_);
                ctrl_timer_ = 0;
            }
            return;
        }
        if (ctrl_timer_) {
            loop_.cancel_timer(ctrl_timer_);
            ctrl_timer_ = 0;
        }
        timed_out = false;

        if (log::level() >= log::kDebug) {
            const std::string_view name = ctrl::cmd_name(frame.code);
            VTPM_LOG_DEBUG("ctrl: %.*s (%zu bytes)", static_cast<int>(name.size()), name.data(), frame.size);
        }
        core::TransportState ts;
        ts.received_fd = ctrl_passed_fd_.get();
        ts.data_channel_busy = data_.fd.valid() || cfg_.data_listen.valid();
        core::Reply reply = dispatcher_.handle(frame, ts);
        // The request views the buffer: drop the message only now.
        ctrl_buf_.erase(ctrl_buf_.begin(), ctrl_buf_.begin() + static_cast<long>(frame.size));
        if (reply.action == core::Action::AdoptDataFd) {
            data_from_datafd_ = true;
            adopt_data_client(std::move(ctrl_passed_fd_));
        }
        ctrl_passed_fd_.reset();
        send_ctrl(reply.bytes, reply.action == core::Action::Close);
        note_reply(ctrl_);
        if (reply.action == core::Action::Shutdown) {
            VTPM_LOG_INFO("CMD_SHUTDOWN: terminating");
            quit();
            return;
        }
    }
}

// ---------------------------------------------------------------- data

void Server::watch_data_listen() {
    if (!data_listen_watch_ && cfg_.data_listen)
        data_listen_watch_ =
            loop_.watch(cfg_.data_listen.get(), EPOLLIN, [this](int fd, uint32_t) { return on_data_listen(fd); });
}

bool Server::on_data_listen(int fd) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return true;
    data_listen_watch_ = 0;
    data_from_datafd_ = false;
    adopt_data_client(UniqueFd(c));
    return false;
}

void Server::adopt_data_client(UniqueFd fd) {
    if (data_.fd) close_data_client();
    data_.fd = std::move(fd);
    drop_data(rx_len_);
    data_.is_socket = is_socket(data_.fd.get()) && !cfg_.data_disconnect;
    data_.spin_us = 0;
    data_.last_reply = {};
    data_.watch = loop_.watch(data_.fd.get(), kReadable, [this](int fd, uint32_t) { return on_data_client(fd); });
    if (!data_.watch) {
        // A descriptor epoll cannot wait on (a regular file, /dev/null, sent
        // with CMD_SET_DATAFD) carries no TPM commands: swtpm reads EOF from
        // it at once and loses that data connection, and so do we.
        VTPM_LOG_ERROR("the data channel's descriptor cannot be waited on: data connection lost");
        lose_data_client();
    }
}

void Server::close_data_client() {
    loop_.unwatch(data_.watch);
    data_.watch = 0;
    loop_.cancel_timer(data_timer_);
    data_timer_ = 0;
    data_.fd.reset();
    drop_data(rx_len_);
}

VTPM_HOT bool Server::on_data_client(int fd) {
    ssize_t n = recv_into(fd, std::span(rx_).subspan(rx_len_, kDataRecv));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) [[unlikely]] {
        on_data_closed(fd, n == 0);
        return false;
    }
    rx_len_ += static_cast<size_t>(n);
    for (;;) {
        note_input(data_);
        process_data();
        if (!data_.fd || rx_len_ != 0) break;
        n = spin_for_input(data_, std::span(rx_).first(kDataRecv));
        if (n <= 0) break;
        rx_len_ = static_cast<size_t>(n);
    }
    if (rx_len_ >= 10 && data_.fd && !data_timer_) [[unlikely]]
        data_timer_ = loop_.add_timer(kDataPartialTimeout, [this] { on_data_timeout(); });
    note_state_activity();
    return data_.fd && data_.watch;
}

void Server::on_data_timeout() {
    data_timer_ = 0;
    if (!data_.fd || rx_len_ < 10) return;
    VTPM_LOG_ERROR("data channel: a command still short of its size field after %lld ms (%zu bytes): answered as is",
                   static_cast<long long>(kDataPartialTimeout.count()), rx_len_);
    dispatcher_.tpm_command(ByteView(rx_.data(), rx_len_), rsp_);
    drop_data(rx_len_);
    (void)send_data_reply();
    note_state_activity();
}

void Server::on_data_closed(int fd, bool eof) {
    if (eof && rx_len_ >= 10) {
        // The client ended its writes inside a command: swtpm hands what came
        // to the TPM, which answers with its command-size error. So do we.
        (void)write_all(fd, dispatcher_.tpm_command(ByteView(rx_.data(), rx_len_)));
    }
    lose_data_client();
}

void Server::lose_data_client() {
    close_data_client();
    if (cfg_.terminate) {
        VTPM_LOG_INFO("data connection lost: terminating");
        quit();
    } else {
        watch_data_listen();
    }
}

VTPM_HOT void Server::drop_data(size_t n) {
    // libtpms decrypted the command's encrypted parameters where they lay.
    wipe(std::span(rx_).first(n));
    if (n < rx_len_) std::memmove(rx_.data(), rx_.data() + n, rx_len_ - n);
    rx_len_ -= n;
}

VTPM_HOT void Server::process_data() {
    while (data_.fd) {
        const size_t used = dispatcher_.take_tpm_command(std::span(rx_).first(rx_len_), rsp_);
        if (used == 0) return;
        drop_data(used);
        if (data_timer_) [[unlikely]] {  // the command it waited for is complete
            loop_.cancel_timer(data_timer_);
            data_timer_ = 0;
        }
        if (!send_data_reply()) return;
    }
}

VTPM_HOT bool Server::send_data_reply() {
    // One write: several clients do a single read() for the whole response.
    bool sent = write_all(data_.fd.get(), rsp_);
    note_reply(data_);
    if (!sent) [[unlikely]] {
        VTPM_LOG_ERROR("could not send the TPM response: %s", std::strerror(errno));
        lose_data_client();
        return false;
    }
    if (cfg_.data_disconnect) {
        close_data_client();
        watch_data_listen();
        return false;
    }
    return true;
}

}  // namespace vtpm::bridge
