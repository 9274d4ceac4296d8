// The Merkle tree over guest RAM pages (and, for batch attestation, over
// many VMs' evidence), in the shape of RFC 6962's Merkle Tree Hash so that
// an odd leaf count needs no padding and leaves and nodes can never be
// confused:
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
#include "util/sha256.hpp"
#include "vtpm/result.hpp"

namespace vtpm::merkle {

/// The leaf hash of one page (any length; guest pages are 4 KiB).
Digest leaf_hash(ByteView page);
/// The inner node over two children.
Digest node_hash(const Digest& left, const Digest& right);
/// MTH over the leaf hashes; SHA-256("") for none.
Digest merkle_root(std::span<const Digest> leaves);

/// Indices of leaves that differ between two equally long lists, ascending,
/// at most `limit` of them (for "the first differing pages" in errors).
std::vector<uint64_t> differing_leaves(std::span<const Digest> a, std::span<const Digest> b, size_t limit);

/// RFC 6962 §2.1.1 audit path PATH(index, D[n]) for leaf `index` of `leaves`: the sibling hashes from the
/// leaf's sibling up to the root's child, for verify_inclusion. Hashes each inner node once (n - 1 hashes).
/// rc::kBadParameter if index >= leaves.size() (an empty tree has no proofs).
Result<std::vector<Digest>> inclusion_proof(std::span<const Digest> leaves, uint64_t index);

/// RFC 9162 §2.1.3.2 check that `proof` leads from leaf hash `leaf` at position `index` of a tree of
/// `tree_size` leaves to `root`. rc::kFail, saying which, if the index is beyond the tree, the proof has
/// more or fewer hashes than that position needs, or it leads to another root.
/// The root does not commit to the tree size (leaf 0 of 3 and of 4 take the same path shape), so the
/// caller must take tree_size from the same authenticated source as root.
Result<void> verify_inclusion(const Digest& leaf, uint64_t index, uint64_t tree_size, std::span<const Digest> proof,
                              const Digest& root);

}  // namespace vtpm::merkle
