// The socket front end (on the bridge's EventLoop): one control connection and one
// data connection at a time, as swtpm serves them. It only moves bytes:
// control messages are framed by the core's ctrl::Framer and handled by the
// core::Dispatcher, TPM commands go to the core too.
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <vector>

#include "bridge/event_loop.hpp"
#include "core/dispatcher.hpp"
#include "util/bytes.hpp"
#include "util/fd.hpp"

namespace vtpm::bridge {

struct ServerConfig {
    UniqueFd ctrl_listen;       // listening control socket, or invalid
    UniqueFd ctrl_client;       // already connected control client (clientfd=), or invalid
    bool ctrl_terminate = false;  // exit when the control client goes away
    UniqueFd data_listen;       // listening data socket, or invalid
    UniqueFd data_client;       // already connected data socket (--fd, fd=), or invalid
    bool data_disconnect = false;  // close the data connection after each response
    bool terminate = false;        // exit when the data connection is lost
};

class Server {
public:
    Server(core::Dispatcher& dispatcher, ServerConfig cfg, EventLoop& loop);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Serve until CMD_SHUTDOWN, SIGTERM or a terminating disconnect.
    void run();

private:
    struct Conn {
        UniqueFd fd;
        EventLoop::Id watch = 0;
        bool is_socket = false;
        // Adaptive busy-poll: when the peer's next command followed the last
        // response quickly, wait for the next one by spinning instead of
        // sleeping in poll(), which saves the wake-up latency in bursts.
        std::chrono::steady_clock::time_point last_reply{};
        int64_t spin_us = 0;
    };

    // Watch handlers: false removes the watch.
    bool on_ctrl_listen(int fd);
    bool on_ctrl_client(int fd);
    void on_ctrl_timeout();
    bool on_data_listen(int fd);
    bool on_data_client(int fd);
    bool on_sigterm(int fd);

    void watch_ctrl_listen();
    void adopt_ctrl_client(UniqueFd fd);
    void close_ctrl_client();
    /// Handle every complete message in the control buffer; with `timed_out`
    /// also a partial one (swtpm gives a message 500 ms to arrive).
    void process_ctrl(bool timed_out);
    void send_ctrl(ByteView bytes, bool close_after);

    void watch_data_listen();
    void adopt_data_client(UniqueFd fd);
    void close_data_client();
    // The data connection is gone: --terminate ends the bridge, else the
    // next client is awaited.
    void lose_data_client();
    void process_data();
    // The data client hung up (eof) or its socket failed: answer a partial
    // command as swtpm does, then close it.
    void on_data_closed(int fd, bool eof);
    // A command still short of its size field 500 ms after its header came
    // is answered as it is (swtpm runs whatever one read brings at once).
    void on_data_timeout();
    // rsp_ to the data client; false when the connection is gone after it
    // (a failed write, or --server ...,disconnect).
    bool send_data_reply();

    void quit();
    /// After commands: when the store has journaled writes, copy them into
    /// the state files once the TPM has stopped writing for a while (off
    /// the command path; one timer, not one per command).
    void note_state_activity();
    void on_checkpoint_timer();
    void arm_checkpoint_timer(std::chrono::milliseconds after);
    /// After a reply: note when it went out. Before handling input: adapt
    /// the spin window to the gap since the last reply.
    void note_reply(Conn& c);
    void note_input(Conn& c);
    /// Spin up to c.spin_us for more input on c, received into `into`:
    /// the bytes that arrived, 0 if none did.
    ssize_t spin_for_input(Conn& c, std::span<uint8_t> into);
    /// spin_for_input for the control channel, appending to its buffer.
    bool spin_for_ctrl_input();

    core::Dispatcher& dispatcher_;
    ServerConfig cfg_;
    EventLoop& loop_;
    EventLoop::Id ctrl_listen_watch_ = 0;
    EventLoop::Id data_listen_watch_ = 0;
    EventLoop::Id ctrl_timer_ = 0;
    EventLoop::Id data_timer_ = 0;  // a data command short of its size field
    EventLoop::Id sigterm_ = 0;
    EventLoop::Id checkpoint_timer_ = 0;
    // Engine::tpm_writes() when the checkpoint timer was set: the timer
    // checkpoints only once the TPM has stopped writing.
    uint64_t writes_at_arming_ = 0;
    Conn ctrl_;
    // The control channel's received bytes, framed by ctrl::Framer.
    Bytes ctrl_buf_;
    UniqueFd ctrl_passed_fd_;
    UniqueFd sigfd_;  // fd received with the current control message
    Conn data_;
    // The data channel's response, kept for its capacity (no allocation per command).
    Bytes rsp_;
    // The data channel's bytes, received, framed and run where they lie (no
    // copy). What an incomplete command leaves is under kMaxTpmCommand, so
    // one more receive of kDataRecv always fits.
    static constexpr size_t kDataRecv = 8192;
    // Not zeroed: only what was received is read, and pages never written
    // are never resident.
    std::array<uint8_t, 2 * kDataRecv> rx_;
    size_t rx_len_ = 0;
    // Wipe the first n received bytes (a command just run) and drop them.
    void drop_data(size_t n);
    bool data_from_datafd_ = false;
    int64_t max_spin_us_ = 0;
};

}  // namespace vtpm::bridge
