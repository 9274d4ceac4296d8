// The bridge's event loop: epoll over the few descriptors a bridge serves
// (listening and connected control/data sockets, the admin socket, the
// SIGTERM signalfd) and a handful of millisecond timers behind one timerfd.
// One epoll_wait per wake-up, registrations only when a connection comes or
// goes, no clock read unless a timer is due: what a TPM command costs is its
// recv and send, not the loop's bookkeeping.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

class EventLoop {
public:
    /// Called with the ready events (EPOLLIN, EPOLLHUP, ...); return false
    /// to remove the watch (as if unwatch() was called).
    using FdHandler = std::function<bool(int fd, uint32_t events)>;
    using TimerHandler = std::function<void()>;
    using Id = uint64_t;  // 0 is never an id

    /// rc::kFail when epoll cannot be set up.
    static Result<std::unique_ptr<EventLoop>> create();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    /// Watch `fd` for `events` (level-triggered). 0 when epoll refuses it.
    Id watch(int fd, uint32_t events, FdHandler handler);
    /// Stop watching; unknown or 0 ids are ignored. Safe from any handler.
    void unwatch(Id id);
    /// Run `handler` once after `after`. Safe from any handler.
    Id add_timer(std::chrono::milliseconds after, TimerHandler handler);
    void cancel_timer(Id id);

    /// Dispatch until quit() (at once if quit() came first).
    void run();
    void quit() { quit_ = true; }

private:
    EventLoop(UniqueFd epfd, UniqueFd timerfd) : epfd_(std::move(epfd)), timerfd_(std::move(timerfd)) {}
    void run_due_timers();
    // Set the timerfd to the earliest timer (or disarm it when none is left).
    void arm_timerfd();

    struct Watch {
        int fd;
        FdHandler handler;
    };
    // A handful of watches: a flat vector searched from the front is a
    // cache line or two where a tree is a pointer chase (the lookup runs for
    // every TPM command).
    struct Slot {
        Id id;
        std::unique_ptr<Watch> watch;
    };
    std::vector<Slot>::iterator slot(Id id);
    struct Timer {
        std::chrono::steady_clock::time_point due;
        TimerHandler handler;
    };
    UniqueFd epfd_;
    UniqueFd timerfd_;  // CLOCK_MONOTONIC (steady_clock), absolute
    // What timerfd_ is set to; max() while disarmed.
    std::chrono::steady_clock::time_point armed_for_ = std::chrono::steady_clock::time_point::max();
    Id next_id_ = 1;
    std::vector<Slot> watches_;
    // Watches removed since the last wake-up: kept alive until its events
    // are dispatched, as a handler may remove its own (or a later) watch.
    std::vector<std::unique_ptr<Watch>> retired_;
    std::map<Id, Timer> timers_;
    bool quit_ = false;
};

}  // namespace vtpm::bridge
