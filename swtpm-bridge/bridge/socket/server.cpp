#include "bridge/socket/server.hpp"

#include <glib-unix.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "bridge/socket/sockets.hpp"
#include "util/log.hpp"

namespace vtpm::bridge {
namespace {

constexpr guint kCtrlPartialTimeoutMs = 500;
// Busy-polling is off unless asked for (VTPM_BUSY_POLL_US=N spins up to N µs
// for the next command of a burst): on a host it burns the CPU the guests'
// vCPUs need, for latency only an idle host sees.
constexpr long kDefaultMaxSpinUs = 0;
// How long the TPM must be idle before journaled state is copied into the
// state files.
constexpr guint kCheckpointIdleMs = 500;
// swtpm's receive buffer: the 500 ms deadline applies to this much of a message.
constexpr size_t kCtrlDeadlineBytes = 4096;

// g_unix_fd_add, but marked recursion-safe: GLib otherwise removes and
// re-adds the fd around every dispatch and wakes its own loop each time
// (three extra syscalls per TPM command). Our callbacks never recurse.
guint add_fd_watch(int fd, GIOCondition cond, GUnixFDSourceFunc fn, gpointer data) {
    GSource* src = g_unix_fd_source_new(fd, cond);
    g_source_set_can_recurse(src, TRUE);
    g_source_set_callback(src, reinterpret_cast<GSourceFunc>(reinterpret_cast<void (*)()>(fn)), data, nullptr);
    guint id = g_source_attach(src, nullptr);
    g_source_unref(src);
    return id;
}

}  // namespace

Server::Server(core::Dispatcher& dispatcher, ServerConfig cfg)
    : dispatcher_(dispatcher), cfg_(std::move(cfg)) {
    loop_ = g_main_loop_new(nullptr, FALSE);
    max_spin_us_ = kDefaultMaxSpinUs;
    if (const char* e = std::getenv("VTPM_BUSY_POLL_US")) max_spin_us_ = std::max(0L, std::strtol(e, nullptr, 10));
}

void Server::note_reply(Conn& c) { c.last_reply = std::chrono::steady_clock::now(); }

void Server::note_input(Conn& c) {
    if (max_spin_us_ <= 0 || !c.is_socket || c.last_reply.time_since_epoch().count() == 0) return;
    auto gap = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - c.last_reply)
                   .count();
    // Spin next time only if this command came quickly; allow some slack.
    c.spin_us = gap < max_spin_us_ ? std::min<int64_t>(max_spin_us_, 2 * gap + 20) : 0;
}

bool Server::spin_for_input(Conn& c, size_t max) {
    if (c.spin_us <= 0 || !c.fd) return false;
    const auto end = c.last_reply + std::chrono::microseconds(c.spin_us);
    uint8_t tmp[8192];
    const size_t want = std::min(sizeof tmp, std::max<size_t>(max, 1));
    while (std::chrono::steady_clock::now() < end) {
        ssize_t n = ::recv(c.fd.get(), tmp, want, MSG_DONTWAIT);
        if (n > 0) {
            c.buf.insert(c.buf.end(), tmp, tmp + n);
            return true;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;  // poll sees EOF
        __builtin_ia32_pause();
    }
    c.spin_us = 0;  // nothing came: sleep in poll() until the peer is busy again
    return false;
}

void Server::note_state_activity() {
    if (!dispatcher_.engine().store().needs_checkpoint()) return;
    last_state_activity_ = std::chrono::steady_clock::now();
    if (!checkpoint_timer_) checkpoint_timer_ = g_timeout_add(kCheckpointIdleMs, on_checkpoint_timer, this);
}

gboolean Server::on_checkpoint_timer(gpointer p) {
    auto* s = static_cast<Server*>(p);
    s->checkpoint_timer_ = 0;
    auto& store = s->dispatcher_.engine().store();
    if (!store.needs_checkpoint()) return G_SOURCE_REMOVE;
    const auto idle = std::chrono::steady_clock::now() - s->last_state_activity_;
    const auto want = std::chrono::milliseconds(kCheckpointIdleMs);
    if (idle < want) {
        const auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(want - idle).count() + 1;
        s->checkpoint_timer_ = g_timeout_add(static_cast<guint>(rest), on_checkpoint_timer, s);
        return G_SOURCE_REMOVE;
    }
    if (auto r = store.checkpoint(); !r) {
        // The journal still holds the state: try again later.
        VTPM_LOG_ERROR("%s", r.error().message.c_str());
        s->checkpoint_timer_ = g_timeout_add(kCheckpointIdleMs * 10, on_checkpoint_timer, s);
    }
    return G_SOURCE_REMOVE;
}

Server::~Server() {
    for (guint id : {ctrl_listen_watch_, data_listen_watch_, ctrl_timer_, sigterm_, ctrl_.watch, data_.watch,
                     checkpoint_timer_})
        if (id) g_source_remove(id);
    g_main_loop_unref(loop_);
}

void Server::run() {
    std::signal(SIGPIPE, SIG_IGN);
    // SIGTERM through a signalfd watched by the loop: g_unix_signal_add would
    // start a GLib worker thread that wakes the loop on every iteration.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    sigfd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (sigfd_) sigterm_ = add_fd_watch(sigfd_.get(), G_IO_IN, on_sigterm, this);
    if (cfg_.ctrl_client) adopt_ctrl_client(std::move(cfg_.ctrl_client));
    else if (cfg_.ctrl_listen) watch_ctrl_listen();
    if (cfg_.data_client) adopt_data_client(std::move(cfg_.data_client));
    else if (cfg_.data_listen) watch_data_listen();
    g_main_loop_run(loop_);
}

void Server::quit() { g_main_loop_quit(loop_); }

gboolean Server::on_sigterm(gint fd, GIOCondition, gpointer self) {
    signalfd_siginfo si;
    while (::read(fd, &si, sizeof si) == sizeof si) {
    }
    VTPM_LOG_INFO("SIGTERM: shutting down");
    static_cast<Server*>(self)->quit();
    return G_SOURCE_CONTINUE;
}

// ---------------------------------------------------------------- control

void Server::watch_ctrl_listen() {
    if (!ctrl_listen_watch_ && cfg_.ctrl_listen)
        ctrl_listen_watch_ = add_fd_watch(cfg_.ctrl_listen.get(), G_IO_IN, on_ctrl_listen, this);
}

gboolean Server::on_ctrl_listen(gint fd, GIOCondition, gpointer p) {
    auto* s = static_cast<Server*>(p);
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return G_SOURCE_CONTINUE;
    // One control client at a time: stop accepting until this one leaves.
    s->ctrl_listen_watch_ = 0;
    s->adopt_ctrl_client(UniqueFd(c));
    return G_SOURCE_REMOVE;
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
    ctrl_.buf.clear();
    dispatcher_.begin_connection();
    ctrl_.is_socket = is_socket(ctrl_.fd.get());
    ctrl_.spin_us = 0;
    ctrl_.last_reply = {};
    ctrl_.watch = add_fd_watch(ctrl_.fd.get(), static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
                                on_ctrl_client, this);
}

void Server::close_ctrl_client() {
    if (ctrl_.watch) g_source_remove(ctrl_.watch);
    if (ctrl_timer_) g_source_remove(ctrl_timer_);
    ctrl_.watch = ctrl_timer_ = 0;
    if (ctrl_.fd) dispatcher_.end_connection();
    ctrl_.fd.reset();
    ctrl_.buf.clear();
    ctrl_passed_fd_.reset();
    if (cfg_.ctrl_terminate) {
        VTPM_LOG_INFO("control connection closed: terminating");
        quit();
        return;
    }
    watch_ctrl_listen();
}

gboolean Server::on_ctrl_client(gint fd, GIOCondition, gpointer p) {
    auto* s = static_cast<Server*>(p);
    UniqueFd passed;
    // At most what swtpm's read of one message would take (ctrl/framer.hpp).
    ssize_t n = recv_some(fd, s->ctrl_.buf, &passed, s->dispatcher_.framer().read_limit(s->ctrl_.buf));
    if (passed) s->ctrl_passed_fd_ = std::move(passed);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return G_SOURCE_CONTINUE;
    if (n <= 0) {
        s->ctrl_.watch = 0;  // removed by returning G_SOURCE_REMOVE
        s->close_ctrl_client();
        return G_SOURCE_REMOVE;
    }
    do {
        s->note_input(s->ctrl_);
        s->process_ctrl(false);
    } while (s->ctrl_.fd && s->ctrl_.buf.empty() && s->spin_for_input(s->ctrl_, ctrl::kReadWindow));
    s->note_state_activity();
    // process_ctrl may have closed the connection (and removed this source).
    return s->ctrl_.fd && s->ctrl_.watch ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

gboolean Server::on_ctrl_timeout(gpointer p) {
    auto* s = static_cast<Server*>(p);
    s->ctrl_timer_ = 0;
    if (s->ctrl_.fd) s->process_ctrl(true);
    return G_SOURCE_REMOVE;
}

void Server::send_ctrl(ByteView bytes, bool close_after) {
    if (!write_all(ctrl_.fd.get(), bytes)) {
        VTPM_LOG_ERROR("could not send the control response: %s", std::strerror(errno));
        close_after = true;
    }
    if (close_after) {
        guint w = ctrl_.watch;
        ctrl_.watch = 0;
        if (w) g_source_remove(w);
        close_ctrl_client();
    }
}

void Server::process_ctrl(bool timed_out) {
    const ctrl::Framer& framer = dispatcher_.framer();
    while (ctrl_.fd && !ctrl_.buf.empty()) {
        const ctrl::Frame frame = framer.next(ctrl_.buf);
        if (frame.kind == ctrl::Frame::Kind::Incomplete) {
            if (timed_out) {
                // swtpm gives a message 500 ms and then drops the connection
                // without an answer; answering a half message would desync the peer.
                VTPM_LOG_ERROR("control message %s incomplete after %u ms (%zu bytes): closing the connection",
                               std::string(ctrl::cmd_name(frame.code)).c_str(), kCtrlPartialTimeoutMs,
                               ctrl_.buf.size());
                guint w = ctrl_.watch;
                ctrl_.watch = 0;
                if (w) g_source_remove(w);
                close_ctrl_client();
                return;
            }
            // The deadline covers the first kCtrlDeadlineBytes of a message;
            // a large state blob may take longer to arrive.
            if (ctrl_.buf.size() < kCtrlDeadlineBytes) {
                if (!ctrl_timer_) ctrl_timer_ = g_timeout_add(kCtrlPartialTimeoutMs, on_ctrl_timeout, this);
            } else if (ctrl_timer_) {
                g_source_remove(ctrl_timer_);
                ctrl_timer_ = 0;
            }
            return;
        }
        if (ctrl_timer_) {
            g_source_remove(ctrl_timer_);
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
        ctrl_.buf.erase(ctrl_.buf.begin(), ctrl_.buf.begin() + static_cast<long>(frame.size));
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
        data_listen_watch_ = add_fd_watch(cfg_.data_listen.get(), G_IO_IN, on_data_listen, this);
}

gboolean Server::on_data_listen(gint fd, GIOCondition, gpointer p) {
    auto* s = static_cast<Server*>(p);
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return G_SOURCE_CONTINUE;
    s->data_listen_watch_ = 0;
    s->data_from_datafd_ = false;
    s->adopt_data_client(UniqueFd(c));
    return G_SOURCE_REMOVE;
}

void Server::adopt_data_client(UniqueFd fd) {
    if (data_.fd) close_data_client();
    data_.fd = std::move(fd);
    data_.buf.clear();
    data_.is_socket = is_socket(data_.fd.get()) && !cfg_.data_disconnect;
    data_.spin_us = 0;
    data_.last_reply = {};
    data_.watch = add_fd_watch(data_.fd.get(), static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
                                on_data_client, this);
}

void Server::close_data_client() {
    if (data_.watch) g_source_remove(data_.watch);
    data_.watch = 0;
    data_.fd.reset();
    data_.buf.clear();
}

gboolean Server::on_data_client(gint fd, GIOCondition, gpointer p) {
    auto* s = static_cast<Server*>(p);
    ssize_t n = recv_some(fd, s->data_.buf, nullptr);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return G_SOURCE_CONTINUE;
    if (n == 0 && s->data_.buf.size() >= 10) {
        // The client ended its writes inside a command: swtpm hands what came
        // to the TPM, which answers with its command-size error. So do we.
        (void)write_all(fd, s->dispatcher_.tpm_command(s->data_.buf));
    }
    if (n <= 0) {
        s->data_.watch = 0;
        s->close_data_client();
        if (s->cfg_.terminate) {
            VTPM_LOG_INFO("data connection lost: terminating");
            s->quit();
        } else {
            s->watch_data_listen();
        }
        return G_SOURCE_REMOVE;
    }
    do {
        s->note_input(s->data_);
        s->process_data();
    } while (s->data_.fd && s->data_.buf.empty() && s->spin_for_input(s->data_));
    s->note_state_activity();
    return s->data_.fd && s->data_.watch ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

void Server::process_data() {
    while (data_.fd) {
        auto reply = dispatcher_.take_tpm_command(data_.buf);
        if (!reply) return;
        const Bytes& rsp = *reply;
        // One write: several clients do a single read() for the whole response.
        bool sent = write_all(data_.fd.get(), rsp);
        note_reply(data_);
        if (!sent) {
            VTPM_LOG_ERROR("could not send the TPM response: %s", std::strerror(errno));
            close_data_client();
            if (cfg_.terminate) quit();
            else watch_data_listen();
            return;
        }
        if (cfg_.data_disconnect) {
            close_data_client();
            watch_data_listen();
            return;
        }
    }
}

}  // namespace vtpm::bridge
