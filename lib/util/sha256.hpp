// SHA-256, the one digest the project computes outside a TPM (records,
// Merkle leaves, policies, fingerprints). One definition for all of them.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

#include "util/bytes.hpp"

namespace vtpm {

using Digest = std::array<uint8_t, 32>;

/// SHA-256 over the concatenation of `parts`.
Digest sha256(std::initializer_list<ByteView> parts);
/// SHA-256 of one buffer.
inline Digest sha256(ByteView data) { return sha256({data}); }
/// The same as Bytes, for code that keeps digests of any algorithm in Bytes.
inline Bytes sha256_bytes(ByteView data) {
    const Digest d = sha256(data);
    return Bytes(d.begin(), d.end());
}

}  // namespace vtpm
