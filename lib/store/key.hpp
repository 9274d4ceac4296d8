// Symmetric keys for state ("file") and migration encryption, and how they
// are read from `--key` / `--migration-key` option values
// (state-format.md §2.5).
#pragma once

#include <optional>
#include <string_view>
#include <utility>

#include "util/bytes.hpp"
#include "util/secure_memory.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store {

/// An AES-CBC key of 16 or 32 bytes, held in protected memory (locked, not
/// in core dumps, wiped on destruction). A copy gets protected pages of its own.
struct Key {
    ProtectedBytes bytes;
    /// Refuse state files in the legacy version-1 format (encrypted without
    /// a MAC): set for keys we choose (state_key = sealed), where no such
    /// file was ever written.
    bool authenticated_only = false;
    Key() = default;
    explicit Key(ProtectedBytes b) : bytes(std::move(b)) {}
    /// Copies `v` into protected memory; the caller wipes its own copy.
    explicit Key(ByteView v) : bytes(v) {}
    Key(const Key& o) : bytes(o.bytes.view()), authenticated_only(o.authenticated_only) {}
    Key& operator=(const Key& o) {
        if (this != &o) {
            bytes = ProtectedBytes(o.bytes.view());
            authenticated_only = o.authenticated_only;
        }
        return *this;
    }
    Key(Key&&) noexcept = default;
    Key& operator=(Key&&) noexcept = default;
    bool is256() const { return bytes.size() == 32; }
};

/// Parse a `--key`/`--migration-key` value: `file=|fd=|pwdfile=|pwdfd=`,
/// `mode=aes-cbc|aes-128-cbc|aes-256-cbc`, `format=hex|binary`,
/// `kdf=pbkdf2|sha512`, `remove[=bool]`; reads the key material (closing a
/// given fd, unlinking with remove). Errors name what was wrong.
Result<Key> load_key_option(std::string_view value);

/// The descriptor a `--key`/`--migration-key` value names (fd= or pwdfd=),
/// if any; nothing is read or closed. For keeping it open at start.
std::optional<int> key_option_fd(std::string_view value);

/// PBKDF2-HMAC-SHA512(passphrase, "swtpm", 1000) truncated to keylen.
Result<Key> derive_key_pbkdf2(ByteView passphrase, size_t keylen);
/// First keylen bytes of SHA-512(passphrase).
Result<Key> derive_key_sha512(ByteView passphrase, size_t keylen);
/// Hex key text: optional 0x, exactly 2*keylen digits, optional trailing whitespace.
Result<Key> parse_hex_key(std::string_view text, size_t keylen);

}  // namespace vtpm::store
