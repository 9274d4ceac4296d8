#include "bridge/event_loop.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/hot.hpp"
#include "util/log.hpp"

namespace vtpm::bridge {

using Clock = std::chrono::steady_clock;

namespace {
// epoll's data for the timerfd; watch ids start at 1.
constexpr EventLoop::Id kTimerfdId = 0;
}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
    UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!fd) return make_error(rc::kFail, std::string("epoll_create1: ") + std::strerror(errno));
    // steady_clock is CLOCK_MONOTONIC: a timer's due time is the timerfd's.
    UniqueFd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!tfd) return make_error(rc::kFail, std::string("timerfd_create: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTimerfdId;
    if (::epoll_ctl(fd.get(), EPOLL_CTL_ADD, tfd.get(), &ev) != 0)
        return make_error(rc::kFail, std::string("epoll_ctl(timerfd): ") + std::strerror(errno));
    return std::unique_ptr<EventLoop>(new EventLoop(std::move(fd), std::move(tfd)));
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

VTPM_HOT std::vector<EventLoop::Slot>::iterator EventLoop::slot(Id id) {
    return std::find_if(watches_.begin(), watches_.end(), [id](const Slot& s) { return s.id == id; });
}

void EventLoop::unwatch(Id id) {
    auto it = slot(id);
    if (it == watches_.end()) return;
    // The descriptor may be closed already (the kernel then dropped it).
    (void)::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->watch->fd, nullptr);
    retired_.push_back(std::move(it->watch));
    watches_.erase(it);
}

EventLoop::Id EventLoop::add_timer(std::chrono::milliseconds after, TimerHandler handler) {
    const Id id = next_id_++;
    const auto due = Clock::now() + after;
    timers_.emplace(id, Timer{due, std::move(handler)});
    if (due < armed_for_) arm_timerfd();
    return id;
}

// A cancelled timer may leave the timerfd set for it: the wake-up then finds
// nothing due and sets it for the next one.
void EventLoop::cancel_timer(Id id) { timers_.erase(id); }

void EventLoop::arm_timerfd() {
    itimerspec its{};
    armed_for_ = Clock::time_point::max();
    if (!timers_.empty()) {
        armed_for_ = std::min_element(timers_.begin(), timers_.end(), [](const auto& a, const auto& b) {
                         return a.second.due < b.second.due;
                     })->second.due;
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(armed_for_.time_since_epoch()).count();
        its.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
        its.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;  // 0 would disarm
    }
    if (::timerfd_settime(timerfd_.get(), TFD_TIMER_ABSTIME, &its, nullptr) != 0)
        VTPM_LOG_ERROR("timerfd_settime: %s", std::strerror(errno));
}

void EventLoop::run_due_timers() {
    uint64_t expirations;
    while (::read(timerfd_.get(), &expirations, sizeof expirations) > 0) {
    }
    const auto now = Clock::now();
    // A handler may add or cancel timers: collect first (earliest first),
    // then run each one still present.
    std::vector<std::pair<Clock::time_point, Id>> due;
    for (const auto& [id, t] : timers_)
        if (t.due <= now) due.emplace_back(t.due, id);
    std::sort(due.begin(), due.end());
    for (const auto& [when, id] : due) {
        auto it = timers_.find(id);
        if (it == timers_.end()) continue;
        TimerHandler h = std::move(it->second.handler);
        timers_.erase(it);
        h();
        if (quit_) return;
    }
    arm_timerfd();
}

VTPM_HOT void EventLoop::run() {
    // quit() before run() (a channel that failed while being set up) holds.
    epoll_event events[8];
    while (!quit_) {
        const int n = ::epoll_wait(epfd_.get(), events, 8, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            VTPM_LOG_ERROR("epoll_wait: %s", std::strerror(errno));
            return;
        }
        bool timers_due = false;
        for (int i = 0; i < n && !quit_; ++i) {
            if (events[i].data.u64 == kTimerfdId) {
                timers_due = true;
                continue;
            }
            auto it = slot(events[i].data.u64);
            if (it == watches_.end()) continue;  // removed by an earlier handler
            Watch* w = it->watch.get();
            // A handler that removes its own watch runs on: retired_ holds it.
            if (!w->handler(w->fd, events[i].events)) unwatch(events[i].data.u64);
        }
        retired_.clear();
        if (timers_due && !quit_) run_due_timers();
    }
}

}  // namespace vtpm::bridge
