// Byte buffers and big-endian helpers shared by the codecs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <string>
#include <vector>

namespace vtpm {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

/// A byte buffer that is wiped when it is destroyed or cleared: for keys and
/// plain TPM state, which must not linger in freed heap memory.
class SecureBytes {
public:
    SecureBytes() = default;
    explicit SecureBytes(size_t n) : b_(n) {}
    explicit SecureBytes(ByteView v) : b_(v.begin(), v.end()) {}
    SecureBytes(const SecureBytes&) = default;
    SecureBytes& operator=(const SecureBytes& o) {
        if (this != &o) { wipe(); b_ = o.b_; }
        return *this;
    }
    SecureBytes(SecureBytes&& o) noexcept : b_(std::move(o.b_)) {}
    SecureBytes& operator=(SecureBytes&& o) noexcept {
        if (this != &o) { wipe(); b_ = std::move(o.b_); }
        return *this;
    }
    ~SecureBytes() { wipe(); }

    uint8_t* data() { return b_.data(); }
    const uint8_t* data() const { return b_.data(); }
    size_t size() const { return b_.size(); }
    bool empty() const { return b_.empty(); }
    void resize(size_t n);
    void clear() { wipe(); b_.clear(); }
    void append(ByteView v) { b_.insert(b_.end(), v.begin(), v.end()); }
    ByteView view() const { return {b_.data(), b_.size()}; }
    operator ByteView() const { return view(); }
    uint8_t& operator[](size_t i) { return b_[i]; }
    uint8_t operator[](size_t i) const { return b_[i]; }

private:
    void wipe() noexcept;
    std::vector<uint8_t> b_;
};

/// Overwrite `bytes` with zeros in a way the compiler keeps (OPENSSL_cleanse):
/// plain state, keys and decrypted commands once they are no longer needed.
void wipe(std::span<uint8_t> bytes) noexcept;

inline uint16_t load_be16(const uint8_t* p) {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint64_t load_be64(const uint8_t* p) {
    return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void put_be16(Bytes& out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}
inline void put_be32(Bytes& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
inline void put_be64(Bytes& out, uint64_t v) {
    put_be32(out, static_cast<uint32_t>(v >> 32));
    put_be32(out, static_cast<uint32_t>(v));
}
inline void store_be32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24); p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);  p[3] = static_cast<uint8_t>(v);
}

/// Lower-case hex of a byte range (for logs of non-secret data and tests).
/// The bytes of a text, without a terminator (labels, policy refs).
inline ByteView as_bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

std::string to_hex(ByteView v);
/// Bytes from hex text (either case, even length); nullopt if it is not hex.
std::optional<Bytes> from_hex(std::string_view text);
/// "0x" and the value in hex, for result codes in messages.
std::string hex32(uint32_t v);

}  // namespace vtpm
