// The Merkle tree over guest RAM pages (design.md §1, seed 002 step 1), in
// the shape of RFC 6962's Merkle Tree Hash so that an odd page count needs
// no padding and leaves and nodes can never be confused:
//   leaf(page)  = SHA-256(0x00 || page)
//   node(l, r)  = SHA-256(0x01 || l || r)
//   MTH(D[n])   = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of 2 < n
// Pure: digests in, digests out.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "util/bytes.hpp"

namespace vtpm::snapshot {

using Digest = std::array<uint8_t, 32>;

/// SHA-256 over the concatenation of `parts`.
Digest sha256_of(std::initializer_list<ByteView> parts);

/// The leaf hash of one page (any length; guest pages are 4 KiB).
Digest leaf_hash(ByteView page);
/// The inner node over two children.
Digest node_hash(const Digest& left, const Digest& right);
/// MTH over the leaf hashes; SHA-256("") for none.
Digest merkle_root(std::span<const Digest> leaves);

/// Indices of leaves that differ between two equally long lists, ascending,
/// at most `limit` of them (for "the first differing pages" in errors).
std::vector<uint64_t> differing_leaves(std::span<const Digest> a, std::span<const Digest> b, size_t limit);

}  // namespace vtpm::snapshot
