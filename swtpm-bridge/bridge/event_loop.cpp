#include "bridge/event_loop.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/log.hpp"

namespace vtpm::bridge {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
    UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!fd) return make_error(rc::kFail, std::string("epoll_create1: ") + std::strerror(errno));
    return std::unique_ptr<EventLoop>(new EventLoop(std::move(fd)));
}

EventLoop::Id EventLoop::watch(int fd, uint32_t events, FdHandler handler) {
    const Id id = next_id_++;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        VTPM_LOG_ERROR("cannot watch descriptor %d: %s", fd, std::strerror(errno));
        return 0;
    }
    watches_.push_back(Slot{id, std::make_unique<Watch>(Watch{fd, std::move(handler)})});
    return id;
}

EventLoop::Watch* EventLoop::find(Id id) const {
    for (const Slot& s : watches_)
        if (s.id == id) return s.watch.get();
    return nullptr;
}

void EventLoop::unwatch(Id id) {
    auto it = std::find_if(watches_.begin(), watches_.end(), [id](const Slot& s) { return s.id == id; });
    if (it == watches_.end()) return;
    // The descriptor may be closed already (the kernel then dropped it).
    (void)::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->watch->fd, nullptr);
    retired_.push_back(std::move(it->watch));
    watches_.erase(it);
}

EventLoop::Id EventLoop::add_timer(std::chrono::milliseconds after, TimerHandler handler) {
    const Id id = next_id_++;
    timers_.emplace(id, Timer{Clock::now() + after, std::move(handler)});
    return id;
}

void EventLoop::cancel_timer(Id id) { timers_.erase(id); }

int EventLoop::next_timeout_ms() const {
    if (timers_.empty()) return -1;
    auto due = std::min_element(timers_.begin(), timers_.end(),
                                [](const auto& a, const auto& b) { return a.second.due < b.second.due; })
                   ->second.due;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(due - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60 * 60 * 1000));
}

void EventLoop::run_due_timers() {
    if (timers_.empty()) return;
    const auto now = Clock::now();
    // A handler may add or cancel timers: collect first, then run each one
    // still present.
    std::vector<Id> due;
    for (const auto& [id, t] : timers_)
        if (t.due <= now) due.push_back(id);
    for (Id id : due) {
        auto it = timers_.find(id);
        if (it == timers_.end()) continue;
        TimerHandler h = std::move(it->second.handler);
        timers_.erase(it);
        h();
        if (quit_) return;
    }
}

void EventLoop::run() {
    // quit() before run() (a channel that failed while being set up) holds.
    epoll_event events[8];
    while (!quit_) {
        const int n = ::epoll_wait(epfd_.get(), events, 8, next_timeout_ms());
        if (n < 0) {
            if (errno == EINTR) continue;
            VTPM_LOG_ERROR("epoll_wait: %s", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n && !quit_; ++i) {
            Watch* w = find(events[i].data.u64);
            if (!w) continue;  // removed by an earlier handler
            // A handler that removes its own watch runs on: retired_ holds it.
            if (!w->handler(w->fd, events[i].events)) unwatch(events[i].data.u64);
        }
        retired_.clear();
        run_due_timers();
    }
}

}  // namespace vtpm::bridge
