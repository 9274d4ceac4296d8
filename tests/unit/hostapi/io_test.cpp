// Whole-message socket reads: the timeout bounds the whole message, so a
// peer sending a byte now and then cannot keep a reader waiting for ever.
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "hostapi/io.hpp"
#include "util/fd.hpp"

using namespace vtpm;
using namespace std::chrono_literals;

TEST_CASE("recv_exact gives up on a trickling peer when its timeout is over, not per byte") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd reader(sv[0]), writer(sv[1]);
    // Ten bytes, one every 400 ms: each arrives well within the timeout,
    // the whole message (4 s) does not.
    std::thread trickler([&] {
        for (int i = 0; i < 10; ++i) {
            std::this_thread::sleep_for(400ms);
            const uint8_t b = 0;
            if (::send(writer.get(), &b, 1, MSG_NOSIGNAL) != 1) break;
        }
    });
    uint8_t buf[10];
    bool eof = true;
    auto r = hostapi::recv_exact(reader.get(), buf, sizeof buf, 1500, eof);
    trickler.join();
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "the message was incomplete after 1 s");
    CHECK_FALSE(eof);
}

TEST_CASE("recv_exact returns a whole message, and says when the peer closed before it") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd reader(sv[0]), writer(sv[1]);
    const uint8_t msg[3] = {1, 2, 3};
    REQUIRE(::send(writer.get(), msg, sizeof msg, MSG_NOSIGNAL) == 3);
    uint8_t buf[3] = {};
    bool eof = true;
    REQUIRE(hostapi::recv_exact(reader.get(), buf, sizeof buf, 1000, eof));
    CHECK((buf[0] == 1 && buf[1] == 2 && buf[2] == 3));
    writer.reset();
    auto r = hostapi::recv_exact(reader.get(), buf, sizeof buf, 1000, eof);
    REQUIRE_FALSE(r);
    CHECK(eof);
}
