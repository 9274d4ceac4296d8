#include "util/bytes.hpp"

#include <openssl/crypto.h>

#include <cstdio>

#include "util/hot.hpp"

namespace vtpm {

VTPM_HOT void wipe(std::span<uint8_t> bytes) noexcept {
    if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
}

VTPM_HOT void SecureBytes::wipe() noexcept { vtpm::wipe(b_); }

void SecureBytes::resize(size_t n) {
    if (n < b_.size()) {
        OPENSSL_cleanse(b_.data() + n, b_.size() - n);
        b_.resize(n);
        return;
    }
    // Growing may reallocate: copy into a fresh buffer so the old one is wiped.
    std::vector<uint8_t> nb(n);
    std::copy(b_.begin(), b_.end(), nb.begin());
    wipe();
    b_ = std::move(nb);
}

std::string to_hex(ByteView v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s;
    s.reserve(v.size() * 2);
    for (uint8_t b : v) {
        s.push_back(kDigits[b >> 4]);
        s.push_back(kDigits[b & 15]);
    }
    return s;
}

std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%x", v);
    return buf;
}

}  // namespace vtpm

namespace vtpm {

std::optional<Bytes> from_hex(std::string_view text) {
    if (text.size() % 2) return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    Bytes out(text.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
        const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return out;
}

}  // namespace vtpm
