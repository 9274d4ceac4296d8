#include <catch2/catch.hpp>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>

#include <vector>

#include "util/kernel_random.hpp"

using namespace vtpm;

TEST_CASE("kernel_random fills requests of any size, large ones included") {
    std::vector<uint8_t> a(70000, 0), b(70000, 0);
    REQUIRE(kernel_random(a));
    REQUIRE(kernel_random(b));
    CHECK(a != b);
    // All bytes written: zero bytes at the tail would show a short fill.
    size_t zeros = 0;
    for (size_t i = a.size() - 4096; i < a.size(); ++i) zeros += a[i] == 0;
    CHECK(zeros < 64);
    CHECK(kernel_random({}));
}

TEST_CASE("OpenSSL's RAND functions draw from the kernel once routed") {
    REQUIRE(use_kernel_random_for_openssl());
    CHECK(RAND_get_rand_method() != RAND_OpenSSL());
    CHECK(RAND_status() == 1);
    uint8_t x[48] = {}, y[48] = {};
    REQUIRE(RAND_bytes(x, sizeof x) == 1);
    REQUIRE(RAND_priv_bytes(y, sizeof y) == 1);
    CHECK(std::vector<uint8_t>(x, x + 48) != std::vector<uint8_t>(y, y + 48));
    CHECK(RAND_bytes(x, -1) == 0);
    CHECK(RAND_poll() == 1);
}
