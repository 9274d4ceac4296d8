// The Merkle tree itself: RFC 6962 vectors, a recursive reference for every
// count up to 70 (odd counts, 1 leaf, powers of two and around them), a large
// count and the leaves that differ.
#include <catch2/catch.hpp>

#include <bit>

#include "merkle/merkle.hpp"

using namespace vtpm;

namespace {

std::string hex(const Digest& d) { return to_hex(d); }

// MTH straight from RFC 6962 §2.1.
Digest reference(std::span<const Digest> d) {
    if (d.size() == 1) return d[0];
    size_t k = std::bit_floor(d.size() - 1);
    return merkle::node_hash(reference(d.first(k)), reference(d.subspan(k)));
}

}  // namespace

TEST_CASE("RFC 6962 vectors: empty tree and the empty leaf") {
    CHECK(hex(merkle::merkle_root({})) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const Digest empty_leaf = merkle::leaf_hash({});
    CHECK(hex(empty_leaf) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    const Digest one[1] = {empty_leaf};
    CHECK(merkle::merkle_root(one) == empty_leaf);  // one page: the root is its leaf
}

TEST_CASE("every count from 1 to 70 matches the recursive definition") {
    std::vector<Digest> leaves;
    for (uint8_t i = 0; i < 70; ++i) {
        const uint8_t b = i;
        leaves.push_back(merkle::leaf_hash(ByteView(&b, 1)));
        CHECK(merkle::merkle_root(leaves) == reference(leaves));
    }
}

TEST_CASE("a large page count, and one changed page changes the root") {
    std::vector<Digest> leaves(100003);
    for (size_t i = 0; i < leaves.size(); ++i) leaves[i][i % 32] = static_cast<uint8_t>(i);
    const Digest root = merkle::merkle_root(leaves);
    CHECK(root == reference(leaves));
    leaves[77777][5] ^= 1;
    CHECK(merkle::merkle_root(leaves) != root);
    std::vector<Digest> other = leaves;
    other[3][0] ^= 1;
    other[90000][0] ^= 1;
    CHECK(merkle::differing_leaves(leaves, other, 10) == std::vector<uint64_t>{3, 90000});
    CHECK(merkle::differing_leaves(leaves, other, 1) == std::vector<uint64_t>{3});
}

