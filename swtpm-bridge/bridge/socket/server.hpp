// The socket front end (on the bridge's EventLoop): one control connection and one
// data connection at a time, as swtpm serves them. It only moves bytes:
// control messages are framed by the core's ctrl::Framer and handled by the
// core::Dispatcher, TPM commands go to the core too.
//
// A data connection on a socket is served by a thread of its own that blocks
// in recv(): a TPM command then costs one recv and one send, where waiting
// in the loop adds an epoll_wait to each. The loop keeps everything else
// (accepting, the control channel, timers, SIGTERM). The core is not
// thread-safe: every call into it holds the TPM lock, and a command's lock is
// held until its response is sent, so a control message never overtakes it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
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
    /// `tpm_lock` guards `dispatcher` (and what it reaches) for every thread
    /// that calls into it, the admin socket's too.
    Server(core::Dispatcher& dispatcher, std::mutex& tpm_lock, ServerConfig cfg, EventLoop& loop);
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
    void process_data();
    // The data client hung up (eof) or its socket failed: answer a partial
    // command as swtpm does, then close it.
    void on_data_closed(int fd, bool eof);
    enum class Ran { kAll, kOne, kFailed, kStopped };
    /// Run the complete commands in rx_, each answered on `fd` before the
    /// TPM lock is let go. kOne: stopped after one (data_disconnect);
    /// kFailed: a response could not be sent; kStopped: the data thread is
    /// told to stop.
    Ran run_commands(int fd);
    /// The partial command an ending client left is answered (eof).
    void answer_partial(int fd, bool eof);

    // The data thread.
    /// Start it (once): false if it cannot be, and the loop serves the data.
    bool start_worker();
    void worker_main();
    /// Serve data_ until its client leaves, a send fails or stop_worker().
    void serve_blocking();
    /// The thread's connection ended, or a checkpoint is due: the loop acts.
    bool on_kick(int fd);
    void kick_loop();
    void stop_worker();

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
    std::mutex& tpm_lock_;
    ServerConfig cfg_;
    EventLoop& loop_;
    EventLoop::Id ctrl_listen_watch_ = 0;
    EventLoop::Id data_listen_watch_ = 0;
    EventLoop::Id ctrl_timer_ = 0;
    EventLoop::Id sigterm_ = 0;
    // Under tpm_lock_ (the data thread reads it to know whether to ask for one).
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

    // data_, rx_ and rsp_ belong to whoever serves the data connection: the
    // data thread from hand-over until it reports the end (worker_busy_),
    // the loop otherwise. The hand-overs go through worker_.mu.
    struct Worker {
        std::thread thread;
        std::mutex mu;
        std::condition_variable cv;
        UniqueFd handed;          // loop -> thread: the next connection
        int serving = -1;         // its descriptor while served (shut down by stop_worker)
        bool ended = false;       // thread -> loop: that connection ended
        std::atomic<bool> stop{false};
        UniqueFd kick;            // eventfd the loop watches
        EventLoop::Id kick_watch = 0;
    };
    Worker worker_;
    bool worker_busy_ = false;        // the loop's view; only the loop reads or writes it
    bool checkpoint_kicked_ = false;  // under tpm_lock_: the thread asked for the checkpoint timer
};

}  // namespace vtpm::bridge
