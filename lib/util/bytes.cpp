#include "util/bytes.hpp"

#include <openssl/crypto.h>

#include <cstdio>

namespace vtpm {

void SecureBytes::wipe() noexcept {
    if (!b_.empty()) OPENSSL_cleanse(b_.data(), b_.size());
}

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
