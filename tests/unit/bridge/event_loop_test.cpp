// The bridge's event loop: readiness, handlers removing watches (their own
// and others) while the loop dispatches, timers in order, quit.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "bridge/event_loop.hpp"

using namespace vtpm;
using namespace vtpm::bridge;
using namespace std::chrono_literals;

namespace {
struct Pair {
    UniqueFd a, b;
    Pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
    }
};
}  // namespace

TEST_CASE("event loop: a readable descriptor is dispatched until its handler lets go") {
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    Pair p;
    REQUIRE(::write(p.b.get(), "xyz", 3) == 3);
    std::string got;
    int calls = 0;
    (*loop)->watch(p.a.get(), EPOLLIN, [&](int fd, uint32_t ev) {
        CHECK((ev & EPOLLIN) != 0);
        char c;
        REQUIRE(::read(fd, &c, 1) == 1);  // one byte per call: level-triggered
        got += c;
        ++calls;
        if (got.size() == 3) (*loop)->quit();
        return true;
    });
    (*loop)->run();
    CHECK(got == "xyz");
    CHECK(calls == 3);
}

TEST_CASE("event loop: handlers may remove their own and other watches") {
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    Pair p, q;
    REQUIRE(::write(p.b.get(), "a", 1) == 1);
    REQUIRE(::write(q.b.get(), "b", 1) == 1);
    EventLoop::Id other = 0, self = 0;
    int first = 0, second = 0;
    auto h1 = [&](int, uint32_t) {
        ++first;
        (*loop)->unwatch(other);  // the other never runs once this one did
        (*loop)->unwatch(self);   // and itself, while running
        (*loop)->add_timer(0ms, [&] { (*loop)->quit(); });
        return true;
    };
    auto h2 = [&](int, uint32_t) {
        ++second;
        (*loop)->unwatch(self);
        (*loop)->add_timer(0ms, [&] { (*loop)->quit(); });
        return false;
    };
    self = (*loop)->watch(p.a.get(), EPOLLIN, h1);
    other = (*loop)->watch(q.a.get(), EPOLLIN, h2);
    (*loop)->run();
    CHECK(first + second == 1);
}

TEST_CASE("event loop: timers run once, in order, and can be cancelled; a hang-up is reported") {
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    std::vector<int> order;
    (*loop)->add_timer(30ms, [&] { order.push_back(3); });
    auto cancelled = (*loop)->add_timer(10ms, [&] { order.push_back(99); });
    (*loop)->add_timer(5ms, [&] { order.push_back(1); });
    (*loop)->add_timer(20ms, [&] { order.push_back(2); });
    (*loop)->cancel_timer(cancelled);
    Pair p;
    bool hup = false;
    (*loop)->watch(p.a.get(), EPOLLIN, [&](int, uint32_t ev) {
        hup = (ev & (EPOLLHUP | EPOLLRDHUP | EPOLLIN)) != 0;
        return false;
    });
    (*loop)->add_timer(40ms, [&] { (*loop)->quit(); });
    p.b.reset();
    (*loop)->run();
    CHECK(order == std::vector<int>{1, 2, 3});
    CHECK(hup);
}
