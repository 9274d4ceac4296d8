// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP but
// remain its fastest path for many small messages (pages, tree nodes).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "merkle/merkle.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

namespace vtpm::merkle {

namespace {

// node_hash through OpenSSL's direct SHA-256 interface: a node is two compression blocks, and EVP's
// per-call dispatch (an algorithm fetch under a lock) would cost more than hashing it.
Digest fast_node_hash(const Digest& left, const Digest& right) {
    const uint8_t one = 0x01;
    SHA256_CTX ctx;
    Digest d{};
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &one, 1);
    SHA256_Update(&ctx, left.data(), left.size());
    SHA256_Update(&ctx, right.data(), right.size());
    SHA256_Final(d.data(), &ctx);
    return d;
}

// Replaces `level` with the level above it. An unpaired last node moves up unchanged, which gives exactly
// RFC 6962's split at the largest power of two.
void hash_level(std::vector<Digest>& level) {
    size_t w = 0;
    for (size_t i = 0; i + 1 < level.size(); i += 2) level[w++] = fast_node_hash(level[i], level[i + 1]);
    if (level.size() % 2) level[w++] = level.back();
    level.resize(w);
}

// The number of hashes in the audit path of leaf `index` (< size): RFC 9162's fn/sn walk without the
// hashing, so that verify_inclusion can say how long a proof should have been.
uint64_t path_length(uint64_t index, uint64_t size) {
    uint64_t n = 0;
    for (uint64_t fn = index, sn = size - 1; sn != 0; fn >>= 1, sn >>= 1, ++n) {
        // The last node of a level with no sibling moves up; skip the levels where it has none.
        while (fn == sn && !(fn & 1) && fn != 0) {
            fn >>= 1;
            sn >>= 1;
        }
    }
    return n;
}

}  // namespace

Digest leaf_hash(ByteView page) {
    const uint8_t zero = 0x00;
    return sha256({ByteView(&zero, 1), page});
}

Digest node_hash(const Digest& left, const Digest& right) {
    const uint8_t one = 0x01;
    return sha256({ByteView(&one, 1), left, right});
}

Digest merkle_root(std::span<const Digest> leaves) {
    if (leaves.empty()) return sha256({});
    std::vector<Digest> level(leaves.begin(), leaves.end());
    while (level.size() > 1) hash_level(level);
    return level.front();
}

std::vector<uint64_t> differing_leaves(std::span<const Digest> a, std::span<const Digest> b, size_t limit) {
    std::vector<uint64_t> out;
    const size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n && out.size() < limit; ++i)
        if (a[i] != b[i]) out.push_back(i);
    for (size_t i = n; i < std::max(a.size(), b.size()) && out.size() < limit; ++i) out.push_back(i);
    return out;
}

Result<std::vector<Digest>> inclusion_proof(std::span<const Digest> leaves, uint64_t index) {
    if (index >= leaves.size())
        return make_error(rc::kBadParameter, "Merkle inclusion proof: leaf index " + std::to_string(index) +
                                                 " is beyond the tree of " + std::to_string(leaves.size()) + " leaves");
    // Bottom-up as in merkle_root, taking the sibling of the leaf's ancestor at each level; that ancestor
    // has none when it is the unpaired last node, which moves up unchanged and so adds nothing to the path.
    std::vector<Digest> proof;
    std::vector<Digest> level(leaves.begin(), leaves.end());
    for (uint64_t i = index; level.size() > 1; i /= 2) {
        if ((i ^ 1) < level.size()) proof.push_back(level[i ^ 1]);
        hash_level(level);
    }
    return proof;
}

Result<void> verify_inclusion(const Digest& leaf, uint64_t index, uint64_t tree_size, std::span<const Digest> proof,
                              const Digest& root) {
    const auto where = [&] {
        return "leaf " + std::to_string(index) + " of a tree of size " + std::to_string(tree_size);
    };
    if (index >= tree_size)
        return make_error(rc::kFail, "Merkle inclusion proof for " + where() + ": the index is beyond the tree");
    // The length is fixed by (index, tree_size); checking it first both names the fault and lets the
    // walk below assume it never runs out of levels or hashes (RFC 9162's sn checks).
    const uint64_t need = path_length(index, tree_size);
    if (proof.size() != need)
        return make_error(
            rc::kFail, "Merkle inclusion proof for " + where() + " is too " + (proof.size() > need ? "long" : "short") +
                           ": " + std::to_string(proof.size()) + " hashes, the path has " + std::to_string(need));
    uint64_t fn = index;
    uint64_t sn = tree_size - 1;
    Digest r = leaf;
    for (const Digest& p : proof) {
        if ((fn & 1) || fn == sn) {
            // A right child, or the unpaired last node: its sibling is on the left once it has moved up
            // past the levels where it had none.
            r = fast_node_hash(p, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            r = fast_node_hash(r, p);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (r != root)
        return make_error(rc::kFail, "Merkle inclusion proof for " + where() + " leads to root " + to_hex(r) +
                                         ", not the expected " + to_hex(root));
    return {};
}

}  // namespace vtpm::merkle
