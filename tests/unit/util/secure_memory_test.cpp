#include <catch2/catch.hpp>
#include <sys/mman.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "util/secure_memory.hpp"

using namespace vtpm;

namespace {

// The VmFlags line of the /proc/self/smaps entry that contains `p`.
std::string vm_flags_of(const void* p) {
    const auto addr = reinterpret_cast<uintptr_t>(p);
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        unsigned long lo = 0, hi = 0;
        char dash = 0;
        std::istringstream head(line);
        // Entry headers are "lo-hi perms ...", attribute lines "Name: value".
        if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
            inside = addr >= lo && addr < hi;
            continue;
        }
        if (inside && line.rfind("VmFlags:", 0) == 0) return line;
    }
    return {};
}

bool has_flag(const std::string& flags, const std::string& f) {
    return (flags + " ").find(" " + f + " ") != std::string::npos;
}

}  // namespace

TEST_CASE("ProtectedBytes holds what it was given") {
    const uint8_t raw[] = {1, 2, 3, 4, 5};
    ProtectedBytes b{ByteView(raw)};
    REQUIRE(b.size() == 5);
    CHECK(std::equal(b.view().begin(), b.view().end(), raw));
    CHECK(b.capacity() % 4096 == 0);
    CHECK(reinterpret_cast<uintptr_t>(b.data()) % 4096 == 0);

    ProtectedBytes z(3);
    CHECK(z.size() == 3);
    CHECK((z[0] | z[1] | z[2]) == 0);
    CHECK(ProtectedBytes().empty());
}

TEST_CASE("ProtectedBytes moves without copying the pages") {
    const uint8_t raw[] = {9, 8, 7};
    ProtectedBytes a{ByteView(raw)};
    const uint8_t* where = a.data();
    ProtectedBytes b(std::move(a));
    CHECK(b.data() == where);
    CHECK(b.size() == 3);
    CHECK(a.data() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from state is documented empty
    CHECK(a.empty());
    ProtectedBytes c(1);
    c = std::move(b);
    CHECK(c.data() == where);
    CHECK(c[2] == 7);
}

TEST_CASE("ProtectedBytes grows and shrinks keeping its contents") {
    ProtectedBytes b(4000);
    b[3999] = 0xaa;
    b.resize(9000);  // past one page: a new mapping
    REQUIRE(b.size() == 9000);
    CHECK(b[3999] == 0xaa);
    CHECK(b[8999] == 0);
    b.resize(10);
    b.resize(4000);  // in place again: the cut-off byte was wiped
    CHECK(b[3999] == 0);
}

TEST_CASE("ProtectedBytes pages are left out of core dumps and locked") {
    ProtectedBytes b(32);
    const std::string flags = vm_flags_of(b.data());
    INFO(flags);
    REQUIRE(!flags.empty());
    CHECK(has_flag(flags, "dd"));  // MADV_DONTDUMP
    // mlock may be refused by RLIMIT_MEMLOCK (then only a warning is logged);
    // AddressSanitizer's interceptor turns it into a no-op that reports success.
#if !defined(__SANITIZE_ADDRESS__)
    if (b.locked()) CHECK(has_flag(flags, "lo"));
#endif
}

TEST_CASE("ProtectedBytes wipes every byte it held") {
    ProtectedBytes b(64);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(0x5a ^ i);
    const uint8_t* p = b.data();
    const size_t cap = b.capacity();
    // clear() keeps the mapping, so the old bytes can be read back; the
    // destructor runs the same wipe before munlock/munmap.
    b.clear();
    CHECK(b.empty());
    bool all_zero = true;
    for (size_t i = 0; i < cap; ++i) all_zero = all_zero && p[i] == 0;
    CHECK(all_zero);
}
