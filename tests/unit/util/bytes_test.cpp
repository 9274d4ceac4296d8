#include <catch2/catch.hpp>

#include "util/bytes.hpp"

using namespace vtpm;

TEST_CASE("big-endian helpers round-trip") {
    Bytes b;
    put_be16(b, 0x1234);
    put_be32(b, 0xdeadbeef);
    put_be64(b, 0x0102030405060708ull);
    REQUIRE(b.size() == 14);
    CHECK(load_be16(b.data()) == 0x1234);
    CHECK(load_be32(b.data() + 2) == 0xdeadbeef);
    CHECK(load_be64(b.data() + 6) == 0x0102030405060708ull);
    CHECK(to_hex(ByteView(b.data(), 2)) == "1234");
}

TEST_CASE("SecureBytes keeps content across resize and copy") {
    const uint8_t raw[] = {1, 2, 3};
    SecureBytes s{ByteView(raw)};
    s.resize(5);
    REQUIRE(s.size() == 5);
    CHECK(s[0] == 1);
    CHECK(s[2] == 3);
    CHECK(s[4] == 0);
    SecureBytes c = s;
    s.clear();
    CHECK(s.empty());
    CHECK(c.size() == 5);
    s = std::move(c);
    CHECK(s[1] == 2);
}

TEST_CASE("wipe zeroes exactly the bytes it is given") {
    Bytes b{1, 2, 3, 4, 5, 6};
    wipe(std::span(b).subspan(1, 3));
    CHECK(b == Bytes{1, 0, 0, 0, 5, 6});
    wipe(b);
    CHECK(b == Bytes(6, 0));
    Bytes empty;
    wipe(empty);  // nothing to touch
    CHECK(empty.empty());
}
